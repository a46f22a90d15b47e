"""The installed wheel carries its package data: the default tokenizer, the prompt templates, the hardware profiles.

A clone works because the files sit beside the code; a wheel (or a job's working directory on a
cluster) has only what pyproject.toml's package-data names. This builds the wheel from the
project's sources, installs it alone into a fresh virtual environment outside the repository and
checks there, in a process that cannot see the repository, that Hunyuan's tokenizer gives the
repository copy's ids and that every prompt template loads.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from synthmix.pipeline.inspection.plan import profile_names
from synthmix.pipeline.llm.prompts import list_prompts
from synthmix.pipeline.tokens.tokenizers import HUNYUAN_FILE_SHA256, TokenizerSpec, load_tokenizer
from tests.pipeline.corpus import CHINESE

REPO_ROOT = Path(__file__).resolve().parents[1]
ENGLISH = "The quick brown fox jumps over the lazy dog in 2026, 12345 times."
SOURCES = ("pipeline", "stages", "quality", "prompts", "pyproject.toml", "README.md")

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


def test_wheel_installed_alone_has_the_tokenizer_and_the_prompts(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2
        copy(REPO_ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True)
    wheel = next(wheels.glob("synthmix-*.whl"))

    # A new environment with only the wheel in its own site-packages; its dependencies come
    # from this one through a .pth line (which adds a folder, not this environment's editable
    # install of synthmix).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)

    texts = [CHINESE, ENGLISH]
    result = subprocess.run([python, "-I", "-c", CHECK, json.dumps(texts)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    installed = json.loads(result.stdout)
    assert Path(installed["module"]).is_relative_to(site), "the check must import the installed wheel, not the repository"
    assert installed["sha256"] == HUNYUAN_FILE_SHA256
    assert installed["ids"] == load_tokenizer(TokenizerSpec(kind="hunyuan")).encode_batch(texts)
    assert installed["prompts"] == list_prompts() and installed["prompts"]
    assert installed["profiles"] == profile_names() and installed["profiles"], "the hardware profiles `synthmix plan` reads must ship"
