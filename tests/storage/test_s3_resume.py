"""kill -9 of a driver writing its run to S3, then a rerun: committed units are kept, the
half-done unit (objects without a marker) is removed and redone, nothing is counted twice."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from synthmix.pipeline.runner import run_job
from synthmix.pipeline.storage import as_path, read_parquet
from synthmix.pipeline.store import StageDir
from tests.storage.s3_slow_job import REGISTRY, make_job

ROOT = Path(__file__).resolve().parents[2]
ROWS = 60


def start_job(run_uri: str, seeds_uri: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage.s3_slow_job", run_uri, seeds_uri, str(log)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def settled_commits(stage: StageDir) -> set[str]:
    """The committed input ids once no orphaned worker of the killed run commits any more
    (a worker can finish the unit it was writing before it notices its raylet is gone)."""
    seen = set(stage.committed_input_ids().to_pylist())
    while True:
        time.sleep(2)
        now = set(stage.committed_input_ids().to_pylist())
        if now == seen:
            return now
        seen = now


def test_killed_s3_run_resumes_without_redoing_committed_units(bucket, tmp_path, ray_session):
    seeds_uri = f"{bucket}/corpus/docs.jsonl"
    as_path(seeds_uri).write_text("".join(json.dumps({"text": f"document number {i}: " + "lorem ipsum " * (i % 7 + 1)}) + "\n" for i in range(ROWS)))
    run_uri = f"{bucket}/runs/killed"
    stage = StageDir(as_path(run_uri), "slow_upper")
    log = tmp_path / "processed.log"

    process = start_job(run_uri, seeds_uri, log)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(stage.units_path.glob("*.json"))) < 3:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)  # the driver, as a crashed batch job would die
    process.wait()
    time.sleep(1)
    os.killpg(process.pid, signal.SIGKILL)  # then its embedded Ray, so nothing lingers
    committed_before = settled_commits(stage)
    assert 0 < len(committed_before) < ROWS, "the kill must land mid-stage"
    assert stage.state("any") == "interrupted"
    # What a unit killed between its part and its marker leaves: objects no marker vouches for.
    stray = pa.table({"id": ["stray"], "text": ["never committed"]})
    from synthmix.pipeline.store import write_atomic_parquet

    write_atomic_parquet(stage.part_path("half-done"), stray)
    write_atomic_parquet(stage.units_path / "half-done.ids.parquet", pa.table({"id": ["stray"]}))

    log.unlink()
    # The rerun in this process, on the session's Ray: any driver resumes the run in the bucket.
    run_job(make_job(run_uri, seeds_uri, str(log)), REGISTRY, log=lambda line: None)

    redone = set(log.read_text().split())
    assert redone and not (redone & committed_before), "committed units must not be redone"
    assert len(redone | committed_before) == ROWS
    manifest = stage.manifest()
    assert manifest["resumed"] is True
    assert manifest["rows_in"] == manifest["rows_out"] == ROWS
    assert not stage.part_path("half-done").exists() and not (stage.units_path / "half-done.ids.parquet").exists()
    table = pa.concat_tables([read_parquet(path) for path in stage.part_files()])
    assert table.num_rows == ROWS and len(set(table["id"].to_pylist())) == ROWS
    assert table["upper"].to_pylist() == [text.upper() for text in table["text"].to_pylist()]
