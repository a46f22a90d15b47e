"""Does `synthmix plan` from a pilot of N seed chunks predict a run three times larger?

Run: `PYTHONPATH=. .venv/bin/python -m tests.benchmarks.bench_plan [--pilot 12] [--factor 3] [--job jobs/pilot.yaml] [--runs DIR] [--fresh]`.
It runs `synthmix run JOB --pilot N` and `--pilot F*N` on the embedded model (each in a fresh
process, Ray and the engine start counted; a fresh finished run is reused, --fresh redoes both),
plans the larger run from the smaller (`--seeds` = the larger run's seed chunks, on the pilot's
own engine seconds), and prints, per LLM stage and in total, the predicted and the measured
generated tokens and engine seconds with their ratios, and whether each total is within 25%.
The seed slices are nested: the N chunks with the smallest ids are among the F*N.
The machine's CPU flags and load average are printed with it: engine seconds on a shared
machine move with what else runs there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from synthmix.pipeline.inspection.plan import measure_pilot, project
from synthmix.pipeline.inspection.terminal_view import format_table

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.25


def run_pilot(job: Path, chunks: int, run_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "synthmix", "run", str(job), "--pilot", str(chunks), "--run-dir", str(run_dir)], cwd=ROOT, check=True, env=env)


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = sorted({word for line in text.splitlines() if line.startswith("flags") for word in line.split() if word.startswith("avx512")})
    return " ".join(flags) or "no AVX-512"


def compare(small: Path, large: Path) -> tuple[list[list[str]], dict[str, float]]:
    """Rows of predicted vs measured per stage and in total; the total ratios."""
    measured = measure_pilot(large)
    plan = project(measure_pilot(small), seed_chunks=measured["seed_chunks"])
    actual = {(entry["stage"], entry["model"]): entry for entry in measured["stages"]}
    rows, totals = [], {"predicted_tokens": 0, "measured_tokens": 0, "predicted_s": 0.0, "measured_s": 0.0}
    for stage in plan["stages"]:
        real = actual[(stage["stage"], stage["model"])]
        rows.append(_row(stage["stage"], stage["generated_tokens"], real["generated_tokens"], stage["engine_s"], real["engine_s"]))
        totals["predicted_tokens"] += stage["generated_tokens"]
        totals["measured_tokens"] += real["generated_tokens"]
        totals["predicted_s"] += stage["engine_s"]
        totals["measured_s"] += real["engine_s"]
    rows.append(_row("total", totals["predicted_tokens"], totals["measured_tokens"], totals["predicted_s"], totals["measured_s"]))
    kept_small = sum(entry["pairs"] for entry in plan["kept"].values())
    kept_large = sum(entry["pairs"] for entry in measured["kept"].values())
    rows.append(["kept pairs", f"{kept_small:,}", f"{kept_large:,}", f"{kept_small / kept_large:.2f}" if kept_large else "-", "", "", ""])
    ratios = {"tokens": totals["predicted_tokens"] / totals["measured_tokens"], "engine_s": totals["predicted_s"] / totals["measured_s"]}
    return rows, ratios


def _row(name: str, predicted_tokens: float, tokens: float, predicted_s: float, seconds: float) -> list[str]:
    return [
        name,
        f"{predicted_tokens:,.0f}",
        f"{tokens:,.0f}",
        f"{predicted_tokens / tokens:.2f}",
        f"{predicted_s:,.1f}",
        f"{seconds:,.1f}",
        f"{predicted_s / seconds:.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", type=Path, default=ROOT / "jobs" / "pilot.yaml")
    parser.add_argument("--pilot", type=int, default=12, help="seed chunks of the pilot")
    parser.add_argument("--factor", type=int, default=3, help="the larger run has factor x pilot seed chunks")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_plan", help="where both runs live")
    parser.add_argument("--fresh", action="store_true", help="delete both runs first")
    args = parser.parse_args()
    small, large = args.runs / f"pilot-{args.pilot}", args.runs / f"pilot-{args.pilot * args.factor}"
    if args.fresh:
        for path in (small, large):
            shutil.rmtree(path, ignore_errors=True)
    load_before = os.getloadavg()
    run_pilot(args.job, args.pilot, small)
    run_pilot(args.job, args.pilot * args.factor, large)
    load_after = os.getloadavg()
    rows, ratios = compare(small, large)
    headers = ["stage", "predicted gen tokens", "measured", "ratio", "predicted engine s", "measured", "ratio"]
    print(f"\n{args.job.name}: plan from --pilot {args.pilot} ({small}) for the --pilot {args.pilot * args.factor} run ({large})")
    print(
        f"CPU flags: {cpu_flags()}; {os.cpu_count()} CPUs; load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}"
    )
    print(format_table(headers, rows, right=[1, 2, 3, 4, 5, 6]))
    for what, ratio in ratios.items():
        print(f"{what}: predicted / measured = {ratio:.2f}: {'within' if abs(ratio - 1) <= TOLERANCE else 'NOT within'} {TOLERANCE:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
