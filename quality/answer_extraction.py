"""Extract a canonical final answer from a model response, so that samples can be compared by vote.

Equal answers written differently map to one string: `\\boxed{\\frac{1}{2}}`, "The answer is 0.5.",
"1/2" all give "0.5"; "１,２００ 元", "$1,200", "1.2e3", "1.2 × 10^3", "一千二百" and "one thousand two
hundred" give "1200"; "(B)", "option b" give "B"; "Yes.", "是的" give "yes". Percent signs,
currency signs and trailing units are dropped, so "45%" and "45" agree. Numbers are exact: a
terminating decimal is written as a decimal ("0.25"), any other rational as a reduced fraction
("1/3").

A number is read whole or not at all (read_number): digits with thousands separators and
decimals, scientific notation (1e3, 1.5E-4, 1.5×10^3, 1.5 \\times 10^{3}, 10³), powers (2^{10}),
fractions (3/4, \\frac{3}{4}), exact roots (\\sqrt{16}, \\sqrt[3]{27}), a scale after it (2.5
million, 3万, 1.5亿), English number words (twelve, one hundred and five, three point five) and
Chinese numerals (十二, 两千, 三百五, 百分之五十, 三分之二). Text that only looks like a number, a
date (2024-01-05), a version (3.4.5), a range (3-5), a time (3:45), a word with digits
(COVID-19, 2x), gives no number rather than a piece of one. Number words are read only where an
answer is stated or in a whole short response, never picked out of running text ("this one" is
not 1), and a Chinese numeral in running text only before a measure word (五个, not 一些).

Markdown that chat models put around an answer is read through: bold and italic markers
("**Answer:** 12", "Answer: **12**", "**答案：** 12"), code spans ("`12`"), an answer heading with
the answer on a following line ("### Final Answer" or "**Final Answer**", then "12"), and
GSM8K's closing "#### 12".
"""

import math
import re
import unicodedata
from decimal import Decimal, localcontext
from fractions import Fraction

# Where a response states its answer, latest wins. Each pattern's group is the answer span.
_ANSWER_MARKERS = [
    re.compile(r"(?:final\s+)?answer\s+(?:is|would\s+be|should\s+be)\s*[:：]?\s*(.+)", re.IGNORECASE),
    re.compile(r"(?:final\s+)?answer\s*[:：]\s*(.+)", re.IGNORECASE),
    re.compile(r"(?:correct\s+)?(?:option|choice)\s+is\s*[:：]?\s*(.+)", re.IGNORECASE),
    re.compile(r"(?:最终)?答案\s*(?:是|为|应为|应该是)?\s*[:：]?\s*(.+)"),
]
# GSM8K's convention: the answer alone after "####" at the start of a line (a number, maybe signed or
# with a currency sign), so a "#### Step 2" heading is not taken for an answer.
_GSM8K_MARKER = re.compile(r"^[ \t]*####[ \t]*([-+]?[$€£¥]?[ \t]*\.?\d.*)$", re.MULTILINE)
# A line that only announces the answer ("### Final Answer", "Final answer:", "答案：" once emphasis is
# gone); the answer is the next non-empty line.
_ANSWER_HEADING = re.compile(r"^[ \t>#-]*(?:(?:final\s+)?answer|(?:最终)?答案)[ \t]*[:：]?[ \t]*\n\s*(\S.*)$", re.IGNORECASE | re.MULTILINE)
# Markdown emphasis ("**12**", "*Answer:*", "__12__") and code spans ("`12`"). A delimiter opens only
# after a line start, space or punctuation and before a non-space, and closes the other way round, so
# "2**3" and "a * b * c" keep their asterisks.
_EMPHASIS = re.compile(r"(?<![\w*_`])(\*\*|__|\*|`+)(?=\S)(.+?)(?<=\S)\1(?![\w*_`])")
# A comma ends the span only before a space or a non-ASCII character ("12, so" or "325，因为"), not in
# "1,234".
_SENTENCE_END = re.compile(r"[.。!！?？;；,](?:\s|$)|,(?=[^\x00-\x7f])|[。！？；]|\n")

_OPTION_LETTER = re.compile(
    r"^(?:(?:option|choice|选项|选)\s*)?[(\[]?([A-Ea-e])[)\]]?[.:：)]?$|^[(\[]([A-Ea-e])[)\]]|^([A-E])[.:：)]\s",
    re.IGNORECASE,
)
_YES = {"yes", "true", "correct", "是", "是的", "对", "对的", "正确", "成立"}
_NO = {"no", "false", "incorrect", "否", "不是", "不对", "错", "错误", "不正确", "不成立"}
_LEADING_YES_NO = re.compile(r"^(yes|no|是的|不是|不对|是|否|对|错)(?:[,，.。!！:：\s]|$)", re.IGNORECASE)

# --- numbers in digits and LaTeX: the tokens read_number parses ------------------------------
_NUMBER_TOKEN = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"\s*(?:(?P<number>{_NUMBER_TOKEN})|(?P<command>\\(?:[dt]?frac|sqrt|times|cdot))|(?P<symbol>[{{}}()\[\]^/×·⋅*√xX+-]))")
_TIMES = {"×", "·", "⋅", "*", "x", "X", "\\times", "\\cdot"}
# Bounds that keep a pasted "2^{99999}" from costing seconds: exponents and the result's size.
_MAX_EXPONENT = 1000
_MAX_BITS = 12_000

# --- what may follow a number ------------------------------------------------------------------
_CURRENCY_PREFIX = re.compile(r"^(?:[$€£¥₹]|usd|eur|rmb|cny|us\$)\s*", re.IGNORECASE)
_SCALE_WORDS = {"hundred": 10**2, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_ENGLISH_SCALE = re.compile(r"\s+(hundred|thousand|million|billion|trillion)$", re.IGNORECASE)
# A unit after a space: percent and degree words, or up to three words ("18 dollars", "3 square
# meters"), none of them a scale ("2.5 million dollars" is 2,500,000) or a word that goes on with
# the number ("2 and a half", "2 thirds", "5 squared", "10 to the power of 3", "5 x 3").
_NOT_UNIT = (
    r"(?!(?:hundred|thousand|million|billion|trillion|and|an?|half|halves|thirds?|quarters?|fourths?|point|"
    r"plus|minus|times|over|divided|by|to|or|of|out|squared|cubed|power|e|x)\b)"
)
_SPACED_UNIT = re.compile(
    rf"\s*(?:%|‰|per\s*cent|percent|°\s*[CF]?)$|\s+{_NOT_UNIT}[A-Za-z°][A-Za-z.'/²³°-]*(?:\s+{_NOT_UNIT}[A-Za-z][A-Za-z.'/-]*){{0,2}}$",
    re.IGNORECASE,
)
# A unit written against the number: only these, so that "2x" or "5k" never read as 2 or 5.
_GLUED_UNITS = (
    "%", "‰", "°", "°c", "°f", "mm", "cm", "km", "m", "kg", "g", "mg", "lb", "lbs", "oz", "ml", "l", "s", "ms",
    "min", "h", "hr", "hrs", "ft", "mi", "mph", "km/h", "m/s", "m²", "cm²", "km²", "m³", "cm³", "kb", "mb", "gb", "tb",
    "pm", "am",
)  # fmt: skip
_GLUED_UNIT = re.compile(rf"(?<=[\d}}])(?:{'|'.join(sorted(map(re.escape, _GLUED_UNITS), key=len, reverse=True))})$", re.IGNORECASE)

# --- Chinese numerals --------------------------------------------------------------------------
_CHINESE_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
    "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_CHINESE_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CHINESE_LARGE_UNITS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
_CHINESE_NUMERAL_CHARS = "".join([*_CHINESE_DIGITS, *_CHINESE_SMALL_UNITS, *_CHINESE_LARGE_UNITS])
_CHINESE_NUMBER = re.compile(
    rf"(?P<percent>百分之)?(?P<sign>负)?(?P<int>[{_CHINESE_NUMERAL_CHARS}]+)"
    rf"(?:点(?P<frac>[{''.join(_CHINESE_DIGITS)}]+)|分之(?P<numerator>[{_CHINESE_NUMERAL_CHARS}]+))?"
)
# Scales after digits ("3万", "1.5亿", "2千万"), unless 千 starts a unit (千米 km, 千克 kg, 千瓦 kW).
_KILO = "千(?![米克瓦卡字帕])"
_KILO_UNIT = re.compile("千[米克瓦卡字帕]")
_CHINESE_SCALE = re.compile(rf"(?<=[\d}}])((?:[百万亿萬億]|{_KILO})+)$")
# Measure words and units after a number. In running text a Chinese numeral is a number only
# before one of the measure words: "一共有五个苹果" reads 5, while "一些", "十分", "三明治" read nothing.
_MEASURE_WORDS = "个只本件位名元块角米岁次天年周张条辆台道题颗棵头匹斤克升页倍层户箱盒袋瓶杯碗份组队场"
_CHINESE_UNIT = re.compile(rf"\s*(?:千[米克瓦卡字帕]|公里|公斤|厘米|毫米|平方米|立方米|小时|分钟|个月|[{_MEASURE_WORDS}月日度秒分人])+$")
_CHINESE_IN_TEXT = re.compile(
    rf"(?:百分之)?负?[{_CHINESE_NUMERAL_CHARS}]+(?:点[{''.join(_CHINESE_DIGITS)}]+|分之[{_CHINESE_NUMERAL_CHARS}]+)?(?=[{_MEASURE_WORDS}])"
)

# --- English number words ----------------------------------------------------------------------
_ONES = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
# Fractions in words: the denominator, and whether the word is plural ("two thirds", "one third").
_DENOMINATORS = {
    "half": (2, False), "halves": (2, True), "third": (3, False), "thirds": (3, True),
    "quarter": (4, False), "quarters": (4, True), "fourth": (4, False), "fourths": (4, True),
}  # fmt: skip
_NUMBER_WORD = re.compile(r"[a-z]+")

_BOXED_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}|\\[dt]?frac\s*(\d)\s*(\d)")
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[,;:! ]|\\(?:left|right)(?![a-zA-Z])|\\displaystyle|\^\s*\{?\\circ\}?|\\%|\\\$|\$")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_MAX_SHORT_ANSWER_WORDS = 8
_MAX_SHORT_ANSWER_CHARS = 40  # also bounds answers in scripts written without spaces

# --- running text: where numbers are looked for when no answer is stated ---------------------
# Spaces around the operators of a number ("1.5 × 10^3", "3 / 4") go, so it is one chunk.
_OPERATOR_SPACES = re.compile(r"\s*([×·⋅*/^=]|\\times|\\cdot)\s*|(?<=\d)\s+([xX])\s*(?=10\^)")
# A chunk is a run of anything but spaces and Chinese characters (the punctuation around it is
# dropped), with a scale after it: Chinese ("3万") or an English word ("1.4 billion").
_CHUNK = re.compile(
    rf"[^\s\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]+(?:[百万亿萬億]|{_KILO})*(?:\s+(?:hundred|thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)
# English number words in running text: a run of them, read if it counts more than "one" or
# "zero" (a pronoun and a word as often as numbers) or holds a scale ("one hundred").
_WORD_NUMBERS = sorted({*_ONES, *_TENS, *_SCALE_WORDS, "point", *_DENOMINATORS}, key=len, reverse=True)
_ENGLISH_RUN = re.compile(
    rf"\b(?:(?:minus|negative)\s+)?(?:{'|'.join(_WORD_NUMBERS)})(?:(?:\s+|-|\s+and\s+|\s+a\s+)(?:{'|'.join(_WORD_NUMBERS)}))*\b",
    re.IGNORECASE,
)
_CHUNK_PUNCTUATION = "\"'“”‘’()[]<>,.;:!?，。；：！？、…"


def extract_answer(response: str | None) -> str | None:
    """The canonical final answer of `response`, or None when it states none that can be compared
    (None or blank input included).

    Markdown emphasis and code spans are read through first. Then it looks, in order, at the last
    `\\boxed{...}` (a box cut off before its closing brace gives None), the last "answer is X" /
    "Answer: X" / "答案是X" / "#### X" / an answer heading followed by X on its own line, a response
    that is itself an option letter, yes/no or number, a response starting with yes/no, the last
    number in the running text (_number_chunks, _read_chunk), and last a whole response short
    enough to compare as a string.
    """
    if not isinstance(response, str) or not response.strip():
        return None
    text = _strip_markdown(_normalise_characters(response))
    if _BOXED_START.search(text) is not None:
        boxed = _last_boxed(text)
        return canonicalise_answer(boxed) if boxed is not None else None
    marked = _last_marked_span(text)
    if marked is not None:
        answer = canonicalise_answer(marked)
        if answer is not None:
            return answer
    whole = _clean_span(text)
    typed = _canonicalise_typed(whole)
    if typed is not None:
        return typed
    leading = _LEADING_YES_NO.match(text.strip())
    if leading is not None:
        return _yes_or_no(leading.group(1))
    chunks = _number_chunks(text)
    number = _read_chunk(chunks[-1]) if chunks else None
    # The last number decides; text whose last number does not read (a date, a version) is
    # compared as a short string if it is one, never as a piece of that number.
    return number if number is not None else _normalise_short_string(whole)


def canonicalise_answer(span: str | None) -> str | None:
    """The canonical form of an answer span: option letter, yes/no, number, or normalised short
    string; None for None or a blank span."""
    if not isinstance(span, str):
        return None
    span = _clean_span(_normalise_characters(span))
    return _canonicalise_typed(span) or _normalise_short_string(span)


def read_number(span: str) -> Fraction | None:
    """The value of a span that is one number in digits or LaTeX and nothing else: "1,234.5", "1e3",
    "1.5×10^3", "2^{10}", "\\frac{3}{4}", "\\sqrt[3]{27}", "-\\dfrac{6}{8}"; None for anything else,
    an irrational root or a zero denominator included. Never a value read from part of the span."""
    tokens = _tokenise(span)
    if tokens is None or not tokens:
        return None
    parser = _NumberParser(tokens)
    value = parser.expression()
    return value if value is not None and parser.done() else None


def read_english_number(span: str) -> Fraction | None:
    """The value of English number words making up the whole span: "twelve", "one hundred and five",
    "twenty-three thousand", "minus seven", "three point one four", "two thirds"; None otherwise."""
    words = span.lower().replace("-", " ").replace(",", " ").split()
    if not words or any(_NUMBER_WORD.fullmatch(word) is None for word in words):
        return None
    negative = words[0] in ("minus", "negative")
    words = words[1:] if negative else words
    if "point" in words:
        whole, digits = words[: words.index("point")], words[words.index("point") + 1 :]
        integer = _english_integer(whole) if whole else 0
        if integer is None or not digits or any(_ONES.get(word, 10) > 9 for word in digits):
            return None
        value = Fraction(f"{integer}.{''.join(str(_ONES[word]) for word in digits)}")
    elif words and words[-1] in _DENOMINATORS:
        denominator, plural = _DENOMINATORS[words[-1]]
        count = 1 if words[:-1] in (["a"], ["one"]) else _english_integer(words[:-1])
        if not count or (count > 1) != plural:  # "one third", "two thirds"; never "two third"
            return None
        value = Fraction(count, denominator)
    else:
        integer = _english_integer(words)
        if integer is None:
            return None
        value = Fraction(integer)
    return -value if negative else value


def parse_chinese_integer(numeral: str) -> int:
    """The value of a Chinese integer numeral: "三百二十五" -> 325, "两千零一" -> 2001, "二零二四" -> 2024,
    "一亿二千万" -> 120000000, and the spoken short forms "三百五" -> 350, "一万二" -> 12000.

    Raises ValueError for characters that are not numerals and for sequences no numeral takes
    ("二三百", "百千", "十两"), rather than returning a value read from part of them."""
    bad = [char for char in numeral if char not in _CHINESE_NUMERAL_CHARS]
    if bad:
        raise ValueError(f"{bad[0]!r} in {numeral!r} is not a Chinese numeral character; pass only numerals")
    if len(numeral) > 1 and all(char in _CHINESE_DIGITS and char != "两" for char in numeral):
        return int("".join(str(_CHINESE_DIGITS[char]) for char in numeral))  # read digit by digit: 二零二四
    value = None if numeral.endswith("两") and len(numeral) > 1 else _chinese_integer(numeral, None)
    if value is None:
        raise ValueError(f"{numeral!r} is not a well-formed Chinese numeral (units must fall, one digit before each)")
    return value


def _chinese_integer(numeral: str, short_form_place: int | None) -> int | None:
    """Value of a numeral, split at its first 亿 then 万 (the part before counts that unit, the part
    after must stay below it); None if malformed. short_form_place: what a lone last digit counts
    after such a split ("一万二": thousands)."""
    for characters, unit in (("亿億", 10**8), ("万萬", 10**4)):
        split = min((numeral.index(char) for char in characters if char in numeral), default=None)
        if split is not None:
            head = _chinese_integer(numeral[:split], None)
            tail = _chinese_integer(numeral[split + 1 :], unit // 10)
            if not head or tail is None or tail >= unit:
                return None
            return head * unit + tail
    return _chinese_section(numeral, short_form_place)


def _chinese_section(numeral: str, short_form_place: int | None) -> int | None:
    """Value of a numeral below 10,000 ("三千零五", "十五", "三百五"); None if malformed."""
    value, digit, last_unit, zero_seen = 0, None, None, False
    for index, char in enumerate(numeral):
        if char in _CHINESE_DIGITS and _CHINESE_DIGITS[char] == 0:
            zero_seen = True
        elif char in _CHINESE_DIGITS:
            if digit is not None:
                return None  # two digits in a row: "二三百"
            digit = _CHINESE_DIGITS[char]
        elif char in _CHINESE_SMALL_UNITS:
            unit = _CHINESE_SMALL_UNITS[char]
            if (last_unit is not None and unit >= last_unit) or (digit is None and not (unit == 10 and index == 0)):
                return None  # units must fall ("百千"); only a leading 十 stands without a digit
            value, digit, last_unit, zero_seen = value + (digit or 1) * unit, None, unit, False
        else:
            return None
    if digit is None:
        return value
    if zero_seen or (last_unit is None and short_form_place is None) or last_unit == 10:
        return value + digit
    # A last digit straight after a unit is the next place down: "三百五" 350, "一万二" 12,000.
    return value + digit * (last_unit // 10 if last_unit is not None else short_form_place)


def _normalise_characters(text: str) -> str:
    """Full-width forms to ASCII (NFKC: "１２３" -> "123", "（Ｂ）" -> "(B)"), one minus sign, and
    superscript digits as powers ("10³" -> "10^{3}", which NFKC alone would make "103")."""
    text = _SUPERSCRIPT_RUN.sub(lambda run: "^{" + run.group(0).translate(_SUPERSCRIPTS) + "}", text)
    text = unicodedata.normalize("NFKC", text)
    return text.replace("\u2212", "-").replace("\u2044", "/").replace("{,}", ",")


def _strip_markdown(text: str) -> str:
    """The text without emphasis and code-span markers around words: "**Answer:** **12**" -> "Answer: 12"."""
    previous = None
    while previous != text:  # nested emphasis: "***12***", "**`12`**"
        previous, text = text, _EMPHASIS.sub(r"\2", text)
    return text


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} or \\fbox{...} in a text that has one; None if cut off inside."""
    start = [match.end() for match in _BOXED_START.finditer(text)][-1]
    end = _closing_brace(text, start)
    return text[start:end] if end is not None else None


def _closing_brace(text: str, start: int) -> int | None:
    """Position of the brace closing the one just before `start`, or None if it never closes."""
    depth = 1
    for position in range(start, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return position
    return None


def _last_marked_span(text: str) -> str | None:
    """The span after the last answer marker, up to the end of its sentence."""
    best: tuple[int, str] | None = None
    for pattern in (*_ANSWER_MARKERS, _GSM8K_MARKER, _ANSWER_HEADING):
        for match in pattern.finditer(text):
            if best is None or match.start(1) > best[0]:
                best = (match.start(1), match.group(1))
    if best is None:
        return None
    span = best[1]
    end = _SENTENCE_END.search(span)
    return span[: end.start()] if end is not None else span


def _clean_span(span: str) -> str:
    """LaTeX spacing, delimiters and text wrappers dropped, surrounding punctuation stripped, and a
    group "{...}" around the whole span unwrapped."""
    span = _LATEX_WRAPPER.sub(r"\1", _LATEX_NOISE.sub("", span)).strip().strip(" .。,，;；:：!！")
    # LaTeX groups "{1,000}" wrap the whole answer: unwrap while the first brace closes at the very end.
    while span.startswith("{") and _closing_brace(span, 1) == len(span) - 1:
        span = span[1:-1].strip()
    return span


def _canonicalise_typed(span: str) -> str | None:
    """Option letter, yes/no or number, or None when the span is none of these."""
    option = _OPTION_LETTER.match(span)
    if option is not None:
        return next(group for group in option.groups() if group).upper()
    if "=" in span:
        span = span.rsplit("=", 1)[1].strip()
    yes_no = _yes_or_no(span)
    if yes_no is not None:
        return yes_no
    return _format_number(read_stated_number(span))


def read_stated_number(span: str) -> Fraction | None:
    """The value of a span that states one number, with what may go around it: a currency sign
    before, a scale ("2.5 million", "3万") and a unit after ("18 dollars", "45%", "3 km", "5个");
    in digits, LaTeX, English words or Chinese numerals. None when any part does not read."""
    body = _CURRENCY_PREFIX.sub("", span.strip()).strip()
    for reader in (read_number, read_english_number, _read_chinese_number):
        value = _read_with_suffixes(body, reader)
        if value is not None:
            return value
    return None


def _read_with_suffixes(body: str, reader) -> Fraction | None:
    """reader(body); else reader of body less a trailing unit or scale (the scale multiplies)."""
    value = _read_scaled(body, reader)
    if value is not None or not body:
        return value
    for unit in (_SPACED_UNIT, _GLUED_UNIT, _CHINESE_UNIT):
        match = unit.search(body)
        if match is not None and match.start() > 0:
            value = _read_scaled(body[: match.start()].rstrip(), reader)
            if value is not None:
                return value
    return None


def _read_scaled(body: str, reader) -> Fraction | None:
    value = reader(body)
    if value is not None:
        return value
    english = _ENGLISH_SCALE.search(body)
    if english is not None and reader is read_number:
        value = reader(body[: english.start()].rstrip())
        return value * _SCALE_WORDS[english.group(1).lower()] if value is not None else None
    chinese = _CHINESE_SCALE.search(body)
    if chinese is not None and reader is read_number:
        value = reader(body[: chinese.start()].rstrip())
        scale = math.prod(_CHINESE_SMALL_UNITS.get(char) or _CHINESE_LARGE_UNITS[char] for char in chinese.group(1))
        return value * scale if value is not None and _ascending_scale(chinese.group(1)) else None
    return None


def _ascending_scale(scales: str) -> bool:
    """Whether stacked scales read as one ("千万" = 10^7, "万亿" = 10^12), not as a malformed numeral ("万千")."""
    values = [_CHINESE_SMALL_UNITS.get(char) or _CHINESE_LARGE_UNITS[char] for char in scales]
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def _read_chinese_number(span: str) -> Fraction | None:
    """A Chinese numeral making up the whole span ("三百二十五", "百分之五十", "三分之二", "负三点一四")."""
    match = _CHINESE_NUMBER.fullmatch(span)
    if match is None:
        return None
    try:
        return _chinese_match_value(match)
    except ValueError:
        return None


def _chinese_match_value(match: re.Match[str]) -> Fraction | None:
    value = Fraction(parse_chinese_integer(match.group("int")))
    if match.group("frac"):
        decimals = "".join(str(_CHINESE_DIGITS[char]) for char in match.group("frac"))
        value += Fraction(int(decimals), 10 ** len(decimals))
    if match.group("numerator"):
        # "三分之二" names the denominator first: two thirds.
        if value == 0:
            return None
        value = Fraction(parse_chinese_integer(match.group("numerator"))) / value
    return -value if match.group("sign") else value


def _english_integer(words: list[str]) -> int | None:
    """The integer English number words name ("one hundred and five", "twenty three thousand",
    "a hundred"); None when they name none. Scales fall, as in "two million three thousand"."""
    if words == ["zero"]:
        return 0
    total, last_scale, index = 0, math.inf, 0
    while index < len(words):
        group, index = _english_group(words, index)
        if group is None or group == 0:
            return None
        if index == len(words):
            return total + group
        scale = _SCALE_WORDS.get(words[index], math.inf) if words[index] != "hundred" else math.inf
        if scale >= last_scale:
            return None
        total, last_scale, index = total + group * scale, scale, index + 1
        if index < len(words) and words[index] == "and":  # "one thousand and five": a last group below 100
            group, index = _english_group(words, index + 1)
            return total + group if group is not None and 0 < group < 100 and index == len(words) else None
    return total


def _english_group(words: list[str], index: int) -> tuple[int | None, int]:
    """(value below 1000 of the words from index on, the index after them): "three hundred and
    twenty one", "forty", "a hundred"; (None, index) if none starts there."""
    value = 0
    if index + 1 < len(words) and words[index + 1] == "hundred" and (words[index] == "a" or 0 < _ONES.get(words[index], 0) < 10):
        value, index = 100 * _ONES.get(words[index], 1), index + 2
        if index < len(words) and words[index] == "and":
            index += 1
            if index == len(words) or (words[index] not in _TENS and words[index] not in _ONES):
                return None, index
    elif index < len(words) and words[index] == "a" and index + 1 < len(words) and words[index + 1] in _SCALE_WORDS:
        return 1, index + 1
    if index < len(words) and words[index] in _TENS:
        value, index = value + _TENS[words[index]], index + 1
        if index < len(words) and 0 < _ONES.get(words[index], 0) < 10:
            value, index = value + _ONES[words[index]], index + 1
    elif index < len(words) and 0 < _ONES.get(words[index], 0):
        value, index = value + _ONES[words[index]], index + 1
    return (value or None), index


def _tokenise(span: str) -> list[tuple[str, str]] | None:
    """(kind, text) tokens of a number in digits or LaTeX; None when something else is in the span."""
    tokens, position = [], 0
    span = span.strip()
    while position < len(span):
        match = _TOKEN.match(span, position)
        if match is None or match.end() == position:
            return None
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _NumberParser:
    """Recursive descent over read_number's tokens:

    expression := sign? product ("/" sign? product)?
    product    := power (times "10" "^" exponent)?          scientific notation only
    power      := atom ("^" exponent)? (root)?              "3\\sqrt{16}" is 3 times a root
    atom       := number | "{" expression "}" | "(" expression ")" | frac | root
    frac       := \\frac "{" expression "}" "{" expression "}" | \\frac digit digit
    root       := \\sqrt ("[" integer "]")? "{" expression "}" | "√" atom
    """

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def done(self) -> bool:
        return self.position == len(self.tokens)

    def peek(self, offset: int = 0) -> str | None:
        index = self.position + offset
        return self.tokens[index][1] if index < len(self.tokens) else None

    def take(self, text: str) -> bool:
        if self.peek() == text:
            self.position += 1
            return True
        return False

    def expression(self) -> Fraction | None:
        value = self.signed(self.product)
        if value is not None and self.take("/"):
            denominator = self.signed(self.product)
            return value / denominator if denominator else None
        return value

    def signed(self, part) -> Fraction | None:
        sign = -1 if self.take("-") else 1
        if sign == 1:
            self.take("+")
        value = part()
        return sign * value if value is not None else None

    def product(self) -> Fraction | None:
        value = self.power()
        if value is not None and self.peek() in _TIMES and self.peek(1) == "10" and self.peek(2) == "^":
            self.position += 3
            exponent = self.exponent()
            return _power(value, Fraction(10), exponent)
        return value

    def power(self) -> Fraction | None:
        value = self.atom()
        if value is not None and self.take("^"):
            value = _power(Fraction(1), value, self.exponent())
        if value is not None and self.peek() in ("\\sqrt", "√"):
            root = self.atom()
            return value * root if root is not None else None
        return value

    def exponent(self) -> int | None:
        sign = -1 if self.take("-") else 1
        value = self.atom() if self.peek() in ("{", "(") else self.number()
        if value is None or value.denominator != 1 or abs(value) > _MAX_EXPONENT:
            return None
        return sign * int(value)

    def number(self) -> Fraction | None:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "number":
            self.position += 1
            return Fraction(self.tokens[self.position - 1][1].replace(",", ""))
        return None

    def group(self, opening: str, closing: str) -> Fraction | None:
        if not self.take(opening):
            return None
        value = self.expression()
        return value if value is not None and self.take(closing) else None

    def atom(self) -> Fraction | None:
        head = self.peek()
        if head == "{":
            return self.group("{", "}")
        if head == "(":
            return self.group("(", ")")
        if head in ("\\frac", "\\dfrac", "\\tfrac"):
            self.position += 1
            digits = self.peek()
            if digits is not None and re.fullmatch(r"\d\d", digits):  # \frac12
                self.position += 1
                return Fraction(int(digits[0]), int(digits[1])) if digits[1] != "0" else None
            numerator, denominator = self.group("{", "}"), self.group("{", "}")
            return numerator / denominator if numerator is not None and denominator else None
        if head in ("\\sqrt", "√"):
            self.position += 1
            degree = 2
            if head == "\\sqrt" and self.take("["):
                index = self.number()
                if index is None or index.denominator != 1 or not 2 <= index <= 64 or not self.take("]"):
                    return None
                degree = int(index)
            radicand = self.group("{", "}") if head == "\\sqrt" else self.atom()
            return _exact_root(radicand, degree) if radicand is not None else None
        return self.number()


def _power(factor: Fraction, base: Fraction, exponent: int | None) -> Fraction | None:
    """factor * base ** exponent, exactly; None for 0 to a negative power or a result too large to write."""
    if exponent is None or (base == 0 and exponent < 0):
        return None
    size = max(abs(base.numerator).bit_length(), base.denominator.bit_length()) * abs(exponent)
    return factor * base**exponent if size <= _MAX_BITS else None


def _exact_root(value: Fraction, degree: int) -> Fraction | None:
    """The rational degree-th root of value, or None when it is irrational (or the root of a negative
    number of even degree)."""
    if value < 0:
        root = _exact_root(-value, degree) if degree % 2 else None
        return -root if root is not None else None
    roots = [_integer_root(part, degree) for part in (value.numerator, value.denominator)]
    return Fraction(roots[0], roots[1]) if None not in roots else None


def _integer_root(number: int, degree: int) -> int | None:
    """The integer r with r ** degree == number, or None."""
    if number < 2:
        return number
    root = round(number ** (1 / degree)) if number.bit_length() < 1000 else 1 << (number.bit_length() // degree)
    for _ in range(200):  # Newton's method from the float guess; exact integers throughout
        better = ((degree - 1) * root + number // root ** (degree - 1)) // degree
        if better >= root:
            break
        root = better
    for candidate in (root - 1, root, root + 1):
        if candidate >= 0 and candidate**degree == number:
            return candidate
    return None


def _yes_or_no(span: str) -> str | None:
    word = span.strip().strip(".。!！").lower()
    if word in _YES:
        return "yes"
    if word in _NO:
        return "no"
    return None


def _format_number(value: Fraction | None) -> str | None:
    """Integers as integers, terminating decimals as decimals, other rationals as "p/q"."""
    if value is None:
        return None
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    with localcontext() as context:
        context.prec = max(60, len(str(value.numerator)) + len(str(value.denominator)))
        decimal = Decimal(value.numerator) / Decimal(value.denominator)
    return format(decimal.normalize(), "f")


def _number_chunks(text: str) -> list[str]:
    """The chunks of running text that hold a number or look like one, in order (see _CHUNK): those
    with a digit or a LaTeX number command, runs of English number words other than a lone "one",
    and Chinese numerals before a measure word (not a lone 一 or 两: "一个" is "a")."""
    text = _OPERATOR_SPACES.sub(lambda m: m.group(1) or m.group(2), _LATEX_NOISE.sub("", text))
    chunks = []
    for match in _CHUNK.finditer(text):
        chunk = match.group(0).strip(_CHUNK_PUNCTUATION)
        if re.search(r"\d|\\(?:[dt]?frac|sqrt)", chunk):
            chunks.append((match.start(), chunk))
    for match in _ENGLISH_RUN.finditer(text):
        words = set(match.group(0).lower().replace("-", " ").split())
        counted = words & (_ONES.keys() | _TENS.keys()) - {"one", "zero"}
        if counted or ({"one", "a"} & words and words & _SCALE_WORDS.keys()):  # not "this one", "the third"
            chunks.append((match.start(), match.group(0)))
    for match in _CHINESE_IN_TEXT.finditer(text):
        numeral = match.group(0)
        if numeral.endswith("千") and _KILO_UNIT.match(text, match.end() - 1):
            numeral = numeral[:-1]  # 五千米 is five kilometres, as 5千米 is
        if numeral and numeral not in ("一", "两"):
            chunks.append((match.start(), numeral))
    return [chunk for _, chunk in sorted(chunks)]


def _read_chunk(chunk: str) -> str | None:
    """The number a chunk of running text states, or None when it does not read as a whole
    ("2024-01-05", "v1.2.3", "3:45", "COVID-19", "1e3x"): a piece of it would be a wrong answer."""
    if "=" in chunk:
        chunk = chunk.rsplit("=", 1)[1]
    return _format_number(read_stated_number(chunk))


def _normalise_short_string(span: str) -> str | None:
    """Lowercase, single spaces, no leading article; LaTeX loses all spaces. None if too long to
    compare, or without a letter or digit (markup or punctuation alone states nothing)."""
    if len(span.split()) > _MAX_SHORT_ANSWER_WORDS or len(span) > _MAX_SHORT_ANSWER_CHARS or not any(c.isalnum() for c in span):
        return None
    span = _LATEX_FRACTION.sub(lambda m: f"{m.group(1) or m.group(3)}/{m.group(2) or m.group(4)}", span)
    if "\\" in span:
        return re.sub(r"\s+", "", span)
    return _ARTICLE.sub("", re.sub(r"\s+", " ", span.lower())).strip("\"'`“”") or None
