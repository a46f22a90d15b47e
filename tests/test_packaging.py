"""What `pip install` puts in place: one top-level name, synthmix, with its package data.

A clone works because the files sit beside the code; a wheel (or a job's working directory on a
cluster) has only what pyproject.toml's package-data names. This builds the wheel from the
project's sources, installs it alone into a fresh virtual environment outside the repository and
checks there, in a process that cannot see the repository, that it installs no top-level name but
synthmix, that `python -m synthmix` runs, that Hunyuan's tokenizer gives the repository copy's ids
and that every prompt template loads. A checkout run without installing (PYTHONPATH, as the tests
run) and an editable install must load each module once, under its synthmix name, from the
checkout's own folders.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from synthmix.pipeline.inspection.plan import profile_names
from synthmix.pipeline.llm.prompts import list_prompts
from synthmix.pipeline.tokens.tokenizers import HUNYUAN_FILE_SHA256, TokenizerSpec, load_tokenizer
from tests.pipeline.corpus import CHINESE

REPO_ROOT = Path(__file__).resolve().parents[1]
ENGLISH = "The quick brown fox jumps over the lazy dog in 2026, 12345 times."
FOLDERS = ("pipeline", "stages", "quality", "prompts")
SOURCES = (*FOLDERS, "synthmix", "pyproject.toml", "README.md")
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]

CHECK = """
import json, sys
from synthmix import pipeline
from synthmix.pipeline.llm.prompts import list_prompts, load_prompt
from synthmix.pipeline.inspection.plan import load_profile, profile_names
from synthmix.pipeline.tokens.tokenizers import TokenizerSpec, load_tokenizer
profiles = [load_profile(name).name for name in profile_names()]
tokenizer = load_tokenizer(TokenizerSpec(kind="hunyuan"))
ids = tokenizer.encode_batch(json.loads(sys.argv[1]))
prompts = list_prompts()
for template_id in prompts:
    load_prompt(template_id)
print(json.dumps({"module": pipeline.__file__, "ids": ids, "sha256": tokenizer.describe()["file_sha256"], "prompts": prompts, "profiles": profiles}))
"""


# Loads the CLI and every stage, then reports where each project module came from.
WHERE_FROM = """
import importlib, json, sys
from synthmix.pipeline.cli import main
from synthmix.stages.registry import STAGES
try:
    importlib.import_module("pipeline")  # by name: the rename script leaves it as it is
    bare = "imported"
except ImportError as error:
    bare = str(error)
ours = {name: getattr(module, "__file__", None) for name, module in sys.modules.items() if name.partition(".")[0] in ("synthmix", "pipeline", "stages", "quality", "prompts")}
print(json.dumps({"bare": bare, "modules": ours}))
"""


def copy_sources(destination: Path) -> Path:
    """The project's sources as a checkout has them (synthmix/<folder> are links), without caches."""
    destination.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, destination / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, destination / name)
    return destination


def new_venv(folder: Path) -> tuple[Path, Path]:
    """A virtual environment without synthmix whose dependencies come from this one, through a .pth
    line (which adds a folder, not this environment's editable install of synthmix): its python and site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def where_modules_come_from(python, cwd: Path, env: dict | None = None) -> dict:
    result = subprocess.run([python, "-c", WHERE_FROM], capture_output=True, text=True, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def assert_loaded_once_from(loaded: dict, checkout: Path) -> None:
    """Every module under its synthmix name only, each file one of the checkout's folders."""
    assert loaded["bare"] != "imported", "the folder must not load under its bare name"
    modules = loaded["modules"]
    assert "synthmix.stages.answer" in modules and "synthmix.pipeline.cli.main" in modules
    assert all(name.startswith("synthmix") for name in modules), [name for name in modules if not name.startswith("synthmix")]
    files = {name: Path(file).resolve() for name, file in modules.items() if file}
    assert all(file.is_relative_to(checkout.resolve()) for file in files.values()), files
    assert files["synthmix.pipeline.stage"] == (checkout / "pipeline" / "stage.py").resolve()


def test_a_checkout_on_the_path_loads_each_module_once_under_its_synthmix_name(tmp_path):
    loaded = where_modules_come_from(sys.executable, tmp_path, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert_loaded_once_from(loaded, REPO_ROOT)
    # pipeline/ itself is on the path here: its __init__ refuses the bare name.
    assert "import synthmix.pipeline, not pipeline" in loaded["bare"], loaded["bare"]
    cli = subprocess.run([sys.executable, "-m", "synthmix", "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert cli.returncode == 0 and "usage: synthmix" in cli.stdout, cli.stderr[-2000:]


def test_an_editable_install_loads_the_checkout_it_was_installed_from(tmp_path):
    source = copy_sources(tmp_path / "source")
    python, _ = new_venv(tmp_path / "venv")
    subprocess.run([*PIP, "--python", str(python), "install", "--no-deps", "--no-build-isolation", "-e", str(source)], check=True)

    loaded = where_modules_come_from(python, tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert_loaded_once_from(loaded, source)


def test_wheel_installed_alone_has_the_tokenizer_and_the_prompts(tmp_path):
    source = copy_sources(tmp_path / "source")
    wheels = tmp_path / "wheels"
    subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True)
    wheel = next(wheels.glob("synthmix-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"synthmix"}, "the wheel installs one top-level name"
    assert "synthmix/pipeline/stage.py" in names and "synthmix/__main__.py" in names

    # A new environment with only the wheel in its own site-packages.
    python, site = new_venv(tmp_path / "venv")
    subprocess.run([*PIP, "--python", str(python), "install", "--no-deps", "--ignore-installed", str(wheel)], check=True)
    assert sorted(path.name for path in site.iterdir() if not path.name.endswith((".dist-info", ".pth"))) == ["synthmix"]

    texts = [CHINESE, ENGLISH]
    result = subprocess.run([python, "-I", "-c", CHECK, json.dumps(texts)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    installed = json.loads(result.stdout)
    assert Path(installed["module"]).is_relative_to(site), "the check must import the installed wheel, not the repository"
    assert installed["sha256"] == HUNYUAN_FILE_SHA256
    assert installed["ids"] == load_tokenizer(TokenizerSpec(kind="hunyuan")).encode_batch(texts)
    assert installed["prompts"] == list_prompts() and installed["prompts"]
    assert installed["profiles"] == profile_names() and installed["profiles"], "the hardware profiles `synthmix plan` reads must ship"
    cli = subprocess.run([python, "-I", "-m", "synthmix", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 0 and "usage: synthmix" in cli.stdout, cli.stderr[-2000:]
