import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # `python -c` imports quality/ from its working directory


def test_quality_modules_import_no_ray() -> None:
    # Every module of quality/, found on disk, so a module added later is held to the rule too.
    modules = sorted(path.stem for path in (REPO_ROOT / "quality").glob("*.py") if path.stem != "__init__")
    assert "lsh" in modules and "sandbox_child" in modules
    imports = "; ".join(f"import synthmix.quality.{module}" for module in modules)
    code = f"import sys; {imports}; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert run.stdout.strip() == "[]"
