"""`synthmix submit` / `synthmix jobs` against a real two-node Ray cluster on loopback, token auth on.

Two jobs are submitted: seeds -> tokenize -> mix (tests/pipeline/cli/cluster_job.yaml), and the
whole quickstart recipe with its model pointed at a chat server whose replies depend only on
the prompt, so that a cluster run and a local run must agree row for row (real engines are
tested in tests/e2e; on CPU their sampling is not reproducible from run to run). Starting the
cluster takes 30-60 s here; it is shared by the module.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.cli import submit
from synthmix.pipeline.config import ConfigError, load_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.tokens.mixture import read_mix
from synthmix.pipeline.tokens.tokenizers import HUNYUAN_FILE_SHA256
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_chat_server import FakeChatServer, schema_reply
from tests.pipeline.loopback_cluster import LoopbackCluster

ROOT = Path(__file__).resolve().parents[3]
CLUSTER_JOB = ROOT / "tests" / "pipeline" / "cli" / "cluster_job.yaml"
QUICKSTART = ROOT / "jobs" / "quickstart.yaml"
STAGE_NAMES = ("seeds", "tokenize", "mix")


@pytest.fixture(scope="module")
def cluster():
    # A short path: Ray's Unix sockets live under it and their names must stay under 108 bytes.
    cluster = LoopbackCluster(Path(tempfile.mkdtemp(prefix="smx-submit-", dir="/tmp")))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def synthmix(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "synthmix", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def rows_by_stage(run_dir: Path, names=STAGE_NAMES, *, rejects: bool = False) -> dict[str, list[dict]]:
    result = {}
    for name in names:
        stage_dir = StageDir(run_dir, name)
        files = stage_dir.reject_files() if rejects else stage_dir.part_files()
        rows = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []
        result[name] = sorted(rows, key=lambda row: row["id"])
    return result


def shard_contents(run_dir: Path) -> tuple[list[dict], tuple[int, int]]:
    """Every shard row, by id, and the mix's row and token totals. Not the order within a shard:
    tokenize keeps its input files' order, and how many rows an upstream unit committed per part
    file depends on batch timing (the same on one machine, not on a loaded one beside a cluster)."""
    shards = sorted((run_dir / "shards").glob("*.parquet"))
    mix = json.loads((run_dir / "shards" / "mix.json").read_text())
    rows = sorted((row for f in shards for row in pq.read_table(f).to_pylist()), key=lambda row: row["id"])
    return rows, (sum(shard["rows"] for shard in mix["shards"]), sum(shard["tokens"] for shard in mix["shards"]))


def test_entrypoint_runs_the_job_with_its_stage_selection_and_overrides():
    submission = submit.Submission(job_file=CLUSTER_JOB, run_dir="/shared/runs/x", overrides=["seeds.chunk_chars=900"], start="tokenize", force=True)
    entrypoint = submit.build_entrypoint(submission, submit.job_path_in_project(CLUSTER_JOB))
    assert entrypoint == (
        "python -m synthmix run tests/pipeline/cli/cluster_job.yaml --run-dir /shared/runs/x --set seeds.chunk_chars=900 --from tokenize --force"
    )


def test_runtime_env_carries_the_project_pip_requirements_and_env_vars():
    submission = submit.Submission(job_file=CLUSTER_JOB, run_dir="/r", pip=["datasketch==1.6.5"], env_vars=submit.parse_env_vars(["HF_HOME=/shared/hf"]))
    runtime_env = submit.build_runtime_env(submission)
    assert runtime_env["working_dir"] == str(ROOT)
    assert ".venv/" in runtime_env["excludes"] and "runs/" in runtime_env["excludes"]
    assert runtime_env["pip"] == ["datasketch==1.6.5"]
    assert runtime_env["env_vars"] == {"HF_HOME": "/shared/hf"}


def test_relative_run_dir_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="--run-dir /shared/runs/quickstart"):
        submit.cluster_run_dir(None, "quickstart")


def test_job_file_outside_the_project_is_refused(tmp_path):
    outside = tmp_path / "job.yaml"
    outside.write_text(CLUSTER_JOB.read_text())
    with pytest.raises(ConfigError, match="outside the project folder"):
        submit.job_path_in_project(outside)


def test_gcs_address_is_refused_naming_the_dashboard_port():
    with pytest.raises(ConfigError, match="http://HEAD:8265"):
        submit.dashboard_url("10.0.0.1:6379")


def test_job_files_only_the_cluster_sees_are_reported_with_the_way_round():
    result = synthmix(["submit", "jobs/cluster.yaml", "--run-dir", "/shared/runs/c", "--address", "http://127.0.0.1:1"], dict(os.environ))
    assert result.returncode == 2
    assert "/shared/seeds" in result.stderr and "--no-local-check" in result.stderr


def test_submit_wait_on_a_two_node_cluster_equals_a_local_run(cluster, tmp_path, ray_session):
    cluster_run = tmp_path / "on-cluster"
    result = synthmix(["submit", str(CLUSTER_JOB), "--address", cluster.dashboard_url, "--run-dir", str(cluster_run), "--wait"], cluster.client_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    job_id = result.stdout.splitlines()[0]
    assert job_id.startswith("raysubmit_")
    assert "job cluster-test finished" in result.stdout, "--wait streams the job's own log"

    local_run = tmp_path / "local"
    job = load_job(CLUSTER_JOB)
    job.run_dir = str(local_run)
    run_job(job, STAGES, job_dir=CLUSTER_JOB.parent, log=lambda line: None)

    assert rows_by_stage(cluster_run) == rows_by_stage(local_run)
    assert shard_contents(cluster_run) == shard_contents(local_run)

    status = synthmix(["jobs", "status", job_id, "--address", cluster.dashboard_url], cluster.client_env())
    assert status.stdout.strip() == "SUCCEEDED", status.stderr
    logs = synthmix(["jobs", "logs", job_id, "--address", cluster.dashboard_url], cluster.client_env())
    assert "[mix] done" in logs.stdout


def test_quickstart_submitted_to_a_two_node_cluster_equals_a_local_run(cluster, tmp_path, ray_session):
    server = FakeChatServer(reply=schema_reply).start()
    model = f"models.embedded={{engine: openai, base_url: '{server.base_url}', model: fake-recipe-model}}"
    # The fake answers in prose, which verify_code rightly rejects as no_code for code questions:
    # no domain's answers are run, so rows reach the shards to compare.
    no_code_run = "verify_code.domains=[none_here]"
    try:
        cluster_run = tmp_path / "on-cluster"
        result = synthmix(
            ["submit", str(QUICKSTART), "--address", cluster.dashboard_url, "--run-dir", str(cluster_run),
             "--set", model, "--set", no_code_run, "--wait"],
            cluster.client_env(),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "job quickstart finished" in result.stdout

        local_run = tmp_path / "local"
        job = load_job(QUICKSTART, overrides=[model, no_code_run])
        job.run_dir = str(local_run)
        run_job(job, STAGES, job_dir=QUICKSTART.parent, log=lambda line: None)
    finally:
        server.stop()

    names = [entry.name for entry in job.stages]
    missing = [name for name in names if StageDir(cluster_run, name).manifest() is None]
    assert not missing, f"stages that did not run on the cluster: {missing}"
    assert rows_by_stage(cluster_run, names) == rows_by_stage(local_run, names)
    assert rows_by_stage(cluster_run, names, rejects=True) == rows_by_stage(local_run, names, rejects=True)
    shards, listed = shard_contents(cluster_run)
    assert (shards, listed) == shard_contents(local_run)
    # The quickstart is sized for 2 cores (17 seed chunks); a few dozen rows make the comparison mean something.
    assert len(shards) > 20, "rows must reach the shards for the comparison to mean much"
    # The default tokenizer ships inside the package, so it travels with the job to the cluster.
    assert read_mix(cluster_run / "shards" / "mix.json").tokenizer["file_sha256"] == HUNYUAN_FILE_SHA256


def test_rerun_on_the_cluster_with_only_redoes_that_stage(cluster, tmp_path):
    run_dir = tmp_path / "run"
    common = ["--address", cluster.dashboard_url, "--run-dir", str(run_dir), "--wait"]
    first = synthmix(["submit", str(CLUSTER_JOB), *common], cluster.client_env())
    assert first.returncode == 0, first.stderr[-3000:]
    seeds_manifest = StageDir(run_dir, "seeds").manifest()

    again = synthmix(["submit", str(CLUSTER_JOB), *common, "--only", "mix"], cluster.client_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ran mix" in again.stdout
    assert StageDir(run_dir, "seeds").manifest() == seeds_manifest


def test_wrong_token_is_refused_saying_where_the_token_goes(cluster, tmp_path):
    wrong = tmp_path / "wrong_token"
    wrong.write_text("not-the-cluster-token")
    env = {**cluster.client_env(), "RAY_AUTH_TOKEN_PATH": str(wrong)}
    result = synthmix(["jobs", "status", "raysubmit_none", "--address", cluster.dashboard_url], env)
    assert result.returncode == 2
    assert "refused this machine's authentication token" in result.stderr
    assert "~/.ray/auth_token" in result.stderr and "RAY_AUTH_TOKEN" in result.stderr


def test_missing_token_is_refused_saying_where_the_token_goes(cluster, tmp_path):
    env = {**cluster.client_env(), "HOME": str(tmp_path)}  # no ~/.ray/auth_token there
    env.pop("RAY_AUTH_TOKEN_PATH")
    result = synthmix(["jobs", "status", "raysubmit_none", "--address", cluster.dashboard_url], env)
    assert result.returncode == 2
    assert "requires an authentication token and none was found" in result.stderr


def test_unknown_job_id_is_a_clear_error(cluster):
    result = synthmix(["jobs", "status", "raysubmit_none", "--address", cluster.dashboard_url], cluster.client_env())
    assert result.returncode == 2
    assert "no job with that id" in result.stderr and "raysubmit_none" in result.stderr
