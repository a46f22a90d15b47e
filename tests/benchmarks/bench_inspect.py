"""Inspection on a run with 1M rows in a stage: wall time and peak memory of `inspect`, `trace` and `report`.

    .venv/bin/python -m tests.benchmarks.bench_inspect [--rows 1000000]

Writes a synthetic run with pyarrow (a `seeds` stage of rows/10 chunks and an `instructions`
stage of `rows` children with text, scores, domain and lang, in part files of 50k rows), then
runs each CLI command in its own process and reads its peak RSS from the kernel (wait4).
Baseline, measured side by side: loading the whole stage with `pyarrow.parquet.read_table`
and finding one id in it, which is what inspection must not do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PART_ROWS = 50_000
WORDS = np.array("the of data model answer question proof step value token sample prompt code math river light".split())
BASELINE = "pyarrow read_table (whole stage) + find id"


def write_stage(run_dir: Path, name: str, columns_of, rows: int) -> None:
    stage = run_dir / name
    (stage / "rejects").mkdir(parents=True)
    for start in range(0, rows, PART_ROWS):
        table = pa.table(columns_of(start, min(rows, start + PART_ROWS)))
        pq.write_table(table, stage / f"part-{start:09d}.parquet", compression="zstd", row_group_size=10_000)
    rejected = {"critique_low": rows // 100}
    manifest = {
        "fingerprint": "bench",
        "rows_in": rows + rows // 100,
        "rows_out": rows,
        "rows_rejected": rows // 100,
        "rejected": rejected,
        "llm": {},
        "wall_s": 0.0,
    }
    (stage / "_manifest.json").write_text(json.dumps(manifest))


def ids(prefix: str, start: int, stop: int) -> pa.Array:
    return pa.array([f"{prefix}{i:028x}" for i in range(start, stop)])


def texts(rng: np.random.Generator, count: int, words: int) -> pa.Array:
    picked = WORDS[rng.integers(0, len(WORDS), size=(count, words))]
    return pa.array([" ".join(row) for row in picked])


def make_run(root: Path, rows: int) -> tuple[Path, str]:
    run_dir = root / "run"
    run_dir.mkdir()
    (run_dir / "job.yaml").write_text("name: bench\nstages: [seeds]\nseeds: {builtin: {pydoc_topics: 1}}\n")
    rng = np.random.default_rng(0)
    seeds = rows // 10

    def seed_columns(start: int, stop: int) -> dict:
        return {
            "id": ids("5eed", start, stop),
            "seed_id": ids("5eed", start, stop),
            "parent_id": ids("file:", start, stop),
            "domain": rng.choice(["math", "code", "science", "general"], stop - start),
            "text": texts(rng, stop - start, 60),
        }

    def instruction_columns(start: int, stop: int) -> dict:
        parents = np.arange(start, stop) // 10
        parent_ids = pa.array([f"5eed{i:028x}" for i in parents])
        return {
            "id": ids("1n57", start, stop),
            "seed_id": parent_ids,
            "parent_id": parent_ids,
            "domain": rng.choice(["math", "code", "science", "general"], stop - start),
            "lang": rng.choice(["en", "zh", "fr"], stop - start, p=[0.8, 0.15, 0.05]),
            "instruction": texts(rng, stop - start, 25),
            "critique_score": rng.integers(1, 11, stop - start).astype(np.float64),
        }

    write_stage(run_dir, "seeds", seed_columns, seeds)
    time.sleep(0.01)
    write_stage(run_dir, "instructions", instruction_columns, rows)
    return run_dir, f"1n57{rows // 2:028x}"


def measure(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB, and exit status of one command run in its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status:
        sys.stderr.write(process.stderr.read().decode())
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_dir, row_id = make_run(Path(tmp), args.rows)
        size = sum(f.stat().st_size for f in (run_dir / "instructions").glob("*.parquet")) / 2**20
        print(f"synthetic run: {args.rows} rows in 'instructions' ({size:.0f} MiB zstd), written in {time.perf_counter() - started:.1f} s")
        cli = [sys.executable, "-m", "synthmix"]
        cases = [
            (
                BASELINE,
                [
                    sys.executable,
                    "-c",
                    (
                        "import glob,sys,pyarrow.parquet as pq,pyarrow.compute as pc;"
                        f"t=pq.read_table(sorted(glob.glob('{run_dir}/instructions/part-*.parquet')));"
                        f"r=t.filter(pc.equal(t['id'],'{row_id}'));assert r.num_rows==1"
                    ),
                ],
            ),
            ("synthmix status RUN (CLI start-up, no Parquet read)", [*cli, "status", str(run_dir), "--json"]),
            ("inspect RUN (funnel)", [*cli, "inspect", str(run_dir), "--json"]),
            ("inspect RUN instructions --sample 3", [*cli, "inspect", str(run_dir), "instructions", "--sample", "3", "--json"]),
            (
                "inspect ... --where 'critique_score < 3 and lang = ''zh'''",
                [*cli, "inspect", str(run_dir), "instructions", "--where", "critique_score < 3 and lang = 'zh'", "--json"],
            ),
            ("trace RUN ID", [*cli, "trace", str(run_dir), row_id, "--json"]),
            ("report RUN -o (every stage profiled, kept against rejected)", [*cli, "report", str(run_dir), "-o", f"{tmp}/report.html"]),
        ]
        results = [(name, *measure(argv)) for name, argv in cases]
    base_wall, base_rss = results[0][1], results[0][2]
    print(f"\n{'command':<58} {'wall s':>7} {'x base':>7} {'peak MiB':>9} {'x base':>7} {'exit':>5}")
    for name, wall, rss, code in results:
        print(f"{name:<58} {wall:>7.2f} {wall / base_wall:>7.2f} {rss:>9.0f} {rss / base_rss:>7.2f} {code:>5}")


if __name__ == "__main__":
    main()
