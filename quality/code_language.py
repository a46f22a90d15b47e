"""Which programming languages an answer's code is in, and which one its instruction asks for.

A small model asked a Python question often answers in C++, Java or C# (seen in the quickstart:
`__lshift__` "in C++", `match` patterns "In JavaScript" with a ```java block). Such an answer
is wrong for training whatever its quality, and needs no judge to be caught: the fence label
says the language, and code without a label shows it by a few unmistakable signatures
(`#include <`, `System.out.println`, `console.log(`, ...).

Only programming languages count. Shell commands, output, data and markup (bash, text, json,
yaml, html, sql, ...) go beside code in any language and are never a mismatch.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

# Fence labels (lower case) -> language. Labels not listed (text, console, json, sql, ...) are not code in a language.
_LABELS = {
    "python": "python", "py": "python", "python3": "python", "py3": "python", "pycon": "python", "ipython": "python",
    "c": "c", "h": "c",
    "cpp": "c++", "c++": "c++", "cc": "c++", "cxx": "c++", "hpp": "c++",
    "csharp": "c#", "cs": "c#", "c#": "c#",
    "java": "java",
    "javascript": "javascript", "js": "javascript", "jsx": "javascript", "node": "javascript",
    "typescript": "typescript", "ts": "typescript", "tsx": "typescript",
    "go": "go", "golang": "go",
    "rust": "rust", "rs": "rust",
    "php": "php",
    "ruby": "ruby", "rb": "ruby",
    "kotlin": "kotlin", "kt": "kotlin",
    "swift": "swift",
    "scala": "scala",
    "perl": "perl",
    "lua": "lua",
    "r": "r",
    "matlab": "matlab",
    "haskell": "haskell",
    "vb": "visual basic", "vbnet": "visual basic",
}  # fmt: skip
# Names an instruction may use for a language ("in C++", "用Java") -> language. Boundaries are
# ASCII letters only: in "用Java实现" the Han characters around "Java" are word characters to `\b`.
_A = r"(?<![A-Za-z0-9_+#])"
_Z = r"(?![A-Za-z0-9_+#])"
_NAMED = [
    (re.compile(rf"(?i){_A}(?:python\s*[23]?|py3?|cpython){_Z}"), "python"),
    (re.compile(rf"(?i){_A}(?:c\+\+|cpp){_Z}"), "c++"),
    (re.compile(rf"(?i){_A}(?:c#|c\s*sharp|\.net){_Z}"), "c#"),
    (re.compile(rf"(?i){_A}c(?=\s*(?:language|program|code|function|语言|程序|代码))|{_A}ansi c{_Z}"), "c"),
    (re.compile(rf"(?i){_A}java{_Z}"), "java"),
    (re.compile(rf"(?i){_A}(?:javascript|node(?:\.js)?|js){_Z}"), "javascript"),
    (re.compile(rf"(?i){_A}typescript{_Z}"), "typescript"),
    (re.compile(rf"(?i){_A}golang{_Z}|{_A}go (?:language|program|code|function){_Z}|{_A}in go{_Z}|{_A}go语言"), "go"),
    (re.compile(rf"(?i){_A}rust{_Z}"), "rust"),
    (re.compile(rf"(?i){_A}php{_Z}"), "php"),
    (re.compile(rf"(?i){_A}ruby{_Z}"), "ruby"),
    (re.compile(rf"(?i){_A}kotlin{_Z}"), "kotlin"),
    (re.compile(rf"(?i){_A}swift{_Z}"), "swift"),
    (re.compile(rf"(?i){_A}scala{_Z}"), "scala"),
    (re.compile(rf"(?i){_A}perl{_Z}"), "perl"),
    (re.compile(rf"(?i){_A}lua{_Z}"), "lua"),
    (re.compile(rf"(?i){_A}matlab{_Z}"), "matlab"),
    (re.compile(rf"(?i){_A}haskell{_Z}"), "haskell"),
]
# Unmistakable lines of a language, for code without a fence label or without a fence.
_SIGNATURES = [
    (re.compile(r"^\s*#\s*include\s*[<\"]", re.M), "c/c++"),
    (re.compile(r"\bstd::|\bcout\s*<<|\bcin\s*>>|^\s*template\s*<|^\s*using\s+namespace\s+std\s*;", re.M), "c++"),
    (re.compile(r"^\s*using\s+System(?:\.[\w.]+)?\s*;|\bConsole\.Write(?:Line)?\s*\(", re.M), "c#"),
    (re.compile(r"\bSystem\.out\.print(?:ln|f)?\s*\(|^\s*public\s+static\s+void\s+main\s*\(|^\s*import\s+java\.", re.M), "java"),
    (re.compile(r"\bconsole\.log\s*\(|^\s*(?:const|let|var)\s+\w+\s*=.*;\s*$|^\s*function\s+\w+\s*\([^)]*\)\s*\{|=>\s*\{", re.M), "javascript"),
    (re.compile(r"^\s*package\s+main\s*$|\bfmt\.Print(?:ln|f)?\s*\(|^\s*func\s+\w+\s*\([^)]*\)[^{]*\{", re.M), "go"),
    (re.compile(r"^\s*fn\s+\w+\s*\([^)]*\)|\bprintln!\s*\(|^\s*let\s+mut\s+\w+|^\s*impl\s+\w+", re.M), "rust"),
    (re.compile(r"<\?php"), "php"),
    (re.compile(r"^\s*(?:public|private|protected)\s+(?:static\s+)?[\w<>\[\]]+\s+\w+\s*\([^)]*\)\s*\{", re.M), "java"),
    (re.compile(r"^\s*(?:int|void|char|double|float|long)\s+\*?\w+\s*\([^)]*\)\s*\{", re.M), "c/c++"),
]
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")


@dataclass(frozen=True)
class CodeBlock:
    label: str  # the fence's label, lower case ("" when none; "<unfenced>" for evident code outside fences)
    code: str
    closed: bool


def fenced_blocks(text: str) -> list[CodeBlock]:
    """Every fenced block of `text`, in order, with its label and whether it is closed."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence, label = opening.group(1), opening.group(2).lower()
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body = []
        while index < len(lines) and closing.match(lines[index]) is None:
            body.append(lines[index])
            index += 1
        # A block inside a list item is indented with it: its code is not.
        blocks.append(CodeBlock(label=label, code=textwrap.dedent("\n".join(body)) + "\n", closed=index < len(lines)))
        index += 1
    return blocks


def prose_of(text: str) -> str:
    """`text` without its fenced blocks: what is written in a natural language."""
    lines, kept, inside, fence = text.splitlines(), [], False, ""
    for line in lines:
        opening = _FENCE.match(line)
        if not inside and opening is not None:
            inside, fence = True, opening.group(1)
            continue
        if inside and re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
            inside = False
            continue
        if not inside:
            kept.append(line)
    return "\n".join(kept)


def language_of_block(block: CodeBlock) -> str | None:
    """The programming language of one block: its label, else its signatures, else Python when it
    parses as a Python program; None for output, data and unknown code."""
    if block.label:
        return _LABELS.get(block.label)
    found = languages_by_signature(block.code)
    if found:
        return found[0]
    return "python" if is_program(block.code) else None


def languages_by_signature(code: str) -> list[str]:
    """Languages whose unmistakable signatures appear in `code`, most specific first, once each."""
    found = []
    for pattern, language in _SIGNATURES:
        if pattern.search(code) and language not in found:
            found.append(language)
    if "c/c++" in found and "c++" in found:
        found.remove("c/c++")
    return found


def code_languages(answer: str) -> list[str]:
    """The programming languages of the answer's code: its fenced blocks, and evident code outside
    them (a C++ program written without a fence); in order of appearance, once each."""
    languages = [language for block in fenced_blocks(answer) if (language := language_of_block(block))]
    languages += languages_by_signature(prose_of(answer))
    return list(dict.fromkeys(languages))


def asked_languages(instruction: str) -> set[str]:
    """The programming languages an instruction names ("in C++", "a Python function"); empty when none."""
    return {language for pattern, language in _NAMED if pattern.search(instruction)}


def same_language(found: str, asked: set[str]) -> bool:
    """Whether code in `found` is in one of the `asked` languages ("c/c++" is either)."""
    if found == "c/c++":
        return bool(asked & {"c", "c++"})
    if found == "typescript":
        return bool(asked & {"typescript", "javascript"})
    return found in asked


def python_sources(answer: str) -> list[str]:
    """The Python code of the answer's closed blocks labelled Python (doctest prompts taken off)."""
    sources = []
    for block in fenced_blocks(answer):
        if block.closed and _LABELS.get(block.label) == "python":
            sources.append(_without_prompts(block.code))
    return sources


def _without_prompts(code: str) -> str:
    """An interactive session's source lines (after `>>> ` and `... `), or the code as is."""
    lines = code.splitlines()
    if not any(line.lstrip().startswith(">>>") for line in lines):
        return code
    source = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith((">>> ", "... ")) or stripped in (">>>", "..."):
            source.append(stripped[4:])
    return "\n".join(source) + "\n"


def is_program(source: str) -> bool:
    """Whether `source` parses as Python and holds a statement other than a bare expression."""
    try:
        tree = ast.parse(source)
    # ValueError: a NUL byte in the source. MemoryError and RecursionError: CPython's parser gives
    # up on some huge or deeply nested texts (10,000 words on one line raise MemoryError).
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return any(not isinstance(node, ast.Expr) for node in tree.body)
