"""A run directory on an S3 API server: the engine-free recipe (seeds, dedup, tokenize, mix)
writes its run there from s3:// seeds, the rows equal a local run's, and the inspection
commands and the packed mix reader read it back from the bucket."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.cli import main
from synthmix.pipeline.config import parse_job
from synthmix.pipeline.inspection.run_copy import CACHE_ENV
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.storage import as_path, read_parquet
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.tokens.mixture import validate_mix
from synthmix.pipeline.tokens.packing import PackedSequenceReader
from synthmix.stages.dedup import Dedup
from synthmix.stages.mix import Mix
from synthmix.stages.seeds import Seeds
from synthmix.stages.tokenize import Tokenize
from tests.storage.conftest import make_bucket

REGISTRY = {"seeds": Seeds, "dedup": Dedup, "tokenize": Tokenize, "mix": Mix}
CL100K = {"kind": "tiktoken", "name": "cl100k_base"}
STAGES = ["seeds", "dedup", "tokenize", "mix"]


def recipe(run_dir: str, seeds_path: str) -> dict:
    return {
        "name": "s3-recipe",
        "run_dir": run_dir,
        "ray": {"num_cpus": 2},
        "stages": STAGES,
        "seeds": {"path": seeds_path, "chunk_chars": 400},
        "dedup": {"threshold": 0.7},
        "tokenize": {"tokenizer": CL100K, "shard_tokens": 600},
    }


def corpus_lines(count: int) -> str:
    lines = []
    for i in range(count):
        text = f"Document {i % 23} talks about topic {i % 23}: " + " ".join(f"word{(i * 7 + j) % 50}" for j in range(40 + i % 9))
        lines.append(json.dumps({"id": f"doc-{i}", "text": text}))
    return "\n".join(lines) + "\n"


def rows(run_dir, stage: str) -> list[dict]:
    table = pa.concat_tables([read_parquet(f) for f in StageDir(run_dir, stage).part_files()])
    return sorted(table.to_pylist(), key=lambda row: row["id"])


@pytest.fixture(scope="module")
def runs(s3_server, ray_session, tmp_path_factory):
    """The same recipe run twice: into a local folder from a local file, and into a bucket from
    an s3:// glob of the same file (beside an object the glob must not match)."""
    work = tmp_path_factory.mktemp("s3-recipe")
    bucket = make_bucket(s3_server)
    corpus = corpus_lines(60)
    (work / "corpus-a.jsonl").write_text(corpus)
    as_path(f"{bucket}/seeds/corpus-a.jsonl").write_text(corpus)
    as_path(f"{bucket}/seeds/notes.txt").write_text("not a seed file")
    local_run = work / "local"
    run_job(parse_job(recipe(str(local_run), str(work / "corpus-a.jsonl"))), REGISTRY, job_dir=work, log=lambda line: None)
    remote_run = f"{bucket}/runs/recipe"
    outcomes = run_job(parse_job(recipe(remote_run, f"{bucket}/seeds/*.jsonl")), REGISTRY, job_dir=work, log=lambda line: None)
    assert [outcome.action for outcome in outcomes] == ["ran"] * 4
    return local_run, remote_run, work


def test_engine_free_recipe_writes_its_run_to_s3_and_equals_a_local_run(runs):
    local_run, remote_run, work = runs
    run = as_path(remote_run)
    for stage in STAGES:
        manifest, local_manifest = StageDir(run, stage).manifest(), StageDir(local_run, stage).manifest()
        assert manifest is not None, f"{stage} has no manifest on S3"
        for key in ("rows_in", "rows_out", "rows_rejected", "rejected"):
            assert manifest[key] == local_manifest[key], (stage, key)
    assert StageDir(run, "dedup").manifest()["rows_rejected"] > 0, "the corpus must have near duplicates"
    for stage in ("dedup", "tokenize"):
        remote_rows, local_rows = rows(run, stage), rows(local_run, stage)
        assert [row["id"] for row in remote_rows] == [row["id"] for row in local_rows]
        assert [row["source_id"] for row in remote_rows] == [row["source_id"] for row in local_rows]
    assert json.loads(rows(run, "seeds")[0]["origin"])["file"] == f"{remote_run.rsplit('/runs/', 1)[0]}/seeds/corpus-a.jsonl"

    # shards and mix.json are objects in the bucket, and the mix validates against them
    mix = validate_mix(run / "shards" / "mix.json")
    shards = sorted((run / "shards").glob("shard-*.parquet"))
    assert len(shards) > 1 and [shard.path for shard in mix.shards] == [path.name for path in shards]
    local_shards = sorted((local_run / "shards").glob("shard-*.parquet"))
    # the same shard rows, but for origin, which names the seed file where it was read
    assert [read_parquet(path).drop_columns(["origin"]).to_pylist() for path in shards] == [
        pq.read_table(path).drop_columns(["origin"]).to_pylist() for path in local_shards
    ]
    # no temporary or probe objects are left, and nothing was written to a local folder named like the URI
    assert [path for path in run.rglob("*") if path.name.endswith(".tmp") or path.name.startswith(".write-probe")] == []
    assert not (Path.cwd() / "s3:").exists() and not (work / "s3:").exists()

    again = run_job(parse_job(recipe(remote_run, f"{bucket_of(remote_run)}/seeds/*.jsonl")), REGISTRY, job_dir=work, log=lambda line: None)
    assert [outcome.action for outcome in again] == ["skipped"] * 4, "every stage is fresh on S3"


def bucket_of(uri: str) -> str:
    return "s3://" + uri.removeprefix("s3://").split("/", 1)[0]


def test_inspection_commands_read_the_run_from_the_bucket(runs, capsys, tmp_path, monkeypatch):
    local_run, remote_run, _ = runs
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert main(["inspect", remote_run, "--json"]) == 0
    remote_funnel = json.loads(capsys.readouterr().out)
    assert main(["inspect", str(local_run), "--json"]) == 0
    local_funnel = json.loads(capsys.readouterr().out)
    assert [(row["stage"], row.get("rows_in"), row.get("rows_out")) for row in remote_funnel] == [
        (row["stage"], row.get("rows_in"), row.get("rows_out")) for row in local_funnel
    ]

    assert main(["status", remote_run]) == 0
    assert all(line.split()[1] == "fresh" for line in capsys.readouterr().out.splitlines()[2:6])
    assert main(["inspect", remote_run, "dedup", "--rejects", "--json"]) == 0
    assert {row["reject_reason"] for row in json.loads(capsys.readouterr().out)["samples"]} <= {"near_duplicate", "exact_duplicate"}

    shard_row = rows(as_path(remote_run), "tokenize")[0]
    assert main(["trace", remote_run, shard_row["id"], "--json"]) == 0
    traced = json.loads(capsys.readouterr().out)
    assert traced["id"] == shard_row["id"]
    assert [step["stage"] for step in traced["steps"]][:3] == ["seeds", "dedup", "tokenize"]
    assert traced["steps"][0]["source_id"] == shard_row["source_id"]

    out = tmp_path / "dedup.jsonl"
    assert main(["export", remote_run, "dedup", "--format", "jsonl", "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["id"] for row in exported) == [row["id"] for row in rows(local_run, "dedup")]

    # the local copy follows the bucket: a stage removed there is gone from the next inspection.
    # The run is the module's (fixture `runs`), and the other tests read mix's manifest in any
    # order (pytest-randomly), so it is put back.
    mix_manifest = as_path(remote_run + "/mix/_manifest.json")
    saved = mix_manifest.read_bytes()
    mix_manifest.unlink()
    try:
        assert main(["status", remote_run, "--json"]) == 0
        states = {row["stage"]: row["state"] for row in json.loads(capsys.readouterr().out)}
        assert states["mix"] != "fresh" and states["tokenize"] == "fresh"
    finally:
        mix_manifest.write_bytes(saved)


def test_packed_reader_streams_the_same_sequences_from_the_bucket(runs):
    local_run, remote_run, _ = runs
    remote = PackedSequenceReader(remote_run + "/shards/mix.json", seq_len=64, seed=3)
    local = PackedSequenceReader(local_run / "shards" / "mix.json", seq_len=64, seed=3)
    for _ in range(5):
        a, b = remote.next_sequence(), local.next_sequence()
        assert a.input_ids.tolist() == b.input_ids.tolist() and a.segment_ids.tolist() == b.segment_ids.tolist()
