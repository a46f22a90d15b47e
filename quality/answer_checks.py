"""Rules that decide whether a model's reply answers its instruction at all.

Each check returns a `RejectReason` and a detail, or None. The stage decides what to do with
it; nothing here knows about rows or Ray.
"""

from __future__ import annotations

import ast
import re

from synthmix.pipeline.contracts import RejectReason
from synthmix.quality.code_language import asked_languages, code_languages, fenced_blocks, prose_of, python_sources, same_language
from synthmix.quality.instruction_checks import copied_share, words

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
    questions are exempt. Then a reply that only repeats its instruction (`check_repeats_instruction`)."""
    text = answer.strip()
    asks_back = text.endswith(("?", "？")) and not _ASKS_FOR_QUESTIONS.search(instruction) and not _SENTENCE_END.search(text[:-1].rstrip())
    if asks_back:
        return RejectReason.NOT_AN_ANSWER, f"the reply only asks a question back: {text[:200]!r}"
    if _ASKS_HOW_OR_WHY.search(instruction) and len(words(text)) < BARE_RESULT_WORDS:
        return RejectReason.NOT_AN_ANSWER, f"asked how or why; the reply is a bare result: {text[:80]!r}"
    return check_repeats_instruction(text, instruction)


# "How do I find 15% of 80?" answered "12" (run qd, 2026-12-08): the result, not the how. A reply
# of under four words (Han characters count one each) cannot say how or why.
_ASKS_HOW_OR_WHY = re.compile(
    r"(?i)^\s*(?:please\s+)?(?:how\s+(?:do|can|could|should|does|did|is|are)|why|explain|describe|what\s+steps|walk\s+me\s+through|show\s+me\s+how)\b"
    r"|^\s*请?(?:如何|怎样|怎么|为什么|解释|说明|描述|介绍)"
)
BARE_RESULT_WORDS = 4


# An answer made of the instruction's own words, with next to nothing of its own: "谁设计了二分
# 查找算法？请假设你设计了一种二分查找算法..." answered "设计了一种二分查找算法，...", and a
# "travel guide" that was the passage pasted into its question. Short right answers restate
# their question too ("二分查找算法的时间复杂度是O(log n)。": 73% of its 6-grams, 3 new words),
# so both bars must be met.
ECHO_MIN_SHARE = 0.8
ECHO_MAX_NEW_WORDS = 2


def check_repeats_instruction(answer: str, instruction: str) -> tuple[RejectReason, str] | None:
    """Reject a reply whose prose repeats its instruction and adds at most two words of its own."""
    prose = prose_of(answer)
    share = copied_share(prose, instruction, ngram=6)
    if share < ECHO_MIN_SHARE:
        return None
    new_words = set(words(prose)) - set(words(instruction))
    if len(new_words) > ECHO_MAX_NEW_WORDS:
        return None
    return (
        RejectReason.NOT_AN_ANSWER,
        f"the reply repeats the instruction ({share:.0%} of its 6-word sequences) and adds {len(new_words)} word(s): {prose[:120]!r}",
    )


def check_code_language(answer: str, instruction: str, *, default: str | None = "python") -> tuple[RejectReason, str] | None:
    """Reject code in a programming language the instruction did not ask for: the languages it
    names, else `default` (the language a job's code questions mean when they name none; None:
    any language is fine then). Shell, output and data blocks never count."""
    asked = asked_languages(instruction) or ({default} if default else set())
    if not asked:
        return None
    wrong = [language for language in code_languages(answer) if not same_language(language, asked)]
    if not wrong:
        return None
    return RejectReason.WRONG_CODE_LANGUAGE, f"code in {', '.join(wrong)}; the instruction asks for {', '.join(sorted(asked))}"


# Constructs an instruction asks to use, and what Python code using them must contain. Seen in
# every quickstart run since the #26 review: "Calculate the square of a number using a class
# method" answered with an instance method (`def square(self, n)`) and explained as a class
# method, by the 0.5B and the 1.5B alike. Only a request to use or write one counts: "set an
# instance attribute in a class method" means any method, and "abstract class methods" is the
# abstract-method case.
_ASKS_TO_USE = r"\b(?:using|use|uses|with|as|define|defines|write|implement|create|make|add)\s+(?:a\s+|an\s+|the\s+)?(?:python\s+)?"
_ASKED_CONSTRUCTS = (
    (
        re.compile(rf"(?i){_ASKS_TO_USE}class[\s-]?methods?\b|用类方法|编写(?:一个)?类方法"),
        re.compile(r"@classmethod\b"),
        "@classmethod",
    ),
    (
        re.compile(rf"(?i){_ASKS_TO_USE}static[\s-]?methods?\b|用静态方法|编写(?:一个)?静态方法"),
        re.compile(r"@staticmethod\b"),
        "@staticmethod",
    ),
    (
        re.compile(r"(?i)\babstract\s+(?:base\s+)?(?:class(?:es)?|methods?)\b|抽象(?:基)?(?:类|方法)"),
        re.compile(r"\babstractmethod\b|\bABC\b|\bABCMeta\b"),
        "abc's ABC or abstractmethod",
    ),
    (
        re.compile(r"(?i)\bdata\s?class(?:es)?\b|数据类"),
        re.compile(r"@(?:dataclasses\.)?dataclass\b|\bmake_dataclass\b"),
        "@dataclass",
    ),
    (
        re.compile(rf"(?i){_ASKS_TO_USE}property\b|@property"),
        re.compile(r"@(?:\w+\.)?(?:property|setter|getter)\b|\bproperty\("),
        "@property",
    ),
    # "How does the class attribute in Python define variables?" answered with `self.value = ...`
    # in __init__, commented "# Class attribute" (a quickstart shard row).
    (
        re.compile(r"(?i)\bclass[\s-](?:level\s+)?(?:attributes?|variables?)\b|类(?:属性|变量)"),
        lambda code: _has_class_attribute(code),
        "assignment in a class body (a class attribute)",
    ),
)


def _has_class_attribute(code: str) -> bool:
    """Whether some class body assigns a name; code that does not parse gets the benefit of the doubt."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return True
    return any(isinstance(statement, ast.Assign | ast.AnnAssign) for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for statement in node.body)


def check_asked_construct(answer: str, instruction: str) -> tuple[RejectReason, str] | None:
    """Reject an answer whose Python code never uses the construct its instruction asks for."""
    code = "\n".join(python_sources(answer))
    if not code.strip():
        return None
    for asked, used, name in _ASKED_CONSTRUCTS:
        request = asked.search(instruction)
        if request and not (used(code) if callable(used) else used.search(code)):
            return RejectReason.MISSING_ASKED_API, f"asked for {request.group(0).strip()!r}; its code has no {name}"
    return None


# Python constructs an explanation names, in backticks, as parts of the code it shows. A
# quickstart row explained its class's attribute as "defined using the `@property` decorator",
# another its empty class "includes the `pass` statement", a third said its method calls the
# abstract one "using `super()`": none of them was in the code. A name in backticks that no
# block of the answer holds describes code the reader never sees.
_DESCRIBED_CONSTRUCT = re.compile(
    r"`(@?(?:property|classmethod|staticmethod|abstractmethod|dataclass)|pass|super\(\)|yield|lambda|global|nonlocal|ABCMeta|__init__)`"
)


def check_describes_absent_code(answer: str) -> tuple[RejectReason, str] | None:
    """Reject an answer whose prose describes a construct (in backticks) that none of its Python has."""
    code = "\n".join(python_sources(answer))
    if not code.strip():
        return None
    names = set(re.findall(r"[A-Za-z_]\w*", code))
    absent = sorted({found.group(1) for found in _DESCRIBED_CONSTRUCT.finditer(prose_of(answer)) if found.group(1).strip("@()") not in names})
    if not absent:
        return None
    return RejectReason.DESCRIBES_ABSENT_CODE, f"its explanation names {', '.join(absent)}, which its code never uses"


# Class and instance attributes told apart wrongly, the Python fault read most often in the
# quickstart's shards: `name = "John Doe"` in a class body commented "# Instance attribute", "The
# `model` attribute is an instance attribute" for another, `self.value = ...` in __init__
# commented "# Class attribute". The code says which it is: an assignment in a class body makes a
# class attribute, one to `self.<name>` in a method an instance attribute.
_KIND_WORDS = r"(?P<kind>class|instance)[\s-](?:attribute|variable)s?"
_LABEL_COMMENT = re.compile(rf"(?i)#.*?\b{_KIND_WORDS}\b|#.*?(?P<zh>类|实例)(?:属性|变量)")
_LABEL_PROSE = re.compile(
    rf"(?i)`(?P<name>\w+)`(?:\s+(?:attribute|variable))?\s+is\s+an?\s+{_KIND_WORDS}\b"
    rf"|\ban?\s+(?P<kind2>class|instance)[\s-](?:attribute|variable)\s+`(?P<name2>\w+)`"
)


def check_attribute_labels(answer: str) -> tuple[RejectReason, str] | None:
    """Reject an answer that calls a class attribute an instance attribute or the other way round,
    in a comment on the assignment or in its prose about a named attribute."""
    for source in python_sources(answer):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        lines = source.splitlines()
        class_level, on_self = _attribute_assignments(tree)
        for kind, line, name in [("class", line, name) for line, name in class_level] + [("instance", line, name) for line, name in on_self]:
            said = _comment_kind(lines, line)
            if said and said != kind:
                return (
                    RejectReason.MISLABELLED_ATTRIBUTE,
                    f"`{name}` (line {line}) is a{'n' if kind == 'instance' else ''} {kind} attribute; its comment says {said}",
                )
        class_names, self_names = {name for _, name in class_level}, {name for _, name in on_self}
        for found in _LABEL_PROSE.finditer(prose_of(answer)):
            name, said = found.group("name") or found.group("name2"), (found.group("kind") or found.group("kind2")).lower()
            if said == "instance" and name in class_names and name not in self_names or said == "class" and name in self_names and name not in class_names:
                actual = "class" if said == "instance" else "instance"
                return RejectReason.MISLABELLED_ATTRIBUTE, f"`{name}` is a{'n' if actual == 'instance' else ''} {actual} attribute; the answer calls it {said}"
    return None


def _attribute_assignments(tree: ast.Module) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line, name) of assignments in class bodies, and of assignments to `self.<name>` in their methods."""
    class_level, on_self = [], []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if isinstance(statement, ast.Assign | ast.AnnAssign):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                class_level += [(statement.lineno, target.id) for target in targets if isinstance(target, ast.Name)]
            elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(statement):
                    targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target] if isinstance(inner, ast.AnnAssign) else []
                    on_self += [
                        (inner.lineno, target.attr)
                        for target in targets
                        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"
                    ]
    return class_level, on_self


def _comment_kind(lines: list[str], line: int) -> str | None:
    """'class' or 'instance' where the assignment's own line, or a comment line right above it,
    names one kind of attribute and not the other."""
    candidates = [lines[line - 1]] if line <= len(lines) else []
    if line >= 2 and lines[line - 2].lstrip().startswith("#"):
        candidates.append(lines[line - 2])
    for text in candidates:
        found = _LABEL_COMMENT.search(text)
        if found:
            kinds = {kind.lower() for kind in re.findall(r"(?i)\b(class|instance)[\s-](?:attribute|variable)", text)}
            kinds |= {"class" if zh == "类" else "instance" for zh in re.findall(r"(类|实例)(?:属性|变量)", text)}
            if len(kinds) == 1:
                return kinds.pop()
    return None


def check_python_syntax(answer: str) -> tuple[RejectReason, str] | None:
    """Reject an answer whose closed Python blocks do not parse (an unclosed one is `check_cut_off`'s)."""
    for source in python_sources(answer):
        try:
            ast.parse(source)
        except SyntaxError as error:
            line = (error.text or "").strip()
            return RejectReason.CODE_SYNTAX_ERROR, f"Python that does not parse: {error.msg} at line {error.lineno}: {line[:120]!r}"
        except ValueError as error:  # a NUL byte
            return RejectReason.CODE_SYNTAX_ERROR, f"Python that does not parse: {error}"
        except (MemoryError, RecursionError):  # CPython's parser gives up on some huge or deeply nested texts: no verdict
            continue
    return None


# How a finished answer may end: a sentence mark (either script), a closing bracket or quote, a
# formula, an emoji-free symbol a list or table ends on; a digit ends "The answer is 42".
_FINISHED_END = re.compile(r"(?:[.!?。！？…)\]}>\"'”’」』）】`*|$~0-9%]|https?://\S+)\s*$")
# A last line that is a heading, a list item, a table row or a URL is finished without a full stop.
_STANDALONE_LINE = re.compile(r"^\s*(?:#{1,6}\s|[-*+•]\s|\d+[.)]\s|\||https?://|(?:\*\*)?(?:final )?(?:answer|答案)(?:\*\*)?\s*[:：])", re.IGNORECASE)


def check_cut_off(answer: str, *, hit_token_limit: bool | None = None) -> tuple[RejectReason, str] | None:
    """Reject an answer that stops mid-way: a code block never closed, or a last sentence with no
    end ("...and the loop"), or one ending on a colon that announces what never comes. When the
    engine says the reply hit its token limit (`hit_token_limit`), that settles it."""
    if hit_token_limit:
        return RejectReason.INCOMPLETE, "the answer stopped at its token limit"
    if any(not block.closed for block in fenced_blocks(answer)):
        return RejectReason.INCOMPLETE, "a code block is never closed"
    lines = [line for line in prose_of(answer).splitlines() if line.strip()]
    if not lines or answer.rstrip().endswith(("```", "~~~")):
        return None
    last = lines[-1].rstrip()
    if last.endswith((":", "：")):
        return RejectReason.INCOMPLETE, f"ends on a colon announcing what never comes: {last[-80:]!r}"
    if _FINISHED_END.search(last) or _STANDALONE_LINE.match(last):
        return None
    return RejectReason.INCOMPLETE, f"stops mid-sentence: {last[-80:]!r}"


# An equation of plain numbers: "16 - 3 - 4 = 9", "3 x 3 = 9", "$2,000 * 0.5 = $1,000", "\\(12 \\times 4 = 48\\)".
# Variables, percentages and fractions of mixed numbers make it something else, which is not read.
_NUM = r"(?:\$\s*)?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
# A unit after a number on the left ("4 * 20 sheep = 80"), one word, maybe per another ("km/h").
_UNIT = r"(?:\s+[A-Za-z]{2,12}(?:/[A-Za-z]{1,12})?)?"
_OPERATOR = r"[+\-–−*/×÷]|\bx\b|\\times|\\div|\\cdot"
_EQUATION = re.compile(
    rf"(?P<left>(?:\(\s*)?(?:{_NUM}){_UNIT}\s*\)?(?:\s*(?:{_OPERATOR})\s*\(?\s*(?:{_NUM}){_UNIT}\s*\)?)+)\s*=\s*(?P<right>-?(?:{_NUM}))"
    rf"(?![\w%])(?![.,]\d)(?!(?>{_UNIT})\s*(?:[*/×÷^(+\-–−]|\d+/\d))"
)
# What may stand right before an equation: it must start the calculation, not sit inside one.
_BEFORE_EQUATION = re.compile(r"[\w.,$%^]$|\d\s+$|(?:[*/×÷+\-–−=)]|(?<!\\)\(|\\times|\\div|\\cdot|(?<![A-Za-z])x|\dx)(?:\s*[A-Za-z]+)?\s*$")


def check_arithmetic(answer: str) -> tuple[RejectReason, str] | None:
    """Reject an answer with a calculation of plain numbers whose result is wrong ("2 + 1 = 4").
    Results rounded to the digits they show pass ("10 / 3 = 3.33"); equations with variables,
    percentages or mixed numbers are not read."""
    for match in _EQUATION.finditer(answer):
        if _BEFORE_EQUATION.search(answer[max(0, match.start() - 12) : match.start()]):
            continue
        left = match.group("left")
        expression = re.sub(r"(?<=[\d)])\s+[A-Za-z]{2,12}(?:/[A-Za-z]{1,12})?(?=\s|\)|$)", " ", left)  # units off
        expression = re.sub(r"\\times|×|\bx\b|\\cdot", "*", expression)
        expression = re.sub(r"\\div|÷", "/", expression).replace(",", "").replace("$", "").replace("–", "-").replace("−", "-").strip()
        while expression.count("(") > expression.count(")") and expression.startswith("("):  # "\\( 16 - 3 = 13": LaTeX's opening
            expression = expression[1:].strip()
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if not all(isinstance(node, (ast.Expression, ast.BinOp, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div)) for node in ast.walk(tree)):
            continue
        try:
            value = eval(compile(tree, "<calculation>", "eval"), {"__builtins__": {}})  # noqa: S307 - numbers and + - * / only, checked above
        except (ZeroDivisionError, OverflowError, RecursionError, MemoryError):
            continue
        shown = match.group("right").replace(",", "").replace("$", "").strip()
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        if abs(round(value, decimals) - float(shown)) > 1e-9 and abs(value - float(shown)) > 0.5 * 10**-decimals:
            return RejectReason.WRONG_ARITHMETIC, f"{match.group(0).strip()!r} is wrong: {left.strip()} = {value:g}"
    return None


# Constraints evolve's add_constraints writes into an instruction (prompts/evolve/openings.j2:
# "Keep the answer under", "Present the answer as", "Include an example of", 请把回答控制在,
# 请用表格或编号列表, 请举一个) that an answer can be checked against without a judge. Run qc
# shipped "解释光合作用的定义及重要作用。请举一个光合作用的定义及重要作用的例子" answered by the
# definition and no example: data that teaches a model to drop what it was asked for.
_LENGTH_LIMIT = re.compile(
    r"(?i)\b(?:under|below|within|at\s+most|no\s+more\s+than|fewer\s+than|less\s+than|not\s+exceed(?:ing)?|up\s+to|maximum\s+of)\s+"
    r"(?P<count>\d+)\s+(?P<unit>words?|sentences?)\b"
    r"|(?:控制在|不超过|不要超过|少于)\s*(?P<count_zh>\d+)\s*个?(?P<unit_zh>字|句话?)"
)
_ASKS_TABLE = re.compile(r"(?i)\b(?:as|in|into|using)\s+an?\s+(?:markdown\s+)?table\b|表格")
_ASKS_NUMBERED = re.compile(r"(?i)\bnumbered\s+(?:list|steps)\b|编号列表|编号的列表|分条|列出步骤")
_ASKS_BULLETS = re.compile(r"(?i)\bbullet(?:ed)?\s+(?:list|points?)\b|要点列表")
_ASKS_EXAMPLE = re.compile(
    r"(?i)\b(?:include|give|provide|add|show)\s+(?:an?|one|at\s+least\s+one)\s+(?:\w+\s+){0,2}examples?\b|举(?:一个|个|一|出)?.{0,24}?例子|举例"
)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$", re.MULTILINE)
_NUMBERED_LINE = re.compile(r"^\s*(?:\*\*)?(?:\d+[.)、]|[（(]\d+[)）]|第[一二三四五六七八九十]+[步点])", re.MULTILINE)
_BULLET_LINE = re.compile(r"^\s*[-*+•]\s", re.MULTILINE)
_EXAMPLE_MARK = re.compile(
    r"(?i)```|\bexamples?\b|\be\.g\.|\bfor\s+instance\b|\bsuch\s+as\b|\bsuppose\b|\bimagine\b|例如|比如|举例|例子|譬如|假设|假如|以.{1,12}为例"
)
# A limit is a limit, read kindly: an answer a tenth over it and two words, or one sentence over, keeps it.
LIMIT_SLACK = 1.1


def check_follows_constraints(answer: str, instruction: str) -> tuple[RejectReason, str] | None:
    """Reject an answer that ignores a constraint its instruction states and a reader can check:
    a length limit in words, characters or sentences (the answer's prose, code blocks aside), a
    table or a numbered or bulleted list (any one of those asked), an example."""
    prose = prose_of(answer)
    limit = _LENGTH_LIMIT.search(instruction)
    if limit:
        count = int(limit.group("count") or limit.group("count_zh"))
        unit = (limit.group("unit") or limit.group("unit_zh")).lower()
        if unit.startswith(("sentence", "句")):
            used, allowed = len([part for part in _SENTENCE_END.split(prose) if words(part)]), count + 1
        else:
            used, allowed = len(words(prose)), count * LIMIT_SLACK + 2
        if count > 0 and used > allowed:
            return RejectReason.IGNORES_CONSTRAINT, f"asked for {limit.group(0).strip()!r}; the answer has {used}"
    formats = {
        "a table": (_ASKS_TABLE, lambda: len(_TABLE_ROW.findall(answer)) >= 2),
        "a numbered list": (_ASKS_NUMBERED, lambda: len(_NUMBERED_LINE.findall(prose)) >= 2),
        "a bulleted list": (_ASKS_BULLETS, lambda: len(_BULLET_LINE.findall(prose)) >= 2),
    }
    asked = [name for name, (pattern, _) in formats.items() if pattern.search(instruction)]
    if asked and not any(formats[name][1]() for name in asked):
        return RejectReason.IGNORES_CONSTRAINT, f"asked for {' or '.join(asked)}; the answer has none"
    example = _ASKS_EXAMPLE.search(instruction)
    if example and not _EXAMPLE_MARK.search(answer):
        return RejectReason.IGNORES_CONSTRAINT, f"asked to {example.group(0).strip()!r}; the answer gives none"
    return None
