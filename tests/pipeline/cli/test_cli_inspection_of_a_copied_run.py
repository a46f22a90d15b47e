"""A finished run copied away from its checkout, read-only: every inspection command works on it
and writes nothing into it; status says what it cannot decide and why; run refuses, naming the input.

The run is the quickstart recipe through a fake OpenAI-compatible server (every stage, real
JSON columns, Chinese and English seeds). Its job folder and seed files are deleted after the
copy, as when a run directory is copied from a cluster's storage to a laptop. Tests run as
root in CI, where permission bits stop nothing, so the run's files are also compared before
and after: any file written, renamed or deleted inside it (even a temporary one) changes a
folder's mtime or the listing.
"""

import json
import shutil
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.cli import main
from synthmix.pipeline.config import load_job
from synthmix.pipeline.runner import run_job
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_chat_server import FakeChatServer, schema_reply

ROOT = Path(__file__).resolve().parents[3]
# The first of the quickstart's seed files: the one a copied run's checks name as missing.
SEED_FILE = "data/zh_seeds.jsonl"


@pytest.fixture(scope="module")
def copied_run(tmp_path_factory, ray_session):
    checkout = tmp_path_factory.mktemp("checkout")
    (checkout / "jobs").mkdir(parents=True)
    shutil.copy(ROOT / "jobs" / "quickstart.yaml", checkout / "jobs")
    shutil.copytree(ROOT / "jobs" / "data", checkout / "jobs" / "data")
    server = FakeChatServer(reply=schema_reply).start()
    try:
        model = f"models.embedded={{engine: openai, base_url: '{server.base_url}', model: fake-recipe-model}}"
        # The fake's answers are prose, which verify_code rightly rejects as no_code for code
        # questions; no domain's answers are run here, so some pairs reach the shards to inspect.
        no_code_run = "verify_code.domains=[none_here]"
        job = load_job(checkout / "jobs" / "quickstart.yaml", [model, no_code_run, f"run_dir={checkout / 'runs' / 'quickstart'}"])
        run_job(job, STAGES, job_dir=checkout / "jobs", log=lambda line: None)
    finally:
        server.stop()
    copy = tmp_path_factory.mktemp("laptop") / "quickstart"
    shutil.copytree(checkout / "runs" / "quickstart", copy)
    shutil.rmtree(checkout)
    make_read_only(copy)
    yield copy
    for path in [copy, *copy.rglob("*")]:
        if path.is_dir():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)  # so pytest can clean up


def make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and mtime: a write anywhere inside changes it."""
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns) for path in [root, *root.rglob("*")]}


def synthmix(capsys, *args):
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def a_shard_row_id(run_dir: Path) -> str:
    return pq.read_table(sorted((run_dir / "shards").glob("*.parquet"))[0], columns=["id"]).column("id")[0].as_py()


def test_every_inspection_command_works_on_the_copy_and_writes_nothing_into_it(copied_run, tmp_path, capsys, monkeypatch):
    assert all(stat.S_IMODE(path.stat().st_mode) & 0o222 == 0 for path in [copied_run, *copied_run.rglob("*")])
    before = snapshot(copied_run)
    monkeypatch.chdir(copied_run)  # a tool writing beside the working directory would write into the run
    stages = [entry["stage"] for entry in json.loads(synthmix(capsys, "inspect", copied_run, "--json")[1])]
    # Every stage of the job, then the published shards.
    assert stages == [entry.name for entry in load_job(ROOT / "jobs" / "quickstart.yaml").stages] + ["shards"]
    row_id = a_shard_row_id(copied_run)
    out = tmp_path / "out"
    commands = [
        ["status", copied_run],
        ["status", copied_run, "--json"],
        ["inspect", copied_run],
        *(["inspect", copied_run, stage, "--sample", "2"] for stage in stages),
        ["inspect", copied_run, "evolve", "--rejects"],
        ["inspect", copied_run, "critique", "--where", "critique_score >= 5", "--columns", "critique,critique_score"],
        ["trace", copied_run, row_id],
        ["trace", copied_run, row_id, "--json"],
        ["eval", copied_run],
        ["eval", copied_run, "--json"],
        ["report", copied_run, "-o", out / "report.html"],
        ["export", copied_run, "critique", "--format", "jsonl", "-o", out / "critique.jsonl"],
        ["export", copied_run, "seeds", "--format", "hf", "-o", out / "seeds-hf"],
    ]
    for command in commands:
        code, _, err = synthmix(capsys, *command)
        assert code == 0, f"synthmix {' '.join(map(str, command))} failed: {err}"
    assert snapshot(copied_run) == before
    assert (out / "report.html").stat().st_size > 10_000 and len((out / "critique.jsonl").read_text().splitlines()) > 0


def test_status_reports_the_counts_and_says_per_stage_why_staleness_cannot_be_decided(copied_run, capsys):
    code, out, _ = synthmix(capsys, "status", copied_run, "--json")
    rows = {row["stage"]: row for row in json.loads(out)}
    assert code == 0 and list(rows) == [entry.name for entry in load_job(ROOT / "jobs" / "quickstart.yaml").stages]
    assert {row["state"] for row in rows.values()} == {"undecided"}
    assert all(row["rows_out"] is not None and row["wall_s"] is not None for row in rows.values())
    assert SEED_FILE in rows["seeds"]["why"] and "matches no file" in rows["seeds"]["why"]
    assert rows["mix"]["why"] == "it reads from stage 'seeds' (directly or through others), whose inputs are missing here"
    code, out, _ = synthmix(capsys, "status", copied_run)
    assert "cannot be decided on this machine" in out and f"seeds: seeds path '{SEED_FILE}' matches no file" in out
    assert "which this machine does not have" in out


def test_trace_follows_a_shard_row_back_to_its_seed_in_the_copy(copied_run, capsys):
    code, out, _ = synthmix(capsys, "trace", copied_run, a_shard_row_id(copied_run), "--json")
    stages = [step["stage"] for step in json.loads(out)["steps"]]
    assert code == 0 and stages[0] == "seeds" and stages[-1] == "shards" and "critique" in stages


def test_run_refuses_the_copied_job_naming_the_missing_seed_file(copied_run, tmp_path, capsys):
    code, _, err = synthmix(capsys, "run", copied_run / "job.yaml", "--run-dir", tmp_path / "again")
    assert code == 2 and SEED_FILE in err and "matches no file" in err


def test_a_report_or_export_that_cannot_be_written_says_to_pass_another_path(copied_run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    code, _, err = synthmix(capsys, "report", copied_run, "-o", tmp_path / "a-file" / "report.html")
    assert code == 2 and "cannot write the report" in err and "pass -o" in err
    code, _, err = synthmix(capsys, "export", copied_run, "seeds", "-o", tmp_path / "a-file" / "seeds.jsonl")
    assert code == 2 and "pass -o" in err
