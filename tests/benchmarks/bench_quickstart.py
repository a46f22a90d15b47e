"""The quickstart job end to end, timed per stage: does the whole recipe fit in about ten minutes
on 2 cores, engine start-ups included, and what does starting each model once per job save?

Run: `.venv/bin/python -m tests.benchmarks.bench_quickstart [--run-dir DIR] [--engines both|shared|per_stage] [--job FILE]`.
Each run is `synthmix run jobs/quickstart.yaml --force` in a fresh process (Ray and every engine
start counted), with the same job and model settings; only the engines differ:
- shared: each model starts once per job and serves every stage that uses it (the default);
- per_stage: SYNTHMIX_ENGINES=per_stage, every LLM stage starts its own engine (as before #17).
With `both` (the default) it runs per_stage first, then shared, and prints each stage's wall
time side by side, the engine start-up seconds the manifests record, rows and generated tokens.
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
MODES = ("per_stage", "shared")


def run_quickstart(job: Path, run_dir: Path, mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SYNTHMIX_ENGINES", None)
    if mode == "per_stage":
        env["SYNTHMIX_ENGINES"] = "per_stage"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "synthmix", "run", str(job), "--run-dir", str(run_dir), "--force"], cwd=ROOT, check=True, env=env)
    return time.perf_counter() - started


def stage_figures(run_dir: Path, name: str) -> dict:
    manifest = json.loads((run_dir / name / "_manifest.json").read_text())
    usage = manifest.get("llm", {}).values()
    return {
        "wall_s": manifest["wall_s"],
        "rows_in": manifest["rows_in"],
        "rows_out": manifest["rows_out"],
        "generated": sum(counts.get("generated_tokens", 0) for counts in usage),
        # Recorded by the shared engines only: seconds this stage spent starting models (0: reused).
        "startup_s": sum(counts.get("startup_s", 0) for counts in usage) if any("startup_s" in counts for counts in usage) else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--engines", choices=("both", *MODES), default="both")
    # Another job (a smaller one, to try the benchmark itself); the figures are the quickstart's.
    parser.add_argument("--job", type=Path, default=ROOT / "jobs/quickstart.yaml")
    args = parser.parse_args()
    base = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-quickstart-"))
    modes = MODES if args.engines == "both" else (args.engines,)
    totals = {}
    for mode in modes:
        totals[mode] = run_quickstart(args.job.resolve(), base / mode, mode)
    stages = [entry if isinstance(entry, str) else entry["name"] for entry in yaml.safe_load(args.job.read_text())["stages"]]
    print(f"\n{args.job.name} on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (1 min) {os.getloadavg()[2]:.1f} (15 min)")
    header = "".join(f"{mode + ' wall s':>18}" for mode in modes)
    print(f"{'stage':<20}{header}{'start-up s':>12}{'in':>6}{'out':>6}{'gen tokens':>11}")
    sums = dict.fromkeys(modes, 0.0)
    for name in stages:
        figures = {mode: stage_figures(base / mode, name) for mode in modes}
        for mode in modes:
            sums[mode] += figures[mode]["wall_s"]
        last = figures[modes[-1]]
        walls = "".join(f"{figures[mode]['wall_s']:>18.1f}" for mode in modes)
        startup = "-" if last["startup_s"] is None else f"{last['startup_s']:.1f}"
        print(f"{name:<20}{walls}{startup:>12}{last['rows_in']:>6}{last['rows_out']:>6}{last['generated'] or '-':>11}")
    print(f"{'stages':<20}" + "".join(f"{sums[mode]:>18.1f}" for mode in modes))
    print(f"{'whole command':<20}" + "".join(f"{totals[mode]:>18.1f}" for mode in modes) + "   (Ray start, planning and every engine start included)")
    for mode in modes:
        print(f"{mode}: {totals[mode]:.1f} s, ratio {totals[mode] / TARGET_S:.2f} of the {TARGET_S} s target")
    if len(modes) == 2:
        print(f"shared saves {totals['per_stage'] - totals['shared']:.1f} s of the whole command")


if __name__ == "__main__":
    main()
