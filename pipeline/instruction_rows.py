"""What the generating stages (synthesize, evolve, answer) share about the rows they write.

Shared here, not imported from one stage by another: a stage module never imports another
stage module, so each can change, and be fingerprinted, on its own.
"""

from __future__ import annotations

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.quality.instruction_checks import is_mostly_chinese


def seed_language(row: dict) -> str:
    """The language to write in: the row's own `lang` when set, else Chinese or English by its script."""
    if row.get(contracts.LANG):
        return row[contracts.LANG]
    return "zh" if is_mostly_chinese(row.get(contracts.TEXT) or row.get(contracts.INSTRUCTION) or "") else "en"


def check_repeated(text: str, seen: set[str]) -> tuple[RejectReason, str] | None:
    """The same text twice from one reply would share an id: the second is an exact duplicate."""
    if text in seen:
        return RejectReason.EXACT_DUPLICATE, "repeats an earlier instruction of the same reply"
    seen.add(text)
    return None


# What may follow a forced opening inside a JSON string: any character but a quote or a
# backslash, or one of the escapes \n, \t, \", \\ (vLLM's grammar reads the string as written,
# escapes and all), one or more, unbounded: a bounded repeat ({10,300}) after an ASCII opening
# made xgrammar 0.2.8 fail to compile with its cache on (vLLM's setting), and the engine returned
# empty replies; max_tokens bounds the length, check_is_request the shortness.
_STRING_BODY = r'([^"\\]|\\[nt"\\])+'


def opening_pattern(opening: str) -> str:
    """A JSON Schema `pattern` for a string that starts with `opening` and goes on in its own
    words; after an opening that ends on a colon, on a new line (code follows)."""
    code = opening.rstrip().endswith((":", "："))
    return "^" + _regex_literal(opening) + (r"\\n" if code else "") + _STRING_BODY + "$"


def _regex_literal(text: str) -> str:
    """`text` as a regular expression that matches only itself (JSON Schema's ECMAScript dialect)."""
    return "".join(f"\\{char}" if char in r"\^$.|?*+()[]{}/" else char for char in text)
