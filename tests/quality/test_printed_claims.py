"""synthmix.quality.printed_claims: an answer's output comments, checked by running it."""

import contextlib
import io

import pytest

from synthmix.quality.printed_claims import check_claims, claim_tests, claimed_outputs, output_matches


def test_top_level_prints_with_output_comments_are_claims():
    source = (
        "def square(n):\n    print(n)  # Output: inside a function is left out\n    return n * n\n\n"
        "print(square(4))  # Output: 16\n"
        "for i in range(2):\n    print(i)  # Output: 0 then 1 is left out\n"
        "x = 5 >> 2  # Output: 1 (not a print)\n"
        "print('# Output: 3')\n"
        "print(x)  # 输出：1\n"
        "if __name__ == '__main__':\n    print(x << 3)  # This will print: 8\n"
        "print(x)  # Output: ...\n"
    )
    assert claimed_outputs(source) == {5: "16", 10: "1", 12: "8"}


@pytest.mark.parametrize(
    ("printed", "claim", "agree"),
    [
        ("16\n", "16", True),
        ("Hello, World!\n", '"Hello, World!"', True),
        ("[1, 2, 3]\n", "[1, 2, 3]", True),
        ("320\n", "320 (10 shifted left by 5)", True),
        ("100\n", "16", False),
        ("Left shift result: 5\n", "Left shift result: 50", False),
        ("\n", "assert 1 + 1 == 3", False),
    ],
)
def test_output_matches_allows_quotes_and_explanations_only(printed, claim, agree):
    assert output_matches(printed, claim) is agree


def test_the_check_runs_the_answer_and_names_the_first_wrong_line():
    right = "n = 5\nprint(n >> 2)  # Output: 1\nprint(n << 1)  # Output: 10\n"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        check_claims(right, claimed_outputs(right))
    assert printed.getvalue() == "1\n10\n"
    wrong = "n = 5\nprint(n >> 2)  # Output: 10\n"
    with pytest.raises(AssertionError, match="line 2 prints '1'; its comment says '10'"), contextlib.redirect_stdout(io.StringIO()):
        check_claims(wrong, claimed_outputs(wrong))


def test_claim_tests_is_a_standalone_program_or_none():
    assert claim_tests("print(1)\n") is None
    program = claim_tests("print(2 + 2)  # Output: 5\n")
    namespace: dict = {"__name__": "tests"}
    with pytest.raises(AssertionError, match="prints '4'"), contextlib.redirect_stdout(io.StringIO()):
        exec(compile(program, "tests.py", "exec"), namespace)


# The quickstart (2026-12-08): a function testing a non-empty string, which never raises.
ASSERT_STATEMENT = (
    "def assert_statement(expression):\n    if not expression:\n        raise AssertionError(expression)\n\n"
    'assert_statement("10 > 20")\nassert_statement("10 + 20 > 30")  # This will raise an AssertionError\n'
)


def test_statements_said_to_raise_are_claims_unless_the_comment_is_conditional():
    source = (
        "def div(a, b):\n    return a / b\n\n"
        "div(1, 0)  # raises ZeroDivisionError\n"
        "x = div(1, 0)  # 这将引发 ZeroDivisionError\n"
        "div(1, 2)  # raises ZeroDivisionError if b is 0\n"
        "assert x > 0  # This should raise an exception\n"
    )
    assert claimed_outputs(source) == {4: "raises:ZeroDivisionError", 5: "raises:ZeroDivisionError", 7: "raises:"}


def test_a_raise_claim_holds_when_that_exception_ends_the_program():
    holds = "def div(a, b):\n    return a / b\n\nprint(div(4, 2))  # Output: 2.0\ndiv(1, 0)  # raises ZeroDivisionError\nprint('not reached')  # Output: x\n"
    with contextlib.redirect_stdout(io.StringIO()):
        check_claims(holds, claimed_outputs(holds))
    with pytest.raises(AssertionError, match="line 6 runs without an exception; its comment says it raises AssertionError"):
        check_claims(ASSERT_STATEMENT, claimed_outputs(ASSERT_STATEMENT))
    other = "int('x')  # raises TypeError\n"
    with pytest.raises(AssertionError, match="line 1 raises ValueError; its comment says TypeError"):
        check_claims(other, claimed_outputs(other))
