import re
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from synthmix.quality.answer_extraction import canonicalise_answer, extract_answer, parse_chinese_integer


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


# --- numbers in every supported form, and text that only looks like a number ----------------
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
HAN_DIGITS = "零一二三四五六七八九"


def english_words(number: int, *, hyphen: bool = True, and_after_hundred: bool = True) -> str:
    """number (|number| < 10**15) in English words, written here apart from the code under test."""
    if number < 0:
        return "minus " + english_words(-number, hyphen=hyphen, and_after_hundred=and_after_hundred)
    if number == 0:
        return "zero"

    def below_thousand(value: int) -> list[str]:
        hundreds, rest = divmod(value, 100)
        words = [ONES[hundreds], "hundred"] if hundreds else []
        if rest and hundreds and and_after_hundred:
            words.append("and")
        if rest >= 20:
            tens, ones = divmod(rest, 10)
            words += [f"{TENS[tens]}-{ONES[ones]}" if hyphen else f"{TENS[tens]} {ONES[ones]}"] if ones else [TENS[tens]]
        elif rest:
            words.append(ONES[rest])
        return words

    words = []
    for scale, name in SCALES:
        if number >= scale:
            words += [*below_thousand(number // scale), name]
            number %= scale
    return " ".join(words + below_thousand(number))


def chinese_numeral(number: int, *, liang: bool = False) -> str:
    """number (0 <= number < 10**12) in Chinese numerals, the standard way: 零 for skipped places,
    a leading 十 without 一; with liang, a leading 2 before 千/百/万/亿 is 两."""
    if number == 0:
        return "零"

    def section(value: int, leading: bool) -> str:
        text, skipped = "", False
        for place, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
            digit = value // place % 10
            if digit == 0:
                skipped = skipped or bool(text)
                continue
            if skipped:
                text, skipped = text + "零", False
            text += ("" if digit == 1 and unit == "十" and not text and leading else HAN_DIGITS[digit]) + unit
        return text

    text, started, gap = "", False, False
    for place, unit in ((10**8, "亿"), (10**4, "万"), (1, "")):
        value, number = divmod(number, place)
        if value == 0:
            gap = gap or started
            continue
        if started and (gap or value < 1000):
            text += "零"
        text, started, gap = text + section(value, not started) + unit, True, False
    if liang and text[0] == "二" and len(text) > 1 and text[1] in "千百万亿":
        text = "两" + text[1:]
    return text


def canonical(value: Fraction) -> str:
    """The canonical form, computed apart: integers, terminating decimals, else a reduced fraction."""
    if value.denominator == 1:
        return str(value.numerator)
    if value < 0:
        return "-" + canonical(-value)
    rest, places = value.denominator, 0
    for prime in (2, 5):
        count = 0
        while rest % prime == 0:
            rest, count = rest // prime, count + 1
        places = max(places, count)
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    text = f"{value.numerator * 10**places // value.denominator:0{places + 1}d}"
    return (text[:-places] + "." + text[-places:]).rstrip("0").rstrip(".")


MARKED = ("The answer is {}.", "Answer: {}", "**Answer:** {}", "So the final answer is {}", "答案是{}", "### Final Answer\n\n{}")
IN_BOX = (r"Therefore $x = \boxed{{{}}}$.", r"\boxed{{{}}}")
IN_TEXT = ("We put it all together and get {} in the end.", "Adding the parts gives {}")


def scientific_forms(value: Fraction) -> list[str]:
    """value as mantissa and power of ten in every supported way (value a terminating decimal, not 0)."""
    exponent = 0
    mantissa = abs(value)
    while mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    while mantissa < 1:
        mantissa, exponent = mantissa * 10, exponent - 1
    sign = "-" if value < 0 else ""
    digits = canonical(mantissa)
    superscript = str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return [
        f"{sign}{digits}e{exponent}", f"{sign}{digits}E{exponent:+d}", f"{sign}{digits}×10^{exponent}",
        f"{sign}{digits} \\times 10^{{{exponent}}}", f"{sign}{digits}·10^{{{exponent}}}", f"{sign}{digits} x 10^{exponent}",
        f"{sign}{digits}*10^{exponent}", f"{sign}{digits} × 10{superscript}",
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    number=st.integers(min_value=-(10**12) + 1, max_value=10**12 - 1),
    form=st.sampled_from(["digits", "commas", "words", "words-spaced", "chinese", "liang", "scientific", "fraction", "scale"]),
    template=st.sampled_from(MARKED + IN_BOX),
    choice=st.integers(min_value=0, max_value=7),
)
def test_an_integer_written_in_any_supported_form_is_read_back_equal(number: int, form: str, template: str, choice: int) -> None:
    if form == "digits":
        written = str(number)
    elif form == "commas":
        written = f"{number:,}"
    elif form.startswith("words"):
        written = english_words(number, hyphen=form == "words", and_after_hundred=choice % 2 == 0)
    elif form in ("chinese", "liang"):
        written = ("负" if number < 0 else "") + chinese_numeral(abs(number), liang=form == "liang")
    elif form == "scientific":
        assume(number != 0)
        written = scientific_forms(Fraction(number))[choice]
    elif form == "fraction":
        denominator = choice + 2
        written = ["\\frac{{{}}}{{{}}}", "\\dfrac{{{}}}{{{}}}", "{}/{}"][choice % 3].format(number * denominator, denominator)
    else:
        assume(number % 10**6 == 0 or abs(number) < 10**6)
        written = f"{Fraction(number, 10**6)} million" if choice % 2 else f"{Fraction(number, 10**4)}万"
        assume("/" not in written)
    assert extract_answer(template.format(written)) == str(number), written


@settings(max_examples=200, deadline=None)
@given(
    numerator=st.integers(min_value=-(10**9), max_value=10**9),
    exponent=st.integers(min_value=0, max_value=9),
    template=st.sampled_from(MARKED + IN_BOX + IN_TEXT),
    choice=st.integers(min_value=0, max_value=7),
)
def test_a_decimal_in_digits_or_scientific_notation_is_read_back_equal(numerator: int, exponent: int, template: str, choice: int) -> None:
    value = Fraction(numerator, 10**exponent)
    assume(value != 0)
    written = canonical(value) if choice == 0 else scientific_forms(value)[choice]
    assert extract_answer(template.format(written)) == canonical(value), written


@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(min_value=-12, max_value=12),
    power=st.integers(min_value=0, max_value=12),
    root=st.integers(min_value=0, max_value=10**6),
    template=st.sampled_from(MARKED + IN_BOX),
    form=st.sampled_from(["power", "braced power", "square root", "cube root", "root sign", "root of a fraction", "coefficient"]),
)
def test_powers_and_exact_roots_are_read_back_equal(base: int, power: int, root: int, template: str, form: str) -> None:
    if form == "power":
        written, value = (f"({base})^{power}" if base < 0 else f"{base}^{power}"), Fraction(base) ** power
    elif form == "braced power":
        written, value = f"{{{base}}}^{{{power}}}", Fraction(base) ** power
    elif form == "square root":
        written, value = f"\\sqrt{{{root**2}}}", Fraction(root)
    elif form == "cube root":
        written, value = f"\\sqrt[3]{{{base**3}}}", Fraction(base)
    elif form == "root sign":
        written, value = f"√{root**2}", Fraction(root)
    elif form == "root of a fraction":
        assume(base != 0)
        written, value = f"\\sqrt{{\\frac{{{root**2}}}{{{base**2}}}}}", Fraction(root, abs(base))
    else:
        written, value = f"{base}\\sqrt{{{root**2}}}", base * Fraction(root)
    assert extract_answer(template.format(written)) == canonical(value), written


@settings(max_examples=200, deadline=None)
@given(
    numerator=st.integers(min_value=-(10**6), max_value=10**6),
    denominator=st.integers(min_value=1, max_value=10**6),
    template=st.sampled_from(MARKED + IN_BOX + IN_TEXT),
    form=st.sampled_from(["slash", "frac", "dfrac", "chinese"]),
)
def test_a_fraction_is_read_back_as_its_reduced_value(numerator: int, denominator: int, template: str, form: str) -> None:
    value = Fraction(numerator, denominator)
    if form == "chinese":
        assume(template in MARKED and numerator > 0)
        written = f"{chinese_numeral(denominator)}分之{chinese_numeral(numerator)}"
    else:
        sign = "-" if numerator < 0 else ""
        written = {
            "slash": f"{numerator}/{denominator}",
            "frac": f"{sign}\\frac{{{abs(numerator)}}}{{{denominator}}}",
            "dfrac": f"{sign}\\dfrac{{{abs(numerator)}}}{{{denominator}}}",
        }[form]
    assert extract_answer(template.format(written)) == canonical(value), written


@settings(max_examples=200, deadline=None)
@given(number=st.integers(min_value=2, max_value=10**12 - 1), form=st.sampled_from(["words", "chinese"]))
def test_number_words_in_running_text_are_read_where_they_cannot_be_a_pronoun(number: int, form: str) -> None:
    if form == "words":
        text = f"After counting them all, there are {english_words(number)} pages left over."
    else:
        numeral = chinese_numeral(number)
        assume(numeral not in ("一", "两"))
        text = f"所以一共有{numeral}个苹果。"
    assert extract_answer(text) == str(number), text


LOOKS_LIKE_A_NUMBER = st.one_of(
    st.builds("{}-{:02d}-{:02d}".format, st.integers(1900, 2100), st.integers(1, 12), st.integers(1, 28)),  # a date
    st.builds("{}.{}.{}".format, st.integers(0, 20), st.integers(0, 20), st.integers(0, 99)),  # a version
    st.builds("{}-{}".format, st.integers(1, 999), st.integers(1, 999)),  # a range
    st.builds("{}:{:02d}".format, st.integers(0, 23), st.integers(0, 59)),  # a time
    st.builds("{}{}".format, st.integers(0, 999), st.sampled_from(["x", "k", "rd", "th", "abc", "e", "x2", "e3x", "y^2"])),
    st.builds("COVID-{}".format, st.integers(1, 99)),
    st.builds("0x{:x}".format, st.integers(16, 4095)),
    st.builds("{},{}".format, st.integers(1, 999), st.integers(1, 99)),  # a list, or a decimal comma
    st.builds("{}^{}^{}".format, st.integers(2, 9), st.integers(2, 9), st.integers(2, 9)),
)
NUMBER_STRING = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")


@settings(max_examples=300, deadline=None)
@given(
    written=LOOKS_LIKE_A_NUMBER,
    template=st.sampled_from(("The answer is {}.", r"\boxed{{{}}}", "Answer: {}", "As we saw earlier, the value is {}", "结果见 {}")),
)
def test_text_that_only_looks_like_a_number_never_reads_as_one(written: str, template: str) -> None:
    answer = extract_answer(template.format(written))
    assert answer is None or NUMBER_STRING.fullmatch(answer) is None, (written, answer)


# What the extractor before issue 28 read wrong, and what is right: a number, or (None) no number.
@pytest.mark.parametrize(
    ("response", "old_wrong", "right"),
    [
        ("The result is 1e3.", "3", "1000"),
        (r"$n = \boxed{2^{10}}$", "2^{10}", "1024"),
        ("the answer is: twelve", "twelve", "12"),
        ("答案是3万", "3", "30000"),
        ("答案是三百五", "305", "350"),
        ("10³", "103", "1000"),
        ("The answer is 2.5 million", "2.5", "2500000"),
        ("The population is 1.4 billion", "1.4", "1400000000"),
        ("2024-01-05", "-5", None),
        ("Version 3.4.5", "0.5", None),
        ("COVID-19", "-19", None),
        ("at 3:45", "45", None),
        ("这是一个好问题", "1", None),
        ("三明治很好吃", "3", None),
        ("The answer is 2x", "2", None),
        ("答案是二三百", "300", None),
        ("The answer is 5k", "5", None),
        ("Answer: 2 and a half", "2", None),
        ("In 2024 there were 3-5 cases", "-5", None),
    ],
)
def test_what_the_old_extractor_misread_is_read_right_or_not_as_a_number(response: str, old_wrong: str, right: str | None) -> None:
    answer = extract_answer(response)
    assert answer != old_wrong
    if right is None:
        assert answer is None or NUMBER_STRING.fullmatch(answer) is None, answer
    else:
        assert answer == right


@pytest.mark.parametrize("response", [None, "", "   \n\t", "**", "$$"])
def test_no_response_or_a_blank_one_has_no_answer(response: str | None) -> None:
    assert extract_answer(response) is None
    assert canonicalise_answer(response) is None


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_any_text_gives_a_string_or_none_and_never_an_error(text: str) -> None:
    answer = extract_answer(text)
    assert answer is None or (isinstance(answer, str) and answer)


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("十二", 12), ("两千", 2000), ("三百五", 350), ("两千五", 2500), ("一万二", 12000), ("一亿二", 120000000), ("十万零一十", 100010),
     ("一万零二", 10002), ("一千零五十", 1050), ("二十五", 25), ("一万亿", 10**12), ("零", 0)],
)  # fmt: skip
def test_chinese_numerals_in_standard_and_spoken_short_forms(numeral: str, value: int) -> None:
    assert parse_chinese_integer(numeral) == value


@pytest.mark.parametrize("numeral", ["二三百", "百千", "十十", "十两", "千百", "万"])
def test_malformed_chinese_numerals_are_refused_not_read_in_part(numeral: str) -> None:
    with pytest.raises(ValueError, match="not a well-formed Chinese numeral"):
        parse_chinese_integer(numeral)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Answer: 5 km", "5"), ("答案是5千米", "5"), ("他跑了五千米", "5"), ("Answer: 3 square meters", "3"),
        ("The answer is 2.5 million dollars.", "2500000"), ("答案是1.5亿元", "150000000"), ("答案：3千万", "30000000"),
        ("Answer: 2 and a half", "2 and a half"), ("The answer is 5 squared", "5 squared"), (r"\boxed{2\sqrt{3}}", r"2\sqrt{3}"),
        (r"\boxed{\sqrt{2}}", r"\sqrt{2}"), ("I have 3 apples. This one is red.", "3"), ("He has 3 apples and twelve pears", "12"),
    ],
)  # fmt: skip
def test_scales_and_units_around_a_number_and_what_is_not_one(response: str, expected: str) -> None:
    assert extract_answer(response) == expected
