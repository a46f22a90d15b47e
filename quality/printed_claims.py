"""What a code answer says its prints show, checked by running it.

Small models annotate their examples with the output they expect (`print(square(4))  # Output:
16`, or `f(0)  # This will raise a ValueError`) and are often wrong: the quickstart shipped a class method returning 25 * 4 whose comment
says 16, `5 >> 2` "printing" 10, and a `print(e)` said to print the failed assert's source. Such a
comment is a test the answer wrote for itself. `claimed_outputs` finds them; `claim_tests` turns
them into a tests program for the sandbox (quality/sandbox.py), which re-runs the answer one
top-level statement at a time and compares what each annotated print wrote with its comment.

The tests program is this module's own source plus one call, so this file imports only the
standard library and everything the check needs is defined here.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import re
import tokenize

# "# Output: 16", "# prints: [1, 2]", "# This will print: x", "# 输出：10500.0", "# Expected output: 3".
_CLAIM = re.compile(
    r"#\s*(?:(?:expected\s+)?output|outputs|prints?|this\s+will\s+print|will\s+print|输出(?:结果)?)\s*(?:is\s*)?[:：]\s*(?P<claim>\S.*)$", re.IGNORECASE
)
# A claim that is not a literal transcript: elided, or a description of the output.
_VAGUE = re.compile(r"\.\.\.|…|\b(?:something like|e\.g\.|depends|varies|random|approximately|about)\b|<[^>]*>", re.IGNORECASE)
# "# This will raise an AssertionError", "# raises ValueError", "# 这将引发 AssertionError": a
# statement said to fail. The quickstart shipped `assert_statement("10 + 20 > 30")  # This will
# raise an AssertionError` from a function that tests a non-empty string, which never raises.
_RAISE_CLAIM = re.compile(
    r"#\s*(?:this\s+|it\s+)?(?:will\s+|should\s+|would\s+)?(?:raises?|throws?)\s+(?:an?\s+)?(?P<name>[A-Z]\w*(?:Error|Exception)|exception|error)\b"
    r"|#\s*(?:这将|这会|将会|将|会)?(?:引发|抛出|触发)\s*(?P<zh>[A-Z]\w*(?:Error|Exception)|异常|错误)",
    re.IGNORECASE,
)
# Conditional claims ("raises ValueError if b is 0") say what could happen, not what this line does.
_CONDITIONAL = re.compile(r"\b(?:if|when|unless|otherwise)\b|如果|若|否则", re.IGNORECASE)
# How a raise claim is kept among the output claims: {line: "raises:AssertionError"}, or
# "raises:" for any exception.
RAISES = "raises:"


def claimed_outputs(source: str) -> dict[int, str]:
    """{line: claim} for each top-level `print(...)` statement (or one inside `if __name__ ==
    "__main__":`) whose last line ends in an output comment. Claims inside functions and loops
    are left out: which call printed what cannot be told apart there."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    lines = source.splitlines()
    claims: dict[int, str] = {}
    for statement in _top_level(tree.body):
        if statement.end_lineno is None or statement.end_lineno > len(lines):
            continue
        comment = _comment_of(lines[statement.end_lineno - 1])
        raised = _RAISE_CLAIM.search(comment) if isinstance(statement, ast.Expr | ast.Assign | ast.AugAssign | ast.Assert) else None
        if raised and not _CONDITIONAL.search(comment):
            name = raised.group("name") or raised.group("zh") or ""
            claims[statement.end_lineno] = RAISES + (name if name[:1].isupper() else "")
            continue
        if not _is_print(statement):
            continue
        match = _CLAIM.search(comment)
        if match and not _VAGUE.search(match.group("claim")):
            claims[statement.end_lineno] = match.group("claim").strip()
    return claims


def claim_tests(source: str) -> str | None:
    """A tests program checking `source`'s output comments, or None when it makes no claim."""
    claims = claimed_outputs(source)
    return claim_program(source, claims) if claims else None


def claim_program(source: str, claims: dict[int, str]) -> str:
    """The tests program for claims already found in `source` (`claimed_outputs`)."""
    return f"{_checker_source()}\n\ncheck_claims({source!r}, {claims!r})\n"


@functools.cache
def _checker_source() -> str:
    """This module's text, read once per process (the tests program is built for every code row)."""
    with open(__file__, encoding="utf-8") as module:
        return module.read()


def output_matches(printed: str, claim: str) -> bool:
    """Does one print's output agree with its comment? Whitespace is collapsed, quotes around
    the claim and a trailing explanation in parentheses or after a dash are allowed."""
    got = " ".join(printed.split())
    said = " ".join(claim.split())
    candidates = {said, said.strip("\"'`"), re.split(r"\s+(?:\(|-|—|--|#|because|since|as\b)", said, maxsplit=1)[0].strip("\"'`")}
    return got in candidates or got.strip("\"'") in candidates


def check_claims(source: str, claims: dict[int, str]) -> None:
    """Run `source` as `__main__`, one top-level statement at a time, and raise AssertionError at
    the first annotated print whose output differs from its comment."""
    tree = ast.parse(source)
    namespace = {"__name__": "__main__"}
    for statement in _top_level(tree.body):
        code = compile(ast.Module(body=[statement], type_ignores=[]), "<answer>", "exec")
        claim = claims.get(statement.end_lineno)
        if claim is None:
            exec(code, namespace)
            continue
        if claim.startswith(RAISES):
            expected = claim[len(RAISES) :]
            try:
                exec(code, namespace)
            except Exception as error:  # the claim holds; the program would end here, so the check does too
                names = {cls.__name__ for cls in type(error).__mro__}
                assert not expected or expected in names, f"line {statement.end_lineno} raises {type(error).__name__}; its comment says {expected}"
                return
            raise AssertionError(f"line {statement.end_lineno} runs without an exception; its comment says it raises {expected or 'one'}")
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            exec(code, namespace)
        printed = captured.getvalue()
        print(printed, end="")
        assert output_matches(printed, claim), f"line {statement.end_lineno} prints {printed.strip()[:200]!r}; its comment says {claim[:200]!r}"


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements run at import, with a `__main__` guard's body in its place."""
    flat: list[ast.stmt] = []
    for statement in body:
        if _is_main_guard(statement):
            flat.extend(_top_level(statement.body))
        else:
            flat.append(statement)
    return flat


def _is_main_guard(statement: ast.stmt) -> bool:
    if not isinstance(statement, ast.If) or statement.orelse:
        return False
    test = statement.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _is_print(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
        and isinstance(statement.value.func, ast.Name)
        and statement.value.func.id == "print"
        and not any(keyword.arg in ("file", "end") for keyword in statement.value.keywords)
    )


def _comment_of(line: str) -> str:
    """The comment that ends a line of code (a '#' outside string literals), or ''."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return ""
    return next((token.string for token in tokens if token.type == tokenize.COMMENT), "")
