"""The quickstart job end to end, timed per stage: does the whole recipe fit in about ten minutes
on 2 cores, engine start-ups included?

Run: `.venv/bin/python -m tests.benchmarks.bench_quickstart [--run-dir DIR]`. It runs
`synthmix run jobs/quickstart.yaml --force` in a fresh process (Ray and every engine start
counted) and prints each stage's wall time, rows and generated tokens from the manifests,
and the total against the 600 s target.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TARGET_S = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args()
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-quickstart-")) / "run"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "jobs/quickstart.yaml", "--run-dir", str(run_dir), "--force"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    total = time.perf_counter() - started
    stages = [entry if isinstance(entry, str) else entry["name"] for entry in yaml.safe_load((ROOT / "jobs/quickstart.yaml").read_text())["stages"]]
    print(f"\nquickstart on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':<20} {'wall s':>8} {'in':>6} {'out':>6} {'rejected':>9} {'gen tokens':>11} {'gen tok/s':>10}")
    stage_sum = 0.0
    for name in stages:
        manifest = json.loads((run_dir / name / "_manifest.json").read_text())
        generated = sum(usage.get("generated_tokens", 0) for usage in manifest["llm"].values())
        rate = f"{generated / manifest['wall_s']:.0f}" if generated else "-"
        stage_sum += manifest["wall_s"]
        print(
            f"{name:<20} {manifest['wall_s']:>8.1f} {manifest['rows_in']:>6} {manifest['rows_out']:>6} {manifest['rows_rejected']:>9} {generated or '-':>11} {rate:>10}"
        )
    print(f"{'stages':<20} {stage_sum:>8.1f}")
    print(f"{'whole command':<20} {total:>8.1f}   (Ray start, planning and every engine start included)")
    print(f"{'target':<20} {TARGET_S:>8.1f}   ratio {total / TARGET_S:.2f} of the target")


if __name__ == "__main__":
    main()
