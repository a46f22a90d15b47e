"""The code version covers the code a stage runs: every project module it reaches by imports.

Edits are made to a copy of the project's packages (`code_version(roots=...)` reads that copy),
never to the tree other tests import.
"""

import functools
import shutil
import textwrap
from pathlib import Path

import pytest

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.fingerprint import PROJECT_PACKAGES, code_modules, code_version, import_graph
from synthmix.pipeline.graph import build_graph
from synthmix.stages.registry import STAGES

ROOT = Path(__file__).resolve().parents[2]
JOB = {
    "name": "j",
    "stages": ["seeds", "quality", "tokenize"],
    "tokenize": {"tokenizer": {"kind": "tiktoken", "name": "cl100k_base"}},
}


def python_files_only(folder, names):
    return [name for name in names if not (name.endswith(".py") or (Path(folder) / name).is_dir()) or name == "__pycache__"]


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the synthmix package's Python files (its folders copied through the links synthmix/<folder>)."""
    (package,) = PROJECT_PACKAGES
    shutil.copytree(ROOT / package, tmp_path / "copy" / package, ignore=python_files_only)
    return tmp_path / "copy" / package


def fingerprints(project: Path, tmp_path: Path) -> dict[str, str]:
    job = parse_job(JOB, source="j.yaml")
    roots = {"synthmix": project}
    plan = build_graph(
        job,
        STAGES,
        run_dir=tmp_path / "run",
        job_dir=tmp_path,
        prompt_hash=lambda template_id: "p",
        code_hash=functools.partial(code_version, roots=roots),
    )
    return {node.name: node.fingerprint for node in plan}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(
    "module, old, new",
    [
        # A helper in quality/ that only the quality stage reaches (through no file of its own).
        ("quality/heuristics.py", "_REFUSAL_WINDOW_CHARS = 300", "_REFUSAL_WINDOW_CHARS = 301"),
        # A pipeline module the quality stage imports.
        ("pipeline/inputs/sample_text.py", "def check_text_source(", "def check_text_source(*_unused, "),
    ],
)
def test_editing_a_helper_makes_the_stage_that_runs_it_and_its_downstream_stale(project, tmp_path, module, old, new):
    before = fingerprints(project, tmp_path)
    edit(project / module, old, new)
    after = fingerprints(project, tmp_path)
    assert after["seeds"] == before["seeds"], "seeds does not run that module"
    assert after["quality"] != before["quality"]
    assert after["tokenize"] != before["tokenize"], "downstream of a stale stage is stale"


def test_comments_docstrings_and_layout_leave_every_stage_fresh(project, tmp_path):
    before = fingerprints(project, tmp_path)
    heuristics = project / "quality" / "heuristics.py"
    edit(heuristics, "_REFUSAL_WINDOW_CHARS = 300", "# a comment added above\n\n_REFUSAL_WINDOW_CHARS = 300  # and beside")
    edit(heuristics, '"""Cheap text heuristics:', '"""Reworded: cheap text heuristics:')
    edit(project / "stages" / "quality.py", "class Quality(Stage):", "# why the quality stage exists\nclass Quality(Stage):")
    assert fingerprints(project, tmp_path) == before


def test_an_edit_in_a_module_no_stage_reaches_leaves_every_stage_fresh(project, tmp_path):
    job_modules = set().union(*(code_modules(STAGES[name]) for name in JOB["stages"]))
    assert "synthmix.quality.minhash" not in job_modules
    before = fingerprints(project, tmp_path)
    minhash = project / "quality" / "minhash.py"
    minhash.write_text(minhash.read_text(encoding="utf-8") + "\n\ndef added_helper():\n    return 1\n", encoding="utf-8")
    assert fingerprints(project, tmp_path) == before


def test_the_code_version_is_the_code_s_not_the_folder_s_it_lies_in(project):
    # The copy lies elsewhere, its folders copied through synthmix/'s links: the same versions.
    for name in JOB["stages"]:
        assert code_version(STAGES[name], roots={"synthmix": project}) == code_version(STAGES[name])


def test_function_level_imports_count_and_type_checking_imports_do_not(tmp_path, monkeypatch):
    package = tmp_path / "fp_case_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lazy_helper.py").write_text("VALUE = 1\n")
    (package / "typing_only.py").write_text("VALUE = 2\n")
    (package / "case_stage.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING

            from synthmix.pipeline.stage import Stage

            if TYPE_CHECKING:
                from fp_case_pkg import typing_only


            class CaseStage(Stage):
                name = "case"

                def transform(self, batch):
                    from fp_case_pkg.lazy_helper import VALUE

                    return batch
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from fp_case_pkg.case_stage import CaseStage

    modules = code_modules(CaseStage)
    assert {"fp_case_pkg.case_stage", "fp_case_pkg.lazy_helper", "synthmix.pipeline.stage", "synthmix.pipeline.contracts"} <= set(modules)
    assert "fp_case_pkg.typing_only" not in modules
    before = code_version(CaseStage)
    (package / "lazy_helper.py").write_text("VALUE = 3\n")
    edited = code_version(CaseStage)
    assert edited != before, "an edit is seen at once, within the same process"
    (package / "typing_only.py").write_text("VALUE = 4\n")
    assert code_version(CaseStage) == edited


def test_no_stage_module_imports_another_stage_module():
    for name, stage_class in STAGES.items():
        own = stage_class.__module__
        others = [module for module in code_modules(stage_class) if module.startswith("synthmix.stages.") and module != own]
        assert others == [], f"stage {name} ({own}) imports {others}; move what they share to pipeline/"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, as the modules along it, or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported, [*path, imported])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_pipeline_modules_import_each_other_without_a_cycle(tmp_path, monkeypatch):
    assert find_cycle(import_graph("synthmix.pipeline")) is None
    # The check sees a cycle where there is one, function-level imports included.
    package = tmp_path / "fp_cycle_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("def default():\n    from fp_cycle_pkg.tasks import run\n    return run\n")
    (package / "tasks.py").write_text("from fp_cycle_pkg import base\n\nrun = base\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_cycle(import_graph("fp_cycle_pkg")) == ["fp_cycle_pkg.base", "fp_cycle_pkg.tasks", "fp_cycle_pkg.base"]
