"""What the generating stages (synthesize, evolve, answer) share about the rows they write.

Shared here, not imported from one stage by another: a stage module never imports another
stage module, so each can change, and be fingerprinted, on its own.
"""

from __future__ import annotations

from pipeline import contracts
from pipeline.contracts import RejectReason
from quality.instruction_checks import is_mostly_chinese


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
