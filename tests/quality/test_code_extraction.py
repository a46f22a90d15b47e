import pytest

from synthmix.quality.code_extraction import find_cut_python_block, find_python_code, is_program

SOLUTION = "def add(a, b):\n    return a + b\n"


def test_the_biggest_python_block_is_the_program_and_its_usage_example_runs_with_it() -> None:
    answer = f"Here is the function:\n\n```python\n{SOLUTION}```\n\nUse it like this:\n\n```python\nprint(add(1, 2))\n```\n\nOutput:\n```\n3\n```\n"
    assert find_python_code(answer).python == SOLUTION + "\n" + "print(add(1, 2))\n"


def test_a_later_block_that_uses_nothing_the_program_defines_stays_out() -> None:
    # A syntax template after the program would raise NameError and reject a good explanation.
    answer = f"```python\n{SOLUTION}```\n\nThe general form:\n\n```python\nassert condition, message\n```\n"
    assert find_python_code(answer).python == SOLUTION
    # Blocks before the program are not its examples.
    before = f"```python\nprint(add(1, 2))\n```\n\n```python\n{SOLUTION}```"
    assert find_python_code(before).python == SOLUTION


def test_on_a_tie_the_later_block_wins() -> None:
    answer = "```py\nx = 1\n```\nOn second thought:\n```py\nx = 2\n```"
    assert find_python_code(answer).python == "x = 2\n"


@pytest.mark.parametrize("label", ["python", "Python", "py", "python3", "py3", "python title='add.py'"])
def test_python_labels_are_recognised(label: str) -> None:
    assert find_python_code(f"```{label}\n{SOLUTION}```").python == SOLUTION


def test_tilde_fences_and_longer_fences_with_backticks_inside_are_blocks() -> None:
    assert find_python_code(f"~~~python\n{SOLUTION}~~~").python == SOLUTION
    inner = 'doc = """\n```\nnot a fence end\n```\n"""\n'
    assert find_python_code(f"````python\n{inner}````").python == inner


def test_unlabelled_blocks_count_when_they_are_programs_and_no_block_is_labelled_python() -> None:
    assert find_python_code(f"```\n{SOLUTION}```").python == SOLUTION
    assert find_python_code("```\n3\n```").python is None
    assert find_python_code(f"```\n{SOLUTION}```\n```python\nx = 1\n```").python == "x = 1\n"


def test_an_answer_without_fences_is_taken_whole_when_it_is_a_program() -> None:
    assert find_python_code(SOLUTION).python == SOLUTION
    assert find_python_code("Use a dictionary keyed by name.").python is None


@pytest.mark.parametrize(
    ("answer", "problem", "others"),
    [
        (f"```python\n{SOLUTION}", "never closed", ()),
        (
            "```javascript\nconst add = (a, b) => a + b;\n```\n```bash\nnode add.js\n```",
            "code blocks in javascript, bash, none in Python",
            ("javascript", "bash"),
        ),
        ("```\nHello, world\n```", "not Python programs", ()),
        ("Just use the built-in sum().", "no code block", ()),
    ],
)
def test_without_a_python_program_the_problem_is_named(answer: str, problem: str, others: tuple) -> None:
    found = find_python_code(answer)
    assert found.python is None
    assert problem in found.problem
    assert found.other_languages == others


def test_is_program_needs_a_statement_beyond_bare_expressions() -> None:
    assert is_program("import math\n")
    assert is_program("x = 1\n")
    assert not is_program("print(1)\n")
    assert not is_program("def broken(:\n")
    assert not is_program("x = '\0'")


def test_a_text_the_python_parser_gives_up_on_is_not_a_program() -> None:
    # CPython raises MemoryError, not SyntaxError, on 10,000 bare words in one line.
    assert not is_program("word " * 10_000)
    assert find_python_code("word " * 10_000).python is None


def test_a_cut_python_block_keeps_its_whole_lines_that_parse() -> None:
    cut = "Here are the tests:\n```python\nassert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(100, -5"
    assert find_cut_python_block(cut) == "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
    # A function cut mid-way keeps the statements before the cut.
    in_function = "```python\ndef test_add():\n    assert add(1, 1) == 2\n    assert add(2, 2) =="
    assert find_cut_python_block(in_function) == "def test_add():\n    assert add(1, 1) == 2\n"
    assert find_python_code(cut).python is None, "an answer's program is never taken cut"


@pytest.mark.parametrize(
    "reply",
    [
        "```python\nassert add(2, 3) == 5\n```",  # closed: find_python_code's
        "```javascript\nconsole.assert(add(2, 3) === 5);\nconsole.assert(",  # not Python
        "```python\nassert add(2, 3",  # nothing whole before the cut
        "No code here.",
    ],
)
def test_no_cut_python_block_is_found_where_there_is_none(reply: str) -> None:
    assert find_cut_python_block(reply) is None
