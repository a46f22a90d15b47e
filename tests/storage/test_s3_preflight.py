"""What goes wrong with a bucket is said before any stage starts, naming the s3:// path; and a
dedup job reaches a store named only by its job's `storage:` section."""

import json
import socket
import time

import pyarrow as pa
import pytest

from synthmix.pipeline import storage
from synthmix.pipeline.cli import main
from synthmix.pipeline.config import load_job
from synthmix.pipeline.inspection.run_copy import CACHE_ENV
from synthmix.pipeline.runner import RunDirError, run_job
from synthmix.pipeline.storage import RemotePath, StorageError, as_path, glob_remote, read_parquet
from synthmix.pipeline.store import StageDir
from synthmix.stages.dedup import Dedup
from synthmix.stages.seeds import Seeds

# An address nothing listens on: were Ray reached before the storage check, the error would be Ray's.
NO_CLUSTER = "ray://127.0.0.1:9"


def test_missing_bucket_is_named_before_ray_is_reached(s3_server, capsys):
    started = time.monotonic()
    code = main(["run", "jobs/dedup.yaml", "--run-dir", "s3://no-such-bucket-synthmix/runs/a", "--address", NO_CLUSTER])
    err = capsys.readouterr().err
    assert code == 2
    assert "s3://no-such-bucket-synthmix/runs/a" in err and "bucket 'no-such-bucket-synthmix' does not exist" in err
    assert "Traceback" not in err and time.monotonic() - started < 30


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_endpoint_names_the_endpoint_setting(s3_server, bucket, capsys):
    closed = closed_port()
    code = main(["run", "jobs/dedup.yaml", "--run-dir", f"{bucket}/r", "--address", NO_CLUSTER, "--set", f"storage.endpoint=http://127.0.0.1:{closed}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bucket}/r" in err and "cannot reach the store" in err and f"127.0.0.1:{closed}" in err


def test_a_failed_job_gives_the_process_back_the_endpoint_it_found(s3_server, bucket):
    """A library user's job run in this process fails at the store its storage: section names;
    the s3:// paths made after it reach the environment's store again, not that closed port."""
    job = load_job("jobs/dedup.yaml", [f"run_dir={bucket}/r", f"storage.endpoint=http://127.0.0.1:{closed_port()}"])
    with pytest.raises(RunDirError, match="cannot reach the store"):
        run_job(job, {"seeds": Seeds, "dedup": Dedup}, log=lambda line: None)
    assert storage.current_endpoint().url == s3_server
    after = as_path(f"{bucket}/after-the-job.txt")
    after.write_text("reached")
    assert after.read_text() == "reached"


def test_seeds_in_a_missing_bucket_are_named(s3_server, bucket, capsys):
    code = main(["run", "jobs/dedup.yaml", "--run-dir", f"{bucket}/r", "--address", NO_CLUSTER, "--set", "seeds.path=s3://no-such-seeds-bucket/in/*.jsonl"])
    err = capsys.readouterr().err
    assert code == 2 and "bucket 'no-such-seeds-bucket' does not exist" in err


def test_inspecting_an_empty_prefix_says_there_is_no_run(bucket, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert main(["inspect", f"{bucket}/nothing-here"]) == 2
    assert f"{bucket}/nothing-here: no run there" in capsys.readouterr().err


def test_remote_paths_name_keys_like_paths_and_globs_list_only_their_prefix(bucket):
    root = as_path(f"{bucket}/data")
    assert isinstance(root, RemotePath) and str(root / "a" / ".." / "b.jsonl") == f"{bucket}/data/b.jsonl"
    assert (root / "x.parquet").with_name("y.parquet").name == "y.parquet" and (root / "x.parquet").parent == root
    for name in ("data/a.jsonl", "data/sub/b.jsonl", "data/c.parquet", "other/d.jsonl"):
        as_path(f"{bucket}/{name}").write_text("{}\n")
    assert [str(path) for path in glob_remote(f"{bucket}/data/*.jsonl")] == [f"{bucket}/data/a.jsonl"]
    assert [path.name for path in glob_remote(f"{bucket}/data/**/*.jsonl")] == ["a.jsonl", "b.jsonl"]
    assert glob_remote(f"{bucket}/data/none-*.jsonl") == []
    assert sorted(path.name for path in root.glob("*.jsonl")) == ["a.jsonl"]
    try:
        glob_remote("s3://no-such-bucket-synthmix/*.jsonl")
    except StorageError as error:
        assert "does not exist" in str(error)
    else:
        raise AssertionError("a glob in a missing bucket must say so")


def test_dedup_job_writes_to_the_store_its_storage_section_names(s3_server, bucket, ray_session, monkeypatch, capsys):
    monkeypatch.delenv(storage.ENDPOINT_ENV)  # only the job's storage: section names the server
    run = f"{bucket}/dedup"
    small = ["--set", "seeds.builtin.pydoc_topics=24", "--set", "seeds.builtin.stdlib_modules=6", "--set", "seeds.chunk_chars=1500"]
    assert main(["run", "jobs/dedup.yaml", "--run-dir", run, "--set", f"storage.endpoint={s3_server}", *small]) == 0
    assert storage.current_endpoint().url is None, "the job's endpoint outlived the job: later s3:// paths would still reach its store"
    root = RemotePath(run.removeprefix("s3://"), storage.Endpoint(s3_server))
    stage = StageDir(root, "dedup")
    manifest = stage.manifest()
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"] > 0
    kept = pa.concat_tables([read_parquet(path) for path in stage.part_files()])
    assert kept.num_rows == manifest["rows_out"]
    job = (root / "job.yaml").read_text()
    assert s3_server in job, "job.yaml records the endpoint the run was written with"
    capsys.readouterr()
    monkeypatch.setenv(storage.ENDPOINT_ENV, s3_server)
    assert main(["status", run, "--json"]) == 0
    assert {row["stage"]: row["state"] for row in json.loads(capsys.readouterr().out)} == {"seeds": "fresh", "dedup": "fresh"}
