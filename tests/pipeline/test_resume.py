"""kill -9 of the driver mid-stage, then a rerun: only uncommitted work is redone, rows equal an uninterrupted run's."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from tests.pipeline.slow_job import REGISTRY, make_job

ROOT = Path(__file__).resolve().parents[2]


def write_corpus(path: Path, rows: int) -> None:
    path.write_text("".join(json.dumps({"text": f"document number {i}: " + "lorem ipsum " * (i % 7 + 1)}) + "\n" for i in range(rows)))


def stage_rows(run_dir: Path, stage: str) -> list[dict]:
    stage_dir = StageDir(run_dir, stage)
    table = pa.concat_tables([pq.read_table(f) for f in stage_dir.part_files()])
    return sorted(table.to_pylist(), key=lambda row: row["id"])


def start_job(run_dir: Path, corpus: Path, module: str = "tests.pipeline.slow_job") -> subprocess.Popen:
    """`python -m MODULE RUN_DIR CORPUS` in a session of its own, so a test can kill it whole."""
    return subprocess.Popen(
        [sys.executable, "-m", module, str(run_dir), str(corpus)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_killed_driver_resumes_without_redoing_committed_units(tmp_path, ray_session):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 120)
    reference_dir = tmp_path / "reference"
    run_job(make_job(reference_dir, corpus), REGISTRY, log=lambda line: None)
    reference = stage_rows(reference_dir, "slow_upper")

    run_dir = tmp_path / "killed"
    process = start_job(run_dir, corpus)
    units = StageDir(run_dir, "slow_upper").units_path
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(units.glob("*.json"))) < 4:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # the driver only, as a crashed batch job would die
    process.wait()
    time.sleep(1)
    os.killpg(process.pid, signal.SIGKILL)  # then its embedded Ray, so nothing lingers
    committed_before = set(StageDir(run_dir, "slow_upper").committed_input_ids().to_pylist())
    assert 0 < len(committed_before) < 120, "the kill must land mid-stage"
    assert StageDir(run_dir, "slow_upper").state("any") == "interrupted"

    log = run_dir / "processed.log"
    log.unlink()
    rerun = start_job(run_dir, corpus)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode()[-3000:]

    redone = set(log.read_text().split())
    assert redone and not (redone & committed_before), "committed units must not be redone"
    manifest = StageDir(run_dir, "slow_upper").manifest()
    assert manifest["resumed"] is True
    assert manifest["rows_in"] == manifest["rows_out"] == 120
    rows = stage_rows(run_dir, "slow_upper")
    assert [row["id"] for row in rows] == [row["id"] for row in reference]
    assert rows == reference
