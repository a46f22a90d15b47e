"""A job submitted to the two-node loopback cluster writes its run to the S3 server: the
endpoint reaches the driver only through the job's `storage:` section (`--set`), and the
workers only through the paths the driver hands them."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from synthmix.pipeline import storage
from synthmix.pipeline.storage import RemotePath, read_parquet
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.tokens.mixture import validate_mix
from tests.pipeline.loopback_cluster import LoopbackCluster
from tests.storage.conftest import CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_JOB = ROOT / "tests" / "pipeline" / "cli" / "cluster_job.yaml"


@pytest.fixture(scope="module")
def cluster(s3_server):
    # Started without SYNTHMIX_S3_ENDPOINT, so no cluster process can find the server by itself.
    endpoint = os.environ.pop(storage.ENDPOINT_ENV)
    cluster = LoopbackCluster(Path(tempfile.mkdtemp(prefix="smx-s3-", dir="/tmp")))
    try:
        yield cluster.start()
    finally:
        os.environ[storage.ENDPOINT_ENV] = endpoint
        cluster.stop()


def synthmix(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "synthmix", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_submitted_job_writes_its_run_to_the_s3_server(cluster, s3_server, bucket):
    run = f"{bucket}/cluster-run"
    credentials = [item for key, value in CREDENTIALS.items() for item in ("--env", f"{key}={value}")]
    client_env = {key: value for key, value in cluster.client_env().items() if key != storage.ENDPOINT_ENV}
    result = synthmix(
        ["submit", str(CLUSTER_JOB), "--address", cluster.dashboard_url, "--run-dir", run, "--set", f"storage.endpoint={s3_server}", *credentials, "--wait"],
        client_env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "job cluster-test finished" in result.stdout

    root = RemotePath(run.removeprefix("s3://"), storage.Endpoint(s3_server))
    manifests = {name: StageDir(root, name).manifest() for name in ("seeds", "tokenize", "mix")}
    assert all(manifests.values()), "every stage committed its manifest to the bucket"
    mix = validate_mix(root / "shards" / "mix.json")
    assert mix.rows == manifests["tokenize"]["extra"]["rows"] == sum(read_parquet(p).num_rows for p in StageDir(root, "tokenize").part_files()) > 0
    assert not (ROOT / "s3:").exists()

    status = synthmix(["status", run, "--json"], {**client_env, storage.ENDPOINT_ENV: s3_server})
    assert status.returncode == 0, status.stderr
    assert {row["stage"]: row["state"] for row in json.loads(status.stdout)} == {"seeds": "fresh", "tokenize": "fresh", "mix": "fresh"}
