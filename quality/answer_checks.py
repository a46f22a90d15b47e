"""Rules that decide whether a model's reply answers its instruction at all.

Each check returns a `RejectReason` and a detail, or None. The stage decides what to do with
it; nothing here knows about rows or Ray.
"""

from __future__ import annotations

import re

from pipeline.contracts import RejectReason

# Where another sentence ends inside a reply: English marks before a space, Chinese ones and
# line breaks anywhere. A full stop inside a word ("3.10", "os.path") ends nothing.
_SENTENCE_END = re.compile(r"[.!?;](?:\s|$)|[。！？；\n]")
# Instructions whose right answer is a question: write a quiz, list interview questions, ask me.
# ("用更直观的提问方式", "ask in a clearer way", is not one: it asks for a question to be answered.)
_ASKS_FOR_QUESTIONS = re.compile(
    r"(?i)\b(?:write|create|generate|list|give|suggest|draft|prepare|come up with|pose|ask)\b[^.?!]{0,40}\bquestions?\b"
    r"|\bquiz(?:zes)?\b|\bask me\b|(?:出|写|列出|提出|设计|生成|给出|编)[^。？！]{0,12}(?:问题|题目|道题|个题)|出题"
)


def check_is_answer(answer: str, instruction: str) -> tuple[RejectReason, str] | None:
    """Reject a reply that is one question and nothing else: given a question, a small model
    sometimes rewrites it instead of answering ("What is a descriptor in Python?" answered with
    "Could you provide an example of a descriptor in Python?"). Instructions that ask for
    questions are exempt."""
    text = answer.strip()
    if not text.endswith(("?", "？")) or _ASKS_FOR_QUESTIONS.search(instruction):
        return None
    if _SENTENCE_END.search(text[:-1].rstrip()):
        return None
    return RejectReason.NOT_AN_ANSWER, f"the reply only asks a question back: {text[:200]!r}"
