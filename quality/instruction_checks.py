"""Rules that decide whether a generated or evolved instruction is worth answering.

Each check returns a `RejectReason` and a detail, or None. The stage decides what to do with
it; nothing here knows about rows or Ray.
"""

from __future__ import annotations

import re
import unicodedata

from pipeline.contracts import RejectReason
from quality.heuristics import count_refusals

_WORD = re.compile(r"\w+", re.UNICODE)
_HAN = re.compile(r"[\u3400-\u9fff]")
# Words that start a request in English; questions are recognised by their mark.
_REQUEST_OPENERS = frozenset(
    "write explain describe compare summarize summarise list give create implement design find show "
    "calculate compute solve prove derive analyze analyse discuss evaluate identify outline suggest "
    "propose convert translate rewrite refactor debug fix test generate draft classify define "
    "illustrate estimate determine choose select recommend provide help tell how what why when where "
    "which who whom whose can could would should is are does do did imagine consider suppose assume "
    "using use given based read develop build make plan argue justify predict".split()
)
# Words that may precede the verb of a request: "Please explain", "Now write".
_COURTESY = frozenset({"please", "now", "also", "kindly", "then"})
_CHINESE_REQUEST = re.compile(r"[？?]|请|如何|怎么|怎样|为什么|什么|哪|是否|能否|说明|解释|描述|比较|总结|列出|编写|写一|计算|求|证明|分析|讨论|设计|实现|给出")
# Words of our evolution templates that must not appear in an evolved instruction.
_TEMPLATE_LEAKS = re.compile(
    r"(?i)(original instruction|rewritten instruction|#?\s*rewritten prompt|#?\s*given prompt|new instruction:|"
    r"rewrite the instruction|here is the rewritten|here's the rewritten|instruction:\s*$|原始指令|改写后的指令)"
)


# A label a small model writes before the instruction: its task type ("factual: What is ..."),
# what it is ("Question:", "Q:", "问："), or the label of a prompt's example.
_TYPE_LABEL = re.compile(
    r"^\s*[*_`]*(?:open|factual|math|choice|code|question|q|instruction|task|问|问题|题目|指令"
    # ... and the labels of the evolution prompts' examples ("Harder: ...", "更深入的指令：...").
    r"|clearer|harder|more\s+specific|deeper|needs\s+reasoning"
    r"|更清楚的指令|更难的指令|更具体的指令|更深入的指令|需要推理的指令|新指令)[*_`]*\s*[:：]\s*",
    re.IGNORECASE,
)


def strip_type_label(instruction: str) -> str:
    """The instruction without a leading label: the task type belongs in the `type` field, and
    "Question:" or "问：" in no instruction a user would send."""
    return _TYPE_LABEL.sub("", instruction, count=1)


# Words no finished English sentence ends on: an instruction ending on one was cut off
# ("What is the difference between", "What is the system-defined name, informally known as").
_DANGLING_ENDINGS = frozenset("a an the and or but nor between than whose its their your my our named called known as such versus vs".split())
# (Prepositions are left out: English questions end on them: "What is it used for?")
# Nor does a Chinese one end on a particle that joins it to what follows.
_CHINESE_DANGLING = re.compile(r"(?:的|和|与|及|或|在|把|被|对|从|向|是|为|以|、|，|,)\s*$")
_ENDS_SENTENCE = re.compile(r"[?？.。!！:：;；)）\]】\"”'’`>]\s*$")


def check_complete(instruction: str) -> tuple[RejectReason, str] | None:
    """An instruction must end as a sentence does: not on a word that needs more after it."""
    text = instruction.strip()
    if not text or _ENDS_SENTENCE.search(text):
        return None
    if is_mostly_chinese(text):
        tail = _CHINESE_DANGLING.search(text)
        return (RejectReason.INCOMPLETE, f"cut off after {tail.group(0).strip()!r}") if tail else None
    tokens = words(text)
    if tokens and tokens[-1] in _DANGLING_ENDINGS:
        return RejectReason.INCOMPLETE, f"cut off after {tokens[-1]!r}"
    return None


# A reference to the source the instruction was made from, which its reader will never see.
_UNSEEN_SOURCE = re.compile(
    r"(?i)\b(?:this|the|that|given|above|provided|attached|same)\s+(?:document|text|passage|article|page|excerpt|source\s+file)\b"
    r"|本文|这篇文章|这篇文档|该文档|这份文档|这段文字|上文|原文|文中|该文章"
)
# "the following code" must be followed by it: a newline or a code span in the instruction.
# So must "the given function", "the implemented class" and "a snippet": a request about code
# the reader is never shown.
_FOLLOWING = re.compile(
    r"(?i)\b(?:the\s+)?following\s+(?:python\s+)?(?:code|snippet|function|program|list|table|text|data|class)\b"
    r"|\b(?:the|this)\s+(?:given|provided|above|implemented|existing)\s+(?:python\s+)?(?:code|snippet|function|program|class|method|script)\b"
    r"|\b(?:a|the|this)\s+(?:short\s+|small\s+)?(?:code\s+|python\s+)?snippet\b"
    r"|以下代码|下面的代码|下列代码|给定的代码|这段代码"
)
_NUMERIC = re.compile(
    r"\d|(?i:\b(?:calculate|compute|solve|how\s+many|how\s+much|sum|product|percent|equation)\b)|计算|多少|几|求|[一二三四五六七八九十百千万]"
)
_OPTION = re.compile(r"(?:^|[\s(（])([A-D])\s*[).:：、）]", re.MULTILINE)


def plausible_task_type(instruction: str, claimed: str) -> str:
    """The model's type label, unless the instruction cannot be that type: "math" needs a number or
    a calculation, "choice" needs at least two lettered options; such labels become "open"."""
    if claimed == "math" and not _NUMERIC.search(instruction):
        return "open"
    if claimed == "choice" and len(set(_OPTION.findall(instruction))) < 2:
        return "open"
    return claimed


def check_self_contained(instruction: str) -> tuple[RejectReason, str] | None:
    """A user who sends the instruction has no source document: it must not point at one, and
    "the following code" must include the code."""
    unseen = _UNSEEN_SOURCE.search(instruction)
    if unseen:
        return RejectReason.NOT_SELF_CONTAINED, f"refers to {unseen.group(0)!r}, which the reader never sees"
    following = _FOLLOWING.search(instruction)
    if following and "\n" not in instruction.strip() and "`" not in instruction:
        return RejectReason.NOT_SELF_CONTAINED, f"announces {following.group(0)!r} but includes none"
    if instruction.rstrip().endswith((":", "：")):
        # "...should include the following:" (seen from the 0.5B model's expand) with nothing after.
        return RejectReason.NOT_SELF_CONTAINED, "ends with a colon: announces something it does not include"
    return None


def check_language(instruction: str, language: str) -> tuple[RejectReason, str] | None:
    """An instruction in the language it was asked in: Chinese for Chinese seeds, and not Chinese
    for the others (a Chinese seed answered in English is no Chinese data)."""
    chinese = is_mostly_chinese(instruction)
    if language == "zh" and not chinese:
        return RejectReason.LANG, "asked for Chinese, written in another language"
    if language != "zh" and chinese:
        return RejectReason.LANG, f"asked for {language}, written in Chinese"
    return None


def words(text: str) -> list[str]:
    """Lower-cased words; each Han character counts as a word, as unsegmented text needs."""
    text = unicodedata.normalize("NFKC", text).lower()
    tokens: list[str] = []
    for token in _WORD.findall(text):
        if _HAN.search(token):
            tokens.extend(ch for ch in token)
        else:
            tokens.append(token)
    return tokens


def is_mostly_chinese(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(1 for ch in letters if _HAN.match(ch)) / len(letters) >= 0.3


def check_is_request(instruction: str, *, min_words: int = 4) -> tuple[RejectReason, str] | None:
    """An instruction must ask for something: a question, or an imperative/interrogative opener,
    in at least `min_words` words (Han characters count one each, and need twice as many)."""
    text = instruction.strip()
    if not text:
        return RejectReason.EMPTY, "empty instruction"
    chinese = is_mostly_chinese(text)
    needed = min_words * 2 if chinese else min_words
    if len(words(text)) < needed:
        return RejectReason.TOO_SHORT, f"{len(words(text))} words; a request needs at least {needed}"
    if chinese:
        return check_complete(text) if _CHINESE_REQUEST.search(text) else (RejectReason.NOT_A_REQUEST, "no question mark or request word")
    if "?" in text:
        return check_complete(text)
    tokens = [word for word in words(text)[:4] if word not in _COURTESY]
    if tokens and tokens[0] in _REQUEST_OPENERS:
        return check_complete(text)
    return RejectReason.NOT_A_REQUEST, f"neither a question nor a request: starts with {' '.join(tokens[:3])!r}"


def check_copies_seed(instruction: str, seed_text: str, *, max_overlap: float = 0.8, ngram: int = 6) -> tuple[RejectReason, str] | None:
    """Reject an instruction whose word n-grams mostly appear verbatim in its seed."""
    instruction_words = words(instruction)
    if len(instruction_words) < ngram:
        return None
    overlap = _copied_share(instruction, seed_text, ngram=ngram)
    if overlap >= max_overlap:
        return RejectReason.COPIES_SEED, f"{overlap:.0%} of its {ngram}-word sequences appear verbatim in the seed"
    return None


# A run this long copied from the prompt is a leak even inside an otherwise new output: the
# quickstart's 0.5B model appended whole prompt sentences ("Make this instruction ask for a
# deeper understanding of the same subject") to real questions. Han characters count one word
# each, so Chinese needs a longer run.
LEAK_RUN_WORDS = 8
LEAK_RUN_HAN = 12


def check_echoes_prompt(
    text: str,
    prompt_text: str,
    *,
    quoted_text: str = "",
    max_overlap: float = 0.5,
    ngram: int = 4,
    run_words: int = LEAK_RUN_WORDS,
    run_han: int = LEAK_RUN_HAN,
) -> tuple[RejectReason, str] | None:
    """Reject an output made of the prompt's own words ("Write every instruction in English",
    "Do not say 'the document'"): the share of its word n-grams found in the prompt, or one long
    run of them, not counting n-grams of `quoted_text` (the document the prompt quotes, or the
    instruction being rewritten, which an output may rightly use)."""
    tokens = words(text)
    own = _ngrams(tokens, ngram)
    if not own or not prompt_text:
        return None
    prompt_tokens, quoted_tokens = words(prompt_text), words(quoted_text)
    template = _ngrams(prompt_tokens, ngram) - _ngrams(quoted_tokens, ngram)
    copied = len(own & template) / len(own)
    if copied >= max_overlap:
        return RejectReason.TEMPLATE_LEAK, f"{copied:.0%} of its {ngram}-word sequences come from the prompt"
    chinese = is_mostly_chinese(text)
    run = run_han if chinese else run_words
    long_runs = _ngrams(tokens, run) & (_ngrams(prompt_tokens, run) - _ngrams(quoted_tokens, run))
    if long_runs:
        joiner = "" if chinese else " "
        return RejectReason.TEMPLATE_LEAK, f"copies {run} words in a row from the prompt: {joiner.join(min(long_runs))!r}"
    return None


def check_evolution(
    evolved: str, parent: str, *, template_text: str = "", min_length_ratio: float = 0.5, min_new_words: int = 2, max_template_overlap: float = 0.5
) -> tuple[RejectReason, str] | None:
    """An evolved instruction must be a real, longer-or-richer request, not an echo, a refusal,
    or the rewriting prompt's own words (`template_text`: the prompt without the parent)."""
    text = evolved.strip()
    if not text:
        return RejectReason.EMPTY, "empty evolution"
    if count_refusals([text])[0] > 0:
        return RejectReason.REFUSAL, "the model declined instead of rewriting"
    if _TEMPLATE_LEAKS.search(text):
        return RejectReason.TEMPLATE_LEAK, f"template words in the output: {_TEMPLATE_LEAKS.search(text).group(0)!r}"
    # A rewrite prompt is short and its phrases specific ("trade-offs, or underlying principles"),
    # so five of its words in a row that the parent did not have are a leak.
    leak = check_echoes_prompt(text, template_text, quoted_text=parent, max_overlap=max_template_overlap, ngram=5, run_words=5, run_han=8)
    if leak is not None:
        return leak
    if len(text) < min_length_ratio * len(parent.strip()) or len(text) < 10:
        return RejectReason.TOO_SHORT, f"{len(text)} characters against the parent's {len(parent.strip())}"
    new_words = set(words(text)) - set(words(parent))
    if len(new_words) < min_new_words:
        return RejectReason.NO_INFORMATION_GAIN, f"only {len(new_words)} word(s) not already in the parent"
    return None


def _copied_share(text: str, source: str, *, ngram: int) -> float:
    """Share of `text`'s word n-grams found verbatim in `source` (0 when text is shorter than n)."""
    own = _ngrams(words(text), ngram)
    if not own or not source:
        return 0.0
    return len(own & _ngrams(words(source), ngram)) / len(own)


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
