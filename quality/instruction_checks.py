"""Rules that decide whether a generated or evolved instruction is worth answering.

Each check returns a `RejectReason` and a detail, or None. The stage decides what to do with
it; nothing here knows about rows or Ray.
"""

from __future__ import annotations

import re
import unicodedata

from synthmix.pipeline.contracts import RejectReason
from synthmix.quality.code_language import prose_of
from synthmix.quality.heuristics import count_refusals

_WORD = re.compile(r"\w+", re.UNICODE)
_HAN = re.compile(r"[\u3400-\u9fff]")
# Words that start a request in English; questions are recognised by their mark.
_REQUEST_OPENERS = frozenset(
    "write explain describe compare summarize summarise list give create implement design find show "
    "calculate compute solve prove derive analyze analyse discuss evaluate identify outline suggest "
    "propose convert translate rewrite refactor debug fix test generate draft classify define "
    "illustrate estimate determine choose select recommend provide help tell how what why when where "
    "which who whom whose can could would should is are does do did imagine consider suppose assume "
    "using use given based read develop build make plan argue justify predict "
    # imperatives that add a requirement to a request ("Include tests.", "Limit it to 100 words.")
    "include limit handle answer keep ensure focus avoid format respond return state mention cover add apply check verify "
    "restrict present organize organise structure cite".split()
)
# Words that may precede the verb of a request: "Please explain", "Now write".
_COURTESY = frozenset({"please", "now", "also", "kindly", "then", "first", "finally", "next"})
# A Chinese request: a question mark, 请, a question word anywhere, or a verb of asking at the
# start of a clause. Mid-clause, the verb is a statement's: "在Python中，可以使用`sum`函数计算
# 列表中元素的总和。" (a fresh-clone quickstart's shard row, 2026-12-08) says what one can do.
_CHINESE_ASKING = r"[？?]|请|如何|怎么|怎样|为什么|什么|哪|是否|能否"
_CHINESE_VERB = r"说明|解释|描述|比较|总结|列出|编写|写一|计算|求|证明|分析|讨论|设计|实现|给出|找出|修复|改正"
_CHINESE_REQUEST = re.compile(
    rf"{_CHINESE_ASKING}|(?:^|[，,。；;：:！!\n])\s*(?:(?:并|再|然后|试|先|最后|同时|另外)\s*)?(?:{_CHINESE_VERB}|评价|评估|用|使用|举例)"
)
# Any word of asking, wherever it stands: a short tail that has one ("要求给出例子") is a request
# of its own, not a cut-off sentence.
_CHINESE_REQUEST_WORD = re.compile(rf"{_CHINESE_ASKING}|{_CHINESE_VERB}")
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


# The prompts list the openings numbered ("1. 如何 …"), and a model may copy the number: a
# fresh-clone quickstart shipped "1. 如何进行光合作用，…" (2026-12-08).
_LIST_NUMBER = re.compile(r"^\s*(?:\d{1,2}[.)、]|[（(]\d{1,2}[)）])\s*(?=\D)")


def strip_type_label(instruction: str) -> str:
    """The instruction without a leading label or list number: the task type belongs in the
    `type` field, and "Question:", "问：" or "1." in no instruction a user would send."""
    return _TYPE_LABEL.sub("", _LIST_NUMBER.sub("", instruction, count=1), count=1)


# Words no finished English sentence ends on: an instruction ending on one was cut off
# ("What is the difference between", "What is the system-defined name, informally known as").
_DANGLING_ENDINGS = frozenset("a an the and or but nor between than whose its their your my our named called known as such versus vs".split())
# (Prepositions are left out: English questions end on them: "What is it used for?")
# Nor does a Chinese one end on a particle that joins it to what follows.
# "例如"/"比如" (for example) at the end announces what never comes: "请提供长方形和正方形的周长和面积，
# 或者在需要其他信息时告诉我，例如" (run qf, 2026-12-08).
_CHINESE_DANGLING = re.compile(r"(?:的|和|与|及|或|在|把|被|对|从|向|是|为|以|例如|比如|譬如|、|，|,)\s*$")
_ENDS_SENTENCE = re.compile(r"[?？.。!！:：;；)）\]】\"”'’`>]\s*$")


# A few words after a finished sentence, with no mark of their own, opening on a word no
# imperative starts with: the start of a sentence the model never finished ("...is not already
# implemented. The function", from the quickstart's evolve). "Include tests" after a sentence is
# an imperative and passes; "What are" after a question is a question begun and dropped. Two
# word characters before the mark, so "e.g. Quicksort" is no end.
_TRAILING_FRAGMENT = re.compile(r"(?<=\w\w)[.?!]\s+([A-Z][^.?!]*)$")
_FRAGMENT_OPENERS = frozenset(
    "the a an this that these those it its their his her each every some any and or but which where if for with in on at to of by from as such "
    "what how why when who is are does do can".split()
)
_CHINESE_TRAILING_FRAGMENT = re.compile(r"[。？！?!]\s*([^。？！?!]+)$")
FRAGMENT_WORDS = 4
FRAGMENT_HAN = 6


# A length limit that never says how long (run qd, 2026-12-08, both shipped): evolve's "Keep the
# answer under" closed with a full stop, "请把回答控制在您的要求内" ("within your requirements").
_LIMIT_WITHOUT_SIZE = re.compile(
    r"(?i)\b(?:keep|limit)\s+(?:the|your)\s+(?:answer|response|reply|explanation)\s+(?:under|below|within|to)\b"
    r"(?![^.?!]{0,30}?(?:\d|\b(?:words?|sentences?|lines?|paragraphs?|pages?|characters?|minutes?)\b))"
    r"|(?:控制在|不超过)(?![^。！？]{0,12}?(?:\d|[一二两三四五六七八九十百千]|字|句|段|行|页|分钟))"
)


# The prompt shows each opening followed by "…"; a model that copies the mark leaves it standing
# for the words it never wrote: "Implement a Python class that ... Finally, check your result by"
# (run qf, 2026-12-08). An ellipsis between spaces, outside code, is such a gap.
_GAP = re.compile(r"(?:^|\s)(?:\.{3}|…+)(?=\s|$)")


def check_complete(instruction: str) -> tuple[RejectReason, str] | None:
    """An instruction must end as a sentence does: not on a word that needs more after it, nor
    on the first words of a sentence begun after a finished one; a length limit must say how long,
    and no ellipsis may stand for words never written."""
    text = instruction.strip()
    limit = _LIMIT_WITHOUT_SIZE.search(text)
    if limit:
        return RejectReason.INCOMPLETE, f"a length limit that says no length: {text[limit.start() : limit.start() + 40]!r}"
    prose = re.sub(r"```.*?(?:```|$)|`[^`\n]*`", " ", text, flags=re.S)
    gap = _GAP.search(prose)
    if gap and "\n" not in prose.strip():
        return RejectReason.INCOMPLETE, f"an ellipsis stands for words never written: {prose[max(gap.start() - 30, 0) : gap.end() + 20]!r}"
    if not text or _ENDS_SENTENCE.search(text):
        return None
    if is_mostly_chinese(text):
        tail = _CHINESE_DANGLING.search(text)
        if tail:
            return RejectReason.INCOMPLETE, f"cut off after {tail.group(0).strip()!r}"
        fragment = _CHINESE_TRAILING_FRAGMENT.search(text)
        if fragment and len(fragment.group(1).strip()) <= FRAGMENT_HAN and not _CHINESE_REQUEST_WORD.search(fragment.group(1)):
            return RejectReason.INCOMPLETE, f"cut off after a finished sentence: {fragment.group(1).strip()!r}"
        return None
    tokens = words(text)
    if tokens and tokens[-1] in _DANGLING_ENDINGS:
        return RejectReason.INCOMPLETE, f"cut off after {tokens[-1]!r}"
    fragment = _TRAILING_FRAGMENT.search(text)
    if fragment:
        fragment_words = words(fragment.group(1))
        if len(fragment_words) <= FRAGMENT_WORDS and fragment_words[0] in _FRAGMENT_OPENERS:
            return RejectReason.INCOMPLETE, f"cut off after a finished sentence: {fragment.group(1).strip()!r}"
    return None


# A reference to the source the instruction was made from, which its reader will never see:
# "this document", "in this context" ("What is the purpose of the 'shift_expr' operator in this
# context?", from the quickstart), "as mentioned above". "In the context of X" names its
# context and passes. Also an instruction that talks about itself as an instruction: "请直接发送
# 这条指令。" ("send this instruction directly") echoed the evolve prompt's own rule.
_UNSEEN_SOURCE = re.compile(
    r"(?i)\b(?:this|the|that|given|above|provided|attached|same)\s+(?:document|text|passage|article|page|excerpt|source\s+file)\b"
    r"|\b(?:in|from)\s+this\s+file\b"
    r"|\bin\s+(?:this|that|the\s+given|the\s+above|the\s+same|such\s+a)\s+context\b"
    r"|\b(?:mentioned|described|shown|given|listed|discussed)\s+above\b"
    r"|\b(?:this|the\s+(?:above|original|given))\s+(?:instructions?|prompt|request)\b|\bthe\s+user'?s\s+request\b"
    r"|本文|这篇文章|这篇文档|该文档|这份文档|这段文字|上文|原文|文中|该文章"
    r"|在(?:此|这个|这种|该)?上下文中|如上所述|上面提到|(?:这|该|此|本|原)(?:条|个)?指令"
    # Rewrites that talk to the rewriter, not a user (the fresh-clone quickstart, 2026-12-08):
    # "请提供一个具体的例子，以便我更好地理解你的改写。", "……再写请求，以便帮助助手更好地理解和使用。",
    # "请告诉我具体要问的点，以便我更好地回答。"; run qc kept a clarify rewrite that asked back:
    # "请提供具体的要问的点，比如复利的计算方法、复利的稳定性、复利的未来价值等。"
    r"|你的改写|再写请求|帮助助手|以便我更好地回答|要问的点|你还需要什么"
    # A concretize rewrite that asks for the vague statement it was to replace (run qd):
    # "请提供一个笼统的说法，比如使用 Python 的 `statistics` 模块来计算平均数。"
    r"|(?:提供|给出|写出?)一个笼统的说法"
    # A clarify rewrite that kept the rewriter's task in it (run qe, 2026-12-08): "How do I add
    # class attributes in a method? Please provide the exact point you changed; then write the
    # instruction in English."
    r"|\b(?:the\s+)?(?:exact\s+)?points?\s+you\s+changed\b|\bwrite\s+the\s+(?:instruction|request|prompt)\s+in\s+(?:english|chinese)\b"
)
# "根据这两个笼统的说法，你是否可以更改为一个特定的例子？" (a concretize rewrite, 2026-12-08):
# statements the reader never sees; the rewrite answered the evolve prompt, not a user. They pass
# when the instruction goes on to show them (a colon, a quote or code after the words).
_UNSEEN_STATEMENTS = re.compile(
    r"(?i)\b(?:these|those|the\s+above)\s+(?:two\s+|three\s+|several\s+)?(?:general\s+|broad\s+|vague\s+)?statements\b"
    r"|(?:这|那)(?:两|几|些)(?:个|种|条)?(?:笼统的|宽泛的|一般的)?(?:说法|陈述|观点)|上述(?:说法|陈述|观点)"
)
# "评价：此代码实现二分查找的正确性，但在某些情况下可能会导致查找失败。请找出并修复其中的错误。"
# (a debug instruction of the quickstart, 2026-12-08): "this code", and no code. It passes where
# the instruction introduced code before ("编写一个函数……并分析该函数的复杂度").
_UNSEEN_CODE_ZH = re.compile(r"(?:此|该|上述|上面的|这个)(?:段|个)?(?:代码|函数|程序|脚本|方法)")
# "怎样才能打通这条道路？" (run qd, 2026-12-08, twice in the shards): a demonstrative in the first
# clause, before anything it could point back to, points into the passage the reader never saw.
# It passes where the instruction shows something (a colon, a quote, code, a new line).
_FIRST_CLAUSE_DEMONSTRATIVE_ZH = re.compile(r"^[^，。？！；：,.?!;:\n]*?(?P<this>(?:这|该|此)(?:条|个|种|项|些|位|座|段|类|部|篇|次)\w{0,4})")
_CODE_NOUN_ZH = re.compile(r"代码|函数|程序|脚本|方法")
_SHOWN_AFTER = re.compile(r"[:：\"“「`\n]")
# "the following code" must be followed by it: a newline or a code span in the instruction.
# So must "the given function", "the implemented class" and "a snippet": a request about code
# the reader is never shown.
_FOLLOWING = re.compile(
    r"(?i)\b(?:the\s+)?following\s+(?:python\s+)?(?:code|snippet|function|program|list|table|text|data|class)\b"
    r"|\b(?:the|this)\s+(?:given|provided|above|implemented|existing|defined)\s+(?:python\s+)?(?:code|snippet|function|program|class|method|script)\b"
    # "What is the purpose of this function?" (the quickstart) with no function in it.
    r"|\bthis\s+(?:python\s+)?(?:code|function|program|class|method|script|module)\b"
    r"|\b(?:a|the|this)\s+(?:short\s+|small\s+)?(?:code\s+|python\s+)?snippet\b"
    # "Implement the same functionality in a similar function." (the quickstart): the same as
    # what? "the same functionality as zip()" names it and passes.
    r"|\b(?:the\s+same|a\s+similar|similar)\s+(?:functionality|function|class|method|program|logic|code|behaviou?r)\b(?!\s+(?:as|to)\b)"
    r"|以下代码|下面的?(?:Python)?代码|下列代码|给定的代码|这段代码|相同的功能|类似的函数"
)
# After "this Python code:" must come code (run qc, 2026-12-08, kept both): "Find and fix the bug
# in this Python code:\n%s" (a format placeholder) and "This Python function has a bug. Fix it:
# This function subtracts the second argument from the first one. It should be..." (prose).
# Code shows a fence, a statement keyword at a line start, an assignment or a call. (What counts
# as announcing code: _ANNOUNCED_CODE, below the code nouns.)
_CODE_LINE = re.compile(
    r"```|^\s*(?:def|class|return|import|from|for|while|if|elif|else|try|except|with|print|raise|assert|yield|lambda)\b"
    r"|^\s*[\w.\[\]]+\s*(?:[-+*/%]?=)(?!=)|\w\([^()\n]*\)",
    re.MULTILINE,
)


def _shows_code(text: str) -> bool:
    """Whether `text` holds a line of code (see _CODE_LINE)."""
    return _CODE_LINE.search(text) is not None


_NUMERIC = re.compile(
    r"\d|(?i:\b(?:calculate|compute|solve|how\s+many|how\s+much|sum|product|percent|equation)\b)|计算|多少|几|求|[一二三四五六七八九十百千万]"
)
_OPTION = re.compile(r"(?:^|[\s(（])([A-D])\s*[).:：、）]", re.MULTILINE)


def plausible_task_type(instruction: str, claimed: str) -> str:
    """The model's type label, unless the instruction cannot be that type: "math" needs a number or
    a calculation, "choice" needs at least two lettered options; such labels become "open"."""
    if claimed == "math" and not _NUMERIC.search(instruction):
        return "open"
    if claimed == "choice" and not has_options(instruction):
        return "open"
    return claimed


def has_options(instruction: str) -> bool:
    """Whether the instruction lists at least two lettered options (A-D), as a choice question does."""
    return len(set(_OPTION.findall(instruction))) >= 2


# "Evaluate the return value of the function" (the quickstart, 2026-12-07): "the function" that
# nothing in the instruction introduces. Passes when the noun was introduced ("Write a function
# that ... Then test the function"), is named ("the function `zip`", "the code that ...", "the
# class attribute"), or code or a name() is in the instruction. Of 135 kept instructions of six
# quickstart runs this held three, all pointing at code the reader never sees.
_DANGLING_NOUN = r"(?:code|function|program|script|method|class|module|snippet)"
# A `_FOLLOWING` match that names a piece of code (not a list, table or text).
_ANNOUNCED_CODE = re.compile(rf"(?i){_DANGLING_NOUN}|代码")
_DANGLING_THE = re.compile(
    rf"\bthe\s+(?:python\s+)?(?P<noun>{_DANGLING_NOUN})\b"
    r"(?!\s+(?:that|which|named|called|of|in|for|to|with|from|below|above|`|\w+\(\)|attributes?|variables?|methods?|keyword|statement|body"
    r"|definition|objects?|instances?|names?|signature|calls?|level|hierarchy|decorator|syntax))(?!['’]s\b)",
    re.IGNORECASE,
)

# Any code noun introduced before counts: "a Python function ... the code".
_INTRODUCED_NOUN = re.compile(rf"\b(?:a|an|one|your|own|new|two|three|several|some|any|each|every)\s+(?:[\w-]+\s+){{0,3}}{_DANGLING_NOUN}s?\b", re.IGNORECASE)


def _dangling_reference(instruction: str) -> str | None:
    """'the function' with no function in the instruction (see _DANGLING_THE), or None."""
    if "\n" in instruction.strip() or "`" in instruction or re.search(r"\w\(\)", instruction):
        return None
    found = _DANGLING_THE.search(instruction)
    if found is None:
        return None
    if _INTRODUCED_NOUN.search(instruction[: found.start()]):
        return None
    return found.group(0)


def check_self_contained(instruction: str) -> tuple[RejectReason, str] | None:
    """A user who sends the instruction has no source document: it must not point at one, and
    "the following code" must include the code."""
    unseen = _UNSEEN_SOURCE.search(instruction)
    if unseen:
        return RejectReason.NOT_SELF_CONTAINED, f"refers to {unseen.group(0)!r}, which the reader never sees"
    code = _UNSEEN_CODE_ZH.search(instruction)
    if code and not _CODE_NOUN_ZH.search(instruction[: code.start()]) and "\n" not in instruction.strip() and "`" not in instruction:
        return RejectReason.NOT_SELF_CONTAINED, f"refers to {code.group(0)!r}, which the reader never sees"
    this = _FIRST_CLAUSE_DEMONSTRATIVE_ZH.search(instruction.strip())
    if this and is_mostly_chinese(instruction) and not _SHOWN_AFTER.search(instruction):
        return RejectReason.NOT_SELF_CONTAINED, f"refers to {this.group('this')!r}, which the reader never sees"
    statements = _UNSEEN_STATEMENTS.search(instruction)
    if statements and not _SHOWN_AFTER.search(instruction, statements.end()):
        return RejectReason.NOT_SELF_CONTAINED, f"refers to {statements.group(0)!r}, which the reader never sees"
    dangling = _dangling_reference(instruction)
    if dangling:
        return RejectReason.NOT_SELF_CONTAINED, f"refers to {dangling!r}, which the instruction never shows or names"
    following = _FOLLOWING.search(instruction)
    if following and "\n" not in instruction.strip() and "`" not in instruction:
        return RejectReason.NOT_SELF_CONTAINED, f"announces {following.group(0)!r} but includes none"
    if following and _ANNOUNCED_CODE.search(following.group(0)) and not _shows_code(instruction[following.end() :]):
        return RejectReason.NOT_SELF_CONTAINED, f"announces {following.group(0)!r} but what follows is no code"
    if instruction.rstrip().endswith((":", "：")):
        # "...should include the following:" (seen from the 0.5B model's expand) with nothing after.
        return RejectReason.NOT_SELF_CONTAINED, "ends with a colon: announces something it does not include"
    return None


def check_language(instruction: str, language: str, *, context: str = "", code: bool = False) -> tuple[RejectReason, str] | None:
    """An instruction in the language it was asked in: Chinese for Chinese seeds, and not Chinese
    for the others (a Chinese seed answered in English is no Chinese data); and not one with a
    word swapped into the other language mid-sentence (`check_swapped_term`)."""
    chinese = is_mostly_chinese(instruction)
    if language == "zh" and not chinese:
        return RejectReason.LANG, "asked for Chinese, written in another language"
    if language != "zh" and chinese:
        return RejectReason.LANG, f"asked for {language}, written in Chinese"
    return check_swapped_term(instruction, language, context=context, code=code)


# A lower-case English word of four letters or more, set in Chinese text as a plain word (not
# code: no `_`, `.`, `(`, digits or backticks around it).
_PLAIN_LATIN_WORD = re.compile(r"(?<![A-Za-z0-9_`'\"._(/-])[a-z]{4,}(?![A-Za-z0-9_`'\"._(/-])")
_HAN_RUN = re.compile(r"[\u3400-\u9fff]+")


def check_swapped_term(instruction: str, language: str, *, context: str = "", code: bool = False) -> tuple[RejectReason, str] | None:
    """A term of the other language that neither the instruction's source (`context`: its seed
    text, or the instruction it rewrites) nor code explains: the quickstart's evolve wrote
    "illumination的太阳能转换为化学能的必要性是什么？" for a question about 光照. In Chinese rows, a
    lower-case English word (names are capitalised: Python, HTTP; in `code` rows lower-case
    identifiers such as numpy are expected, so none is flagged there); in the others, any Han."""
    known = context.lower()
    if language == "zh":
        if code:
            return None
        swapped = [word for word in _PLAIN_LATIN_WORD.findall(instruction) if word not in known]
    else:
        swapped = [run for run in _HAN_RUN.findall(instruction) if run not in context]
    if swapped:
        return RejectReason.LANG, f"swaps {swapped[0]!r} into another language mid-sentence; neither its source nor code has it"
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


# The assistant's voice, not a user's: "Please provide the specific task you want assistance
# with, and I'll do my best to help you." (the quickstart's evolve, rewriting a request).
# Or a description of a request instead of one: "Request a user to compare two Python
# variables..." (the quickstart's evolve), "请求用户计算...".
_ASSISTANT_VOICE = re.compile(
    r"(?i)\b(?:I'?ll\s+do\s+my\s+best|I\s+will\s+do\s+my\s+best|let\s+me\s+know\s+if\s+you|I\s+hope\s+this\s+helps|happy\s+to\s+help|feel\s+free\s+to\s+ask)\b"
    r"|(?i:\b(?:ask|request)\s+(?:the|a)\s+user\b)|(?i:\bplease\s+provide\b[^.?!]*\byou\s+(?:would\s+like|want|need)\b)"
    r"|希望(?:这|对你|对您)(?:有|能)帮助|如果你有任何(?:问题|疑问)|我会尽力|请求用户|要求用户|让用户"
)


def check_is_request(instruction: str, *, min_words: int = 4) -> tuple[RejectReason, str] | None:
    """An instruction must ask for something: a question, or an imperative/interrogative opener,
    in at least `min_words` words (Han characters count one each, and need twice as many), in a
    user's voice, not the assistant's."""
    text = instruction.strip()
    if not text:
        return RejectReason.EMPTY, "empty instruction"
    voice = _ASSISTANT_VOICE.search(text)
    if voice:
        return RejectReason.NOT_A_REQUEST, f"speaks as the assistant, or of the user: {voice.group(0)!r}"
    # The request is the prose before any code it quotes: synthesize's own debug openings ("找出并
    # 修复下面Python代码中的错误：", "This Python function has a bug. Fix it:") are followed by the
    # code, which made them read as English, or as no request, and every such instruction was
    # rejected (run qb, 2026-12-08).
    head = text.split("\n", 1)[0].strip() or text
    chinese = is_mostly_chinese(head)
    needed = min_words * 2 if chinese else min_words
    if len(words(text)) < needed:
        return RejectReason.TOO_SHORT, f"{len(words(text))} words; a request needs at least {needed}"
    if chinese:
        return check_complete(text) if _CHINESE_REQUEST.search(head) else (RejectReason.NOT_A_REQUEST, "no question mark or request word")
    if "?" in head:
        return check_complete(text)
    first_words = [[word for word in words(sentence)[:4] if word not in _COURTESY] for sentence in _SENTENCE_START.split(head)]
    if any(tokens and tokens[0] in _REQUEST_OPENERS for tokens in first_words):
        return check_complete(text)
    tokens = first_words[0] if first_words else []
    return RejectReason.NOT_A_REQUEST, f"neither a question nor a request: starts with {' '.join(tokens[:3])!r}"


# Where a sentence of a request ends: "This Python function has a bug. Fix it:" asks in its second.
_SENTENCE_START = re.compile(r"(?<=[.!:;])\s+")


# After its question, a statement that restates the question's words (a run of this many):
# the answer, written into the instruction. "计算公式中的已知变量是什么？已知变量是本金（P）、
# 年利率（r）、期数（n）。" (the quickstart's evolve) restates 已知变量是.
ANSWER_RUN_WORDS = 3
ANSWER_RUN_HAN = 4
_QUESTION_MARK = re.compile(r"[?？]")
_SENTENCE_BREAK = re.compile(r"[.!?。！？\n]")

# A calculation needs quantities: a digit, a number word, or a Chinese numeral with its unit
# ("两年", "一万元"; not the 二 of 二分查找). Of the 16 distinct `calculate` instructions of the
# runs read on 2026-12-08, 12 had none, all unanswerable as asked: "计算光合作用带来的氧气和
# 二氧化碳平衡的重要性", "Calculate the square of a number using a class method" (a coding
# task, made a math row), "计算二分查找的查找范围" (answered "12").
_QUANTITY = re.compile(
    r"\d|(?i:\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million"
    r"|billion|half|twice|double|triple|dozen)\b)"
    r"|[零一二三四五六七八九十百千万亿两半]+(?:个|元|块|角|年|月|天|日|周|小时|分钟|秒|次|倍|岁|人|米|厘米|公里|千米|克|千克|公斤|斤|升|毫升|本|只|位|件|张|道|份|成)"
    r"|百分之|[%％]"
)


def check_has_quantities(instruction: str, task_type: str) -> tuple[RejectReason, str] | None:
    """A `calculate` instruction that gives no number to calculate with."""
    if task_type != "calculate" or _QUANTITY.search(instruction):
        return None
    return RejectReason.NOT_SELF_CONTAINED, "asks for a calculation but gives no quantity to calculate with"


def check_answers_itself(instruction: str) -> tuple[RejectReason, str] | None:
    """A question followed by a statement that answers it: the text after the last question mark
    is no request of its own ("Explain why.", "请说明理由。" pass) and restates a run of the
    question's words, as an answer does."""
    text = instruction.strip()
    marks = list(_QUESTION_MARK.finditer(text))
    if not marks:
        return None
    end = marks[-1].end()
    after = text[end:].strip()
    if not after or _opens_request(after):
        return None
    starts = [match.end() for match in _SENTENCE_BREAK.finditer(text, 0, end - 1)]
    question = text[starts[-1] if starts else 0 : end]
    run = _longest_common_run(words(question), words(after))
    if run >= (ANSWER_RUN_HAN if is_mostly_chinese(text) else ANSWER_RUN_WORDS):
        return RejectReason.CONTAINS_ANSWER, f"answers its own question after it: {after[:120]!r}"
    return None


def _opens_request(text: str) -> bool:
    if is_mostly_chinese(text):
        return bool(_CHINESE_REQUEST_WORD.search(text))
    tokens = [word for word in words(text)[:4] if word not in _COURTESY]
    return bool(tokens) and tokens[0] in _REQUEST_OPENERS


def _longest_common_run(first: list[str], second: list[str]) -> int:
    """Length of the longest run of tokens the two lists share, in order."""
    best = 0
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0] * (len(second) + 1)
        for j, other in enumerate(second, start=1):
            if token == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


# A quoted run of the seed's prose this long is the seed pasted into the question: the
# quickstart's 0.5B wrote "写一篇关于丝绸之路的旅行指南：" followed by 95 characters of its
# passage, and its answer then copied them back. Kept instructions of five earlier runs quoted
# at most 9 words or Han characters in a row; code blocks are not counted (a debug task quotes
# the code it is about).
SEED_RUN_WORDS = 20
SEED_RUN_HAN = 30


def check_copies_seed(instruction: str, seed_text: str, *, max_overlap: float = 0.8, ngram: int = 6) -> tuple[RejectReason, str] | None:
    """Reject an instruction whose word n-grams mostly appear verbatim in its seed, or whose
    prose pastes a long run of the seed."""
    instruction_words = words(instruction)
    if len(instruction_words) < ngram:
        return None
    overlap = copied_share(instruction, seed_text, ngram=ngram)
    if overlap >= max_overlap:
        return RejectReason.COPIES_SEED, f"{overlap:.0%} of its {ngram}-word sequences appear verbatim in the seed"
    prose = prose_of(instruction)
    longest = SEED_RUN_HAN if is_mostly_chinese(prose) else SEED_RUN_WORDS
    run = _longest_common_run(words(prose), words(seed_text))
    if run >= longest:
        return RejectReason.COPIES_SEED, f"quotes {run} words of its seed in a row (the limit is {longest - 1})"
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


def copied_share(text: str, source: str, *, ngram: int) -> float:
    """Share of `text`'s word n-grams found verbatim in `source` (0 when text is shorter than n)."""
    own = _ngrams(words(text), ngram)
    if not own or not source:
        return 0.0
    return len(own & _ngrams(words(source), ngram)) / len(own)


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
