"""Stage fingerprints: a stage is fresh when everything that decides its output is unchanged.

The fingerprint hashes, as canonical JSON: the stage kind, its parameters, the bytes of its
prompt template files, the specs of the models it calls, the code version and its inputs'
fingerprints, plus whatever the stage adds (a source stage: the sizes and mtimes of its input
files). Changing any of these makes the stage and everything downstream stale; nothing else does.

The code version covers the code a stage runs: its module (and its base classes' modules) and
every project module reachable from those by imports, transitively, function-level imports
included. A helper edited in `quality/`, in `pipeline/` or in another module a stage reaches
makes the stage stale; hashing the stage's own file alone let a rerun reuse output made by the
old helper. Project modules are those of the packages in PROJECT_PACKAGES and of the stage's own
top-level package (a stage defined in a user's package or in the tests follows its own helpers
too). Imports under `if TYPE_CHECKING:` never run and are not followed; modules loaded by name
at run time (`importlib.import_module`) are not seen.

Each module counts by its syntax tree, docstrings removed, without positions
(`ast.dump(..., include_attributes=False)`): comments, docstrings, blank lines and line wrapping
change no output and leave stages fresh; any other edit, a changed constant or a renamed
argument, makes them stale. Bytecode would do worse: line numbers live in it, so a comment
added above a function would change it. The tree's shape can change between Python minor
versions; an interpreter upgrade then makes stages stale once, which is also the safe answer.
Parsed modules are cached per process by the hash of their bytes: each call reads the files
(cheap) and parses only what changed (about 0.5 s for every stage of the project at first).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmix.pipeline import __version__

# Packages whose modules count as the code a stage runs: all of synthmix (pipeline/, stages/,
# quality/ and prompts/ are its subpackages).
PROJECT_PACKAGES = ("synthmix",)

CodeVersion = Callable[[type], str]


def canonical_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def code_version(stage_class: type, *, roots: Mapping[str, Path] | None = None) -> str:
    """synthmix's version and the code of every module the stage can run (see the module docstring).

    `roots` maps a package name (top-level, or a subpackage such as `synthmix.pipeline`) to its
    folder; by default each top-level package is found where Python imports it from.
    """
    digests = code_modules(stage_class, roots=roots)
    return f"{__version__}+{canonical_hash(sorted(digests.items()))[:16]}"


def code_modules(stage_class: type, *, roots: Mapping[str, Path] | None = None) -> dict[str, str]:
    """Module name -> code digest, for every project module the stage's code can run."""
    starts = [cls.__module__ for cls in stage_class.__mro__ if cls.__module__ != "builtins"]
    tops = {*PROJECT_PACKAGES, *(name.partition(".")[0] for name in starts)}
    found = dict(roots) if roots is not None else {}
    for top in tops - found.keys():
        folder = _package_folder(top)
        if folder is not None:
            found[top] = folder
    digests: dict[str, str] = {}
    pending = list(dict.fromkeys(starts))
    while pending:
        name = pending.pop()
        if name in digests:
            continue
        path = _module_file(name, found)
        if path is None:
            path = _loaded_module_file(name) if name in starts else None
            if path is None:
                continue
        digests[name] = parse_module(path).digest
        pending.extend(module for module in _project_imports(name, path, found) if module not in digests)
    return digests


def import_graph(package: str) -> dict[str, set[str]]:
    """Each module of `package` -> the modules of it that it imports, as the code version follows
    them (synthmix.pipeline must hold no cycle: tests/pipeline/test_fingerprint.py)."""
    folder = _package_folder(package)
    if folder is None:
        raise ValueError(f"{package!r} is not an importable package")
    graph = {}
    for path in sorted(folder.rglob("*.py")):
        parts = (package, *path.relative_to(folder).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = set()
    for name in graph:
        path = _module_file(name, {package: folder})
        # A module always imports its parent packages; those edges are not dependencies of its code.
        imported = _project_imports(name, path, {package: folder})
        graph[name] = {module for module in imported if module in graph and module != name and not name.startswith(module + ".")}
    return graph


def _project_imports(name: str, path: Path, roots: Mapping[str, Path]) -> Iterator[str]:
    """Modules of the packages in `roots` that module `name` (at `path`) may load."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for candidate in _candidates(parse_module(path).imports, package):
        if _root_of(candidate, roots) is not None:
            yield candidate


@dataclass(frozen=True)
class ParsedModule:
    digest: str  # of the syntax tree without docstrings and positions
    # Each import as (level, module, names): `from ..a import b` is (2, "a", ("b",)).
    imports: tuple[tuple[int, str, tuple[str, ...]], ...]


_PARSED: dict[str, ParsedModule] = {}


def parse_module(path: Path) -> ParsedModule:
    """The code digest and imports of one module file, cached by the hash of its bytes."""
    source = path.read_bytes()
    key = hashlib.sha256(source).hexdigest()
    parsed = _PARSED.get(key)
    if parsed is None:
        tree = ast.parse(source, filename=str(path))
        imports = tuple(_imports(tree))
        _strip_docstrings(tree)
        digest = hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()
        parsed = _PARSED[key] = ParsedModule(digest, imports)
    return parsed


def _imports(node: ast.AST) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """Every import that can run, at any depth; `if TYPE_CHECKING:` bodies are skipped."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield 0, alias.name, ()
        elif isinstance(child, ast.ImportFrom):
            yield child.level, child.module or "", tuple(alias.name for alias in child.names)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from _imports(ast.Module(body=child.orelse, type_ignores=[]))
        else:
            yield from _imports(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:]


def _candidates(imports: Iterable[tuple[int, str, tuple[str, ...]]], package: str) -> Iterator[str]:
    """Module names an import may load: the module, its parent packages, and `from` names that are submodules."""
    for level, module, names in imports:
        if level:
            base = package.split(".")[: len(package.split(".")) - (level - 1)] if package else []
            module = ".".join([*base, *([module] if module else [])])
        if not module:
            continue
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            yield ".".join(parts[:depth])
        for name in names:
            if name != "*":
                yield f"{module}.{name}"


def _root_of(name: str, roots: Mapping[str, Path]) -> str | None:
    """The package of `roots` that module `name` belongs to (the longest that matches)."""
    matching = [root for root in roots if name == root or name.startswith(root + ".")]
    return max(matching, key=len) if matching else None


def _module_file(name: str, roots: Mapping[str, Path]) -> Path | None:
    top = _root_of(name, roots)
    if top is None:
        return None
    root, rest = roots[top], name[len(top) + 1 :]
    base = root.joinpath(*rest.split(".")) if rest else root
    for path in (base / "__init__.py",) if not rest else (base.with_name(base.name + ".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_folder(top: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):  # `__main__` and other modules without a spec
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _loaded_module_file(name: str) -> Path | None:
    """A stage module that is no package's (a script, `__main__`): its file as loaded."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    return Path(file) if file and file.endswith(".py") else None


def fingerprint_parts(
    *,
    kind: str,
    params: dict[str, Any],
    prompt_hashes: dict[str, str],
    models: dict[str, Any],
    code: str,
    inputs: list[str],
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "kind": kind,
        "params": params,
        "prompts": prompt_hashes,
        "models": models,
        "code": code,
        "inputs": inputs,
        "extra": extra,
    }
