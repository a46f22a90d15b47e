import pytest

from quality.answer_extraction import canonicalise_answer, extract_answer, parse_chinese_integer


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (r"So $x = \boxed{\frac{1}{2}}$.", "0.5"),
        (r"First \boxed{3}, but on reflection \boxed{4}.", "4"),
        (r"\boxed{\text{(B)}}", "B"),
        (r"The area is \boxed{2\sqrt{3}}", r"2\sqrt{3}"),
        (r"\boxed{ {1,000} }", "1000"),
        (r"\boxed{-\dfrac{6}{8}}", "-0.75"),
        (r"\boxed{\frac12}", "0.5"),
        (r"\boxed{90^\circ}", "90"),
        (r"\boxed{12\%}", "12"),
    ],
)
def test_boxed_answers_win_and_nested_braces_are_balanced(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


def test_a_box_cut_off_before_its_closing_brace_gives_no_answer() -> None:
    assert extract_answer(r"Therefore the result is \boxed{5") is None


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Adding them up, the answer is 3.5.", "3.5"),
        ("Answer: 1,234,567", "1234567"),
        ("The answer is 12, which is even.", "12"),
        ("Step 1 gives 10. Step 2 gives 20. Final answer: 30", "30"),
        ("The answer is −5.", "-5"),
        ("So the answer is 1/3", "1/3"),
        ("The final answer is $\\frac{3}{6}$.", "0.5"),
        ("The answer is 45%.", "45"),
        ("The answer is 18 dollars.", "18"),
        ("The answer is 100 °C", "100"),
        ("Answer: \\$5.00", "5"),
        ("The answer is ¥50", "50"),
        ("The answer is Paris.", "paris"),
        ("the answer is the mitochondria.", "mitochondria"),
        ("The answer is True", "yes"),
        ("Thus x = 7 is the answer, so the answer is: x = 7", "7"),
    ],
)
def test_stated_answers_are_taken_from_the_last_marker(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


# Shapes real chat models write their final answers in (Llama/GPT-style bold labels, Qwen-style
# headings, DeepSeek's Chinese label, GSM8K references, Minerva's closing sentence).
@pytest.mark.parametrize(
    "response",
    [
        "Adding the two groups gives 5 + 7.\n\n**Answer:** 12",
        "**Final answer**: 12",
        "**Final Answer:** 12 apples",
        "Answer: **12**",
        "The answer is **12**.",
        "*Answer:* *12*",
        "**Answer: 12**",
        "Answer: `12`",
        "She has 5 + 7 = 12 apples left.\n#### 12",
        "#### 12\nBecause 3 of the 15 were eaten.",
        "### Final Answer\n\n12",
        "**Final Answer**\n12",
        "The answer is $12.",
        "**答案：** 12",
        "**答案**：12",
        "### 最终答案\n\n十二",
        "Final Answer: The final answer is $12$. I hope it is correct.",
        r"**Final Answer**" "\n" r"\[\boxed{12}\]",
    ],
)
def test_markdown_decorated_answers_are_read_through_their_decoration(response: str) -> None:
    assert extract_answer(response) == "12"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("#### Step 2\nWe add 3 and 4.", "4"),  # a heading, not GSM8K's answer line
        ("Answer: 2**3", "2**3"),  # a power keeps its asterisks
        ("So x = 3 * 4 * 5 = 60", "60"),
        ("Answer: **B) 42**", "B"),
        ("#### $1,200", "1200"),
    ],
)
def test_markdown_reading_leaves_what_is_not_decoration(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Therefore the final answer is: (C) 42", "C"),
        ("The correct option is option d.", "D"),
        ("The answer is (A).", "A"),
        ("B", "B"),
        ("(b)", "B"),
        ("A. Paris is the capital of France.", "A"),
        ("答案是 B", "B"),
        ("选项C", "C"),
        ("（Ｂ）", "B"),
    ],
)
def test_option_letters_are_upper_case_letters(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Yes", "yes"),
        ("Yes, because 3 > 2.", "yes"),
        ("No. The function never returns.", "no"),
        ("False", "no"),
        ("是", "yes"),
        ("是的，这个说法正确。", "yes"),
        ("否", "no"),
        ("不是。", "no"),
        ("对", "yes"),
        ("错", "no"),
    ],
)
def test_yes_and_no_in_english_and_chinese_become_yes_or_no(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("答案是三百二十五。", "325"),
        ("答案：两千零一", "2001"),
        ("答案是十五", "15"),
        ("最终答案：百分之五十", "50"),
        ("答案是三分之二", "2/3"),
        ("答案是三点一四", "3.14"),
        ("答案是负三", "-3"),
        ("答案为一万二千", "12000"),
        ("答案是一亿二千万", "120000000"),
        ("答案是二零二四", "2024"),
        ("答案是叁佰", "300"),
        ("所以答案为１２３个。", "123"),
        ("答案是325，因为每组有五个。", "325"),
        ("１，２３４", "1234"),
    ],
)
def test_chinese_numerals_and_full_width_digits_become_arabic_numbers(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("I think it is 12 cm.", "12"),
        ("The total cost is $1,200.", "1200"),
        ("She walked 3 km on Monday and 4.50 km on Tuesday", "4.5"),
        ("It grows by 45 percent", "45"),
        ("He ate 3/4 of the pie", "0.75"),
        ("一共有五个苹果", "5"),
    ],
)
def test_without_a_marker_the_last_number_is_the_answer(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


def test_equal_values_written_differently_get_one_canonical_form() -> None:
    forms = [r"\boxed{\frac{1}{2}}", "The answer is 0.5.", "Answer: 1/2", "0.50", "2/4", r"\boxed{\dfrac{2}{4}}"]
    assert {extract_answer(form) for form in forms} == {"0.5"}
    money = ["$1,200", "The answer is 1200 dollars.", "答案是一千二百元", "１２００", "Answer: 1,200.00"]
    assert {extract_answer(form) for form in money} == {"1200"}


def test_non_terminating_fractions_stay_exact_reduced_fractions() -> None:
    assert extract_answer("Answer: 4/6") == "2/3"
    assert extract_answer("Answer: 0.3333") == "0.3333"


def test_a_long_response_without_any_answer_gives_none() -> None:
    response = "This paragraph discusses the general idea at length but never commits to any particular value."
    assert extract_answer(response) is None


def test_a_zero_denominator_is_compared_as_text_not_as_a_number() -> None:
    assert extract_answer("Answer: 1/0") == "1/0"


def test_short_string_answers_ignore_case_articles_and_spacing() -> None:
    assert canonicalise_answer("  The   Eiffel Tower. ") == canonicalise_answer("eiffel tower") == "eiffel tower"


def test_parse_chinese_integer_rejects_non_numerals() -> None:
    with pytest.raises(ValueError, match="not a Chinese numeral"):
        parse_chinese_integer("三个")
