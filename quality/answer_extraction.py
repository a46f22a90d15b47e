"""Extract a canonical final answer from a model response, so that samples can be compared by vote.

Equal answers written differently map to one string: `\\boxed{\\frac{1}{2}}`, "The answer is 0.5.",
"1/2" all give "0.5"; "１,２００ 元", "$1,200" and "一千二百" give "1200"; "(B)", "option b" give "B";
"Yes.", "是的" give "yes". Percent signs, currency signs and trailing units are dropped, so "45%" and
"45" agree. Numbers are exact: a terminating decimal is written as a decimal ("0.25"), any other
rational as a reduced fraction ("1/3").

Markdown that chat models put around an answer is read through: bold and italic markers
("**Answer:** 12", "Answer: **12**", "**答案：** 12"), code spans ("`12`"), an answer heading with
the answer on a following line ("### Final Answer" or "**Final Answer**", then "12"), and
GSM8K's closing "#### 12".
"""

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

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_FRACTION_OR_NUMBER = re.compile(rf"(?:{_NUMBER})(?:\s*/\s*(?:{_NUMBER}))?")
_CURRENCY_PREFIX = re.compile(r"^(?:[$€£¥₹]|usd|eur|rmb|cny|us\$)\s*", re.IGNORECASE)
# A unit is any trailing run of letters, degree signs, Chinese characters that are not numerals, etc.
_UNIT_SUFFIX = re.compile(r"^\s*(?:%|percent|per\s+cent|°|degrees?)?\s*(?:[^\W\d_][^\d]{0,20})?$", re.IGNORECASE)

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

_BOXED_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}|\\[dt]?frac\s*(\d)\s*(\d)")
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[,;:! ]|\\(?:left|right)(?![a-zA-Z])|\\displaystyle|\^\s*\{?\\circ\}?|\\%|\\\$|\$")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_MAX_SHORT_ANSWER_WORDS = 8
_MAX_SHORT_ANSWER_CHARS = 40  # also bounds answers in scripts written without spaces


def extract_answer(response: str) -> str | None:
    """The canonical final answer of `response`, or None when it states none that can be compared.

    Markdown emphasis and code spans are read through first. Then it looks, in order, at the last
    `\\boxed{...}` (a box cut off before its closing brace gives None), the last "answer is X" /
    "Answer: X" / "答案是X" / "#### X" / an answer heading followed by X on its own line, a response that is itself an option letter, yes/no or
    number, a response starting with yes/no, the last number in the text, and last a whole response
    short enough to compare as a string.
    """
    text = _strip_markdown(_normalise_characters(response))
    if _BOXED_START.search(text) is not None:
        boxed = _last_boxed(text)
        return canonicalise_answer(boxed) if boxed is not None else None
    marked = _last_marked_span(text)
    if marked is not None:
        answer = canonicalise_answer(marked)
        if answer is not None:
            return answer
    typed = _canonicalise_typed(_clean_span(text))
    if typed is not None:
        return typed
    leading = _LEADING_YES_NO.match(text.strip())
    if leading is not None:
        return _yes_or_no(leading.group(1))
    number = _last_number(text)
    if number is not None:
        return number
    return _normalise_short_string(_clean_span(text))


def canonicalise_answer(span: str) -> str | None:
    """The canonical form of an answer span: option letter, yes/no, number, or normalised short string."""
    span = _clean_span(span)
    return _canonicalise_typed(span) or _normalise_short_string(span)


def _clean_span(span: str) -> str:
    span = _strip_latex(_normalise_characters(span)).strip().strip(" .。,，;；:：!！")
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
    number = _parse_number_with_unit(span)
    if number is not None:
        return number
    chinese = _CHINESE_NUMBER.fullmatch(span.rstrip("个元米岁次人只件天分秒度"))
    if chinese is not None:
        return _format_number(_chinese_match_value(chinese))
    return None


def parse_chinese_integer(numeral: str) -> int:
    """The value of a Chinese integer numeral: "三百二十五" -> 325, "两千零一" -> 2001, "二零二四" -> 2024."""
    if all(char in _CHINESE_DIGITS for char in numeral) and len(numeral) > 1:
        return int("".join(str(_CHINESE_DIGITS[char]) for char in numeral))
    completed = 0  # value of finished 亿/万 groups
    group = 0  # value below the next large unit
    digit: int | None = None
    for char in numeral:
        if char in _CHINESE_DIGITS:
            digit = _CHINESE_DIGITS[char]
        elif char in _CHINESE_SMALL_UNITS:
            # "十五": a bare 十 means one ten.
            group += (1 if digit is None else digit) * _CHINESE_SMALL_UNITS[char]
            digit = None
        elif char in _CHINESE_LARGE_UNITS:
            unit = _CHINESE_LARGE_UNITS[char]
            value = group + (digit or 0)
            if unit > 10**4:
                completed = (completed + value) * unit
            else:
                completed += value * unit
            group, digit = 0, None
        else:
            raise ValueError(f"{char!r} in {numeral!r} is not a Chinese numeral character; pass only numerals")
    return completed + group + (digit or 0)


def _normalise_characters(text: str) -> str:
    """Full-width forms to ASCII (NFKC: "１２３" -> "123", "（Ｂ）" -> "(B)"), and one minus sign."""
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


def _strip_latex(span: str) -> str:
    span = _LATEX_NOISE.sub("", span)
    span = _LATEX_WRAPPER.sub(r"\1", span)
    return _LATEX_FRACTION.sub(lambda m: f"{m.group(1) or m.group(3)}/{m.group(2) or m.group(4)}", span)


def _yes_or_no(span: str) -> str | None:
    word = span.strip().strip(".。!！").lower()
    if word in _YES:
        return "yes"
    if word in _NO:
        return "no"
    return None


def _parse_number_with_unit(span: str) -> str | None:
    """A span that is one number, optionally with a currency sign before and a unit after."""
    body = _CURRENCY_PREFIX.sub("", span)
    number = _FRACTION_OR_NUMBER.match(body)
    if number is None or _UNIT_SUFFIX.match(body[number.end() :]) is None:
        return None
    return _format_number(_number_value(number.group(0)))


def _number_value(token: str) -> Fraction | None:
    numerator, _, denominator = token.replace(",", "").replace(" ", "").partition("/")
    value = Fraction(numerator)
    if denominator:
        if Fraction(denominator) == 0:
            return None
        value /= Fraction(denominator)
    return value


def _chinese_match_value(match: re.Match[str]) -> Fraction:
    value = Fraction(parse_chinese_integer(match.group("int")))
    if match.group("frac"):
        decimals = "".join(str(_CHINESE_DIGITS[char]) for char in match.group("frac"))
        value += Fraction(int(decimals), 10 ** len(decimals))
    if match.group("numerator"):
        # "三分之二" names the denominator first: two thirds.
        value = Fraction(parse_chinese_integer(match.group("numerator"))) / value
    return -value if match.group("sign") else value


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
        context.prec = 60
        decimal = Decimal(value.numerator) / Decimal(value.denominator)
    return format(decimal.normalize(), "f")


def _last_number(text: str) -> str | None:
    """The last number written in digits, else the last Chinese numeral; None if there is neither."""
    for pattern, value_of in (
        (_FRACTION_OR_NUMBER, lambda m: _number_value(m.group(0))),
        (_CHINESE_NUMBER, _chinese_match_value),
    ):
        matches = list(pattern.finditer(_strip_latex(text)))
        if matches:
            return _format_number(value_of(matches[-1]))
    return None


def _normalise_short_string(span: str) -> str | None:
    """Lowercase, single spaces, no leading article; LaTeX loses all spaces. None if too long to compare."""
    if len(span.split()) > _MAX_SHORT_ANSWER_WORDS or len(span) > _MAX_SHORT_ANSWER_CHARS:
        return None
    if "\\" in span:
        return re.sub(r"\s+", "", span)
    return _ARTICLE.sub("", re.sub(r"\s+", " ", span.lower())).strip("\"'`“”") or None
