"""pyproject.toml's import contracts cover modules and imports that do not exist yet.

The contracts are written by pattern (`synthmix.stages.*`, all of `synthmix.quality`, whole layers), so a module
added later is held to them the day it lands, and so is a new import in a module of a layer.
Each case copies the sources, adds one import that breaks a rule (in a new module, or at the end
of an existing one), and runs import-linter on the copy: the contract that names the rule must
break and name the importing module.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The folders, and synthmix/ whose links make them synthmix's subpackages (import-linter follows them).
FOLDERS = ("pipeline", "stages", "quality", "prompts")
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"

CONTRACTS = len(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"])
LAYERS = "Layers: the stages and the runner (independent) over the graph"
NO_CYCLE = "No cycle between the modules or subpackages of one package"
# (the importing module's path, the import it gains, the contracts it breaks: an upward import
# into a layer that already imports the importer also closes a cycle)
RULE_BREAKING_IMPORTS = {
    "a new stage importing another stage": (
        "stages/summarize.py",
        "from synthmix.stages.answer import Answer\n",
        ("A stage module never imports another stage module",),
    ),
    "a new quality module importing the run core": (
        "quality/length_checks.py",
        "from synthmix.pipeline.storage import read_parquet\n",
        ("quality/ imports only the contracts module of pipeline/",),
    ),
    "a new engine module importing the stage core": (
        "pipeline/llm/batch_api.py",
        "from synthmix.pipeline.stage import with_columns\n",
        (LAYERS,),
    ),
    "a new engine module importing the job config": (
        "pipeline/llm/batch_api.py",
        "from synthmix.pipeline.config import JobConfig\n",
        (LAYERS, NO_CYCLE),
    ),
    "the job config importing the graph above it": (
        "pipeline/config.py",
        "\nfrom synthmix.pipeline.graph import build_graph\n",
        (LAYERS, NO_CYCLE),
    ),
    "a new stage importing the runner": (
        "stages/summarize.py",
        "from synthmix.pipeline.runner import run_job\n",
        (LAYERS,),
    ),
    "a new run-core module importing inspection": (
        "pipeline/run_summary.py",
        "from synthmix.pipeline.inspection.funnel import run_funnel\n",
        ("Only the CLI imports the stages, the inspection commands and the CLI",),
    ),
}


def _copy_sources(destination: Path) -> None:
    """The Python sources laid out as in the checkout, and pyproject.toml, without data files (the tokenizer, models)."""

    def not_python(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if name == "__pycache__" or (not name.endswith(".py") and not (Path(folder) / name).is_dir())]

    for folder in FOLDERS:
        shutil.copytree(REPO_ROOT / folder, destination / folder, ignore=not_python)
    shutil.copytree(REPO_ROOT / "synthmix", destination / "synthmix", symlinks=True, ignore=not_python)
    shutil.copy2(REPO_ROOT / "pyproject.toml", destination / "pyproject.toml")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("case", RULE_BREAKING_IMPORTS)
def test_an_import_breaking_a_rule_breaks_its_contract(tmp_path, case):
    path, source, contracts = RULE_BREAKING_IMPORTS[case]

    output = _lint_with_import(tmp_path, path, source)

    importing_module = "synthmix." + path.removesuffix(".py").replace("/", ".")
    assert all(contract in output for contract in contracts) and "BROKEN" in output, output
    assert importing_module in output, output
    assert f"Contracts: {CONTRACTS - len(contracts)} kept, {len(contracts)} broken." in output, output


def test_an_import_closing_a_cycle_inside_a_package_breaks_the_acyclic_contract(tmp_path):
    # The engine pool naming the engines' base class: the cycle ReplicaEngine, a Protocol, replaced.
    output = _lint_with_import(tmp_path, "pipeline/llm/engine_pool.py", "\nfrom synthmix.pipeline.llm.engines.base import PooledEngine\n")

    assert NO_CYCLE in output and "BROKEN" in output, output
    assert "No cycles are allowed in synthmix.pipeline.llm" in output and ".engine_pool -> .engines" in output, output
    assert f"Contracts: {CONTRACTS - 1} kept, 1 broken." in output, output


def _lint_with_import(root: Path, path: str, source: str) -> str:
    """import-linter's report (white space folded: it wraps long names) on a copy of the sources
    where the module at `path` (new, or existing) ends with `source`; it must fail."""
    _copy_sources(root)
    importer = root / path
    importer.write_text((importer.read_text() if importer.exists() else "") + source)
    result = _lint_imports(root)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    return output


def test_the_contracts_hold_on_the_checkout_as_import_linter_reads_it_through_the_links(tmp_path):
    _copy_sources(tmp_path)
    assert (tmp_path / "synthmix" / "stages").is_symlink()

    result = _lint_imports(tmp_path)

    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in output, output
