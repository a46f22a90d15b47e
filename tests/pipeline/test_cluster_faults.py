"""Faults on real Ray, each ending with the row set of an uninterrupted run.

- a Ray worker process killed (SIGKILL) mid-stage on a two-node loopback cluster;
- the driver killed mid-stage while joined to that cluster (the cluster lives on; the
  embedded-Ray version of this fault is test_resume.py);
- the LLM server gone mid-stage;
- a full or read-only run directory.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.runner import RunDirError, run_job
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES
from tests.container_features import missing_feature
from tests.pipeline.fake_chat_server import FakeChatServer
from tests.pipeline.fault_job import REGISTRY
from tests.pipeline.loopback_cluster import LoopbackCluster
from tests.pipeline.slow_job import make_job
from tests.pipeline.test_resume import stage_rows, write_corpus

ROOT = Path(__file__).resolve().parents[2]
ROWS = 120
QUIET = lambda line: None  # noqa: E731 - a log sink


@pytest.fixture(scope="module")
def cluster():
    cluster = LoopbackCluster(Path(tempfile.mkdtemp(prefix="smx-faults-", dir="/tmp")))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory, ray_session):
    """The slow job's rows from an uninterrupted run on the embedded Ray."""
    base = tmp_path_factory.mktemp("slow")
    corpus = base / "corpus.jsonl"
    write_corpus(corpus, ROWS)
    run_job(make_job(base / "reference", corpus), REGISTRY, log=QUIET)
    return corpus, stage_rows(base / "reference", "slow_upper")


def start_driver(cluster: LoopbackCluster, run_dir: Path, corpus: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline.fault_job", str(run_dir), str(corpus), cluster.gcs_address],
        cwd=ROOT,
        env={**cluster.cluster_env(), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_for_units(process: subprocess.Popen, stage_dir: StageDir, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(stage_dir.units_path.glob("*.json"))) < count:
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, f"fewer than {count} units committed after {timeout_s} s"
        time.sleep(0.2)


def stage_pids(run_dir: Path) -> list[int]:
    return [int(path.name) for path in (run_dir / "pids").iterdir()]


def test_killed_worker_process_is_retried_and_every_row_is_committed_once(cluster, slow_reference, tmp_path):
    corpus, reference = slow_reference
    run_dir = tmp_path / "run"
    driver = start_driver(cluster, run_dir, corpus)
    stage_dir = StageDir(run_dir, "slow_upper")
    wait_for_units(driver, stage_dir, 3)
    victim = stage_pids(run_dir)[0]
    os.kill(victim, signal.SIGKILL)  # a Ray worker running the stage's batches
    assert len(list(stage_dir.units_path.glob("*.json"))) < ROWS // 5, "the kill must land mid-stage"

    returncode = driver.wait(timeout=600)
    assert returncode == 0, f"Ray should retry the killed worker's task: {driver.stderr.read().decode()[-3000:]}"
    processed = (run_dir / "processed.log").read_text().split()
    assert len(processed) > ROWS, "the killed task was retried: batches it had done were done again"
    assert set(stage_pids(run_dir)) - {victim}, "another worker process took the task over"
    manifest = stage_dir.manifest()
    assert manifest["rows_in"] == manifest["rows_out"] == ROWS
    assert stage_rows(run_dir, "slow_upper") == reference


def test_killed_driver_on_a_cluster_resumes_without_redoing_committed_units(cluster, slow_reference, tmp_path):
    corpus, reference = slow_reference
    run_dir = tmp_path / "run"
    driver = start_driver(cluster, run_dir, corpus)
    stage_dir = StageDir(run_dir, "slow_upper")
    wait_for_units(driver, stage_dir, 4)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    # The cluster lives on and ends the dead driver's workers itself; wait for that, so none
    # of them commits after the rerun starts counting what it redoes.
    psutil.wait_procs([psutil.Process(pid) for pid in stage_pids(run_dir) if psutil.pid_exists(pid)], timeout=120)
    committed_before = set(stage_dir.committed_input_ids().to_pylist())
    assert 0 < len(committed_before) < ROWS

    (run_dir / "processed.log").unlink()
    rerun = start_driver(cluster, run_dir, corpus)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode()[-3000:]
    redone = set((run_dir / "processed.log").read_text().split())
    assert redone and not (redone & committed_before), "committed units must not be redone"
    assert stage_dir.manifest()["resumed"] is True
    assert stage_rows(run_dir, "slow_upper") == reference


def synthesize_job(run_dir: Path, corpus: Path, base_url: str):
    return parse_job(
        {
            "name": "llm-fault",
            "run_dir": str(run_dir),
            "models": {"fake": {"engine": "openai", "base_url": base_url, "model": "fake", "max_retries": 2, "backoff_s": 0.2, "timeout_s": 10}},
            "stages": ["seeds", "synthesize"],
            "seeds": {"path": str(corpus)},
            "synthesize": {"model": "fake"},
        },
        source="llm-fault",
    )


def all_rows(run_dir: Path, stage: str) -> list[dict]:
    stage_dir = StageDir(run_dir, stage)
    rows = [row for f in [*stage_dir.part_files(), *stage_dir.reject_files()] for row in pq.read_table(f).to_pylist()]
    # Accepted rows carry no reject columns; a reject's columns are there, null or not.
    return sorted(({key: value for key, value in row.items() if value is not None or not key.startswith("reject_")} for row in rows), key=lambda row: row["id"])


def test_llm_server_gone_mid_stage_rejects_the_rest_as_llm_error_and_a_rerun_completes(tmp_path, ray_session):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 30)
    server = FakeChatServer().start()
    try:
        run_job(synthesize_job(tmp_path / "reference", corpus, server.base_url), STAGES, log=QUIET)
    finally:
        server.stop()
    reference = all_rows(tmp_path / "reference", "synthesize")
    assert not [row for row in reference if row.get("reject_reason") == "llm_error"]

    run_dir = tmp_path / "run"
    dying = FakeChatServer(answer_limit=12).start()
    run_job(synthesize_job(run_dir, corpus, dying.base_url), STAGES, log=QUIET)
    manifest = StageDir(run_dir, "synthesize").manifest()
    assert manifest["rejected"].get("llm_error") == 30 - 12, "every unanswered seed is an llm_error reject"
    rows = all_rows(run_dir, "synthesize")
    assert {row["parent_id"] for row in rows} == {row["parent_id"] for row in reference}, "no seed lost"
    errors = [row for row in rows if row.get("reject_reason") == "llm_error"]
    assert all("gave up after 3 tries" in row["reject_detail"] for row in errors)
    answered = [row for row in rows if row.get("reject_reason") != "llm_error"]
    assert all(row in reference for row in answered), "rows answered before the server died are the reference's"

    # The server is back: rerunning the stage redoes it and gives the uninterrupted rows.
    server = FakeChatServer().start()
    try:
        run_job(synthesize_job(run_dir, corpus, server.base_url), STAGES, only="synthesize", log=QUIET)
    finally:
        server.stop()
    assert all_rows(run_dir, "synthesize") == reference


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root in a container that allows mounts; see tests/container_features.py)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        missing_feature("tmpfs_mount", f"mounting a 1 MiB tmpfs failed: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def assert_refused_before_the_job_starts(run_dir: Path, corpus: Path, message: str) -> None:
    write_corpus(corpus, 20)
    logged = []
    with pytest.raises(RunDirError, match=message):
        run_job(make_job(run_dir, corpus), REGISTRY, log=logged.append)
    assert logged == [], "the error comes before the job starts"


def test_full_disk_is_a_clear_error_before_ray_starts(tiny_disk, tmp_path, ray_session):
    with open(tiny_disk / "filler", "wb") as handle:
        try:
            handle.write(b"\0" * (2 << 20))
        except OSError:
            pass  # ENOSPC: the disk is now full, which is the point
    assert_refused_before_the_job_starts(tiny_disk / "run", tmp_path / "corpus.jsonl", "No space left on device.*free space")


def test_read_only_run_dir_is_a_clear_error_before_ray_starts(tiny_disk, tmp_path, ray_session):
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    assert_refused_before_the_job_starts(tiny_disk / "run", tmp_path / "corpus.jsonl", "is not writable \\(Read-only file system\\).*--run-dir")


def test_disk_filling_mid_stage_fails_and_a_rerun_after_freeing_space_completes(tiny_disk, tmp_path, ray_session):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"{i} " + os.urandom(3000).hex()}) + "\n" for i in range(120)))
    reference_dir = tmp_path / "reference"
    run_job(make_job(reference_dir, corpus), REGISTRY, log=QUIET)

    run_dir = tiny_disk / "run"
    with pytest.raises(Exception, match="No space left on device"):
        run_job(make_job(run_dir, corpus), REGISTRY, log=QUIET)
    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_disk)], check=True)
    run_job(make_job(run_dir, corpus), REGISTRY, log=QUIET)
    assert stage_rows(run_dir, "slow_upper") == stage_rows(reference_dir, "slow_upper")
