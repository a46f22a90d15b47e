import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # `python -c` imports quality/ from its working directory


def test_quality_modules_import_no_ray() -> None:
    modules = [
        "answer_extraction", "benchmark_sets", "code_extraction", "decontamination", "exact_dedup", "fasttext_input", "heuristics",
        "langid", "lsh", "minhash", "ngram_hashes", "normalize", "package_files", "probe_sets", "proportions",
        "quality_classifier", "sandbox", "sandbox_child", "shingles", "voting",
    ]  # fmt: skip
    imports = "; ".join(f"import quality.{module}" for module in modules)
    code = f"import sys; {imports}; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert run.stdout.strip() == "[]"
