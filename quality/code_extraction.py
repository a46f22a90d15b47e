"""Find the Python program in a model's answer, so it can be run.

Chat models put code in fenced blocks (```python ... ```), often several: the solution, then
an example of its use, or a shell command. The program is the biggest complete block labelled
Python (`python`, `py`, `python3`, `py3`), the later one on a tie; unlabelled blocks count only
when no block is labelled Python, and only when they parse as a program (not output such as
`5` or `Hello, world`). A block never closed — the answer cut off at its token limit — is not
complete. An answer with no fence at all is taken whole when it parses as a program.

Later blocks that use what the program defines are its examples, and run with it: a shard row
defined `Product` in one block and called `Product("Laptop").name()` in the next, which raises
(its `name` attribute hides the method). A later block that defines nothing the program uses
runs on its own names, so it stays out: syntax templates such as `assert condition, message`
would raise NameError and reject good explanations.

A program here is Python that parses and does more than evaluate bare expressions: at least one
definition, import, assignment or other statement.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from synthmix.quality.code_language import fenced_blocks, is_program

PYTHON_LABELS = frozenset({"python", "py", "python3", "py3"})


@dataclass(frozen=True)
class FoundCode:
    """What an answer holds: the Python program (or why none), and the languages of its other code."""

    python: str | None
    other_languages: tuple[str, ...]  # labels of complete blocks in other languages, in order, once each
    problem: str | None  # why `python` is None


def find_python_code(answer: str) -> FoundCode:
    """The program to run from `answer` (see the module docstring for which one)."""
    blocks = fenced_blocks(answer)
    complete = [block for block in blocks if block.closed]
    others = tuple(dict.fromkeys(block.label for block in complete if block.label and block.label not in PYTHON_LABELS))
    labelled = [block.code for block in complete if block.label in PYTHON_LABELS]
    candidates = labelled or [block.code for block in complete if not block.label and is_program(block.code)]
    if candidates:
        biggest = max(len(code) for code in candidates)
        chosen = max(index for index, code in enumerate(candidates) if len(code) == biggest)
        return FoundCode(python=with_usage_blocks(candidates, chosen), other_languages=others, problem=None)
    if not blocks and is_program(answer):
        return FoundCode(python=answer, other_languages=(), problem=None)
    if any(not block.closed for block in blocks):
        problem = "the answer's code block is never closed (cut off at the token limit?)"
    elif others:
        problem = f"code blocks in {', '.join(others)}, none in Python"
    elif blocks:
        problem = "its code blocks are not Python programs"
    else:
        problem = "no code block in the answer"
    return FoundCode(python=None, other_languages=others, problem=problem)


def find_cut_python_block(text: str) -> str | None:
    """The code of a Python block that is never closed (a reply cut off at its token limit), down
    to its longest run of whole lines that parses as a program; None when there is no such block
    or nothing of it parses. For replies whose every statement stands alone, such as a test
    writer's asserts: an answer's program is never taken cut (see `find_python_code`)."""
    for block in fenced_blocks(text):
        if block.closed or block.label not in PYTHON_LABELS:
            continue
        lines = block.code.splitlines()
        for end in range(len(lines) - 1, 0, -1):  # the last line is cut mid-way, or whole: drop it either way
            code = "\n".join(lines[:end]) + "\n"
            if is_program(code):
                return code
    return None


def with_usage_blocks(blocks: list[str], chosen: int) -> str:
    """The chosen block, followed by each later block that uses a name it (or an added block) defines."""
    program = blocks[chosen]
    defined = _defined_names(program)
    for block in blocks[chosen + 1 :]:
        try:
            tree = ast.parse(block)
        except (SyntaxError, ValueError):
            continue
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        if used & defined:
            program = f"{program.rstrip()}\n\n{block}"
            defined |= _defined_names(block)
    return program


def _defined_names(source: str) -> set[str]:
    """Names a program binds at its top level: functions, classes, assignments and imports."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name))
    return names
