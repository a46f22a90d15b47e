"""A run directory on an S3 API server: the engine-free recipe (seeds, dedup, tokenize, mix)
writes its run there, inspection reads it back, and the rows equal a local run's."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import parse_job
from pipeline.runner import run_job
from pipeline.storage import as_path, read_parquet
from pipeline.store import StageDir
from pipeline.tokens.mixture import validate_mix
from stages.dedup import Dedup
from stages.mix import Mix
from stages.seeds import Seeds
from stages.tokenize import Tokenize

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
    files = StageDir(run_dir, stage).part_files()
    table = pa.concat_tables([read_parquet(f) for f in files])
    return sorted(table.to_pylist(), key=lambda row: row["id"])


def test_engine_free_recipe_writes_its_run_to_s3_and_equals_a_local_run(bucket, ray_session, tmp_path):
    corpus = corpus_lines(60)
    local_seeds = tmp_path / "corpus-a.jsonl"
    local_seeds.write_text(corpus)
    seeds_uri = f"{bucket}/seeds/corpus-a.jsonl"
    as_path(seeds_uri).write_text(corpus)
    as_path(f"{bucket}/seeds/ignored.txt").write_text("not a seed file")

    local_run = tmp_path / "local"
    run_job(parse_job(recipe(str(local_run), str(local_seeds))), REGISTRY, job_dir=tmp_path, log=lambda line: None)
    remote_run = f"{bucket}/runs/recipe"
    outcomes = run_job(parse_job(recipe(remote_run, f"{bucket}/seeds/*.jsonl")), REGISTRY, job_dir=tmp_path, log=lambda line: None)
    assert [outcome.action for outcome in outcomes] == ["ran"] * 4

    run = as_path(remote_run)
    for stage in STAGES:
        manifest = StageDir(run, stage).manifest()
        assert manifest is not None, f"{stage} has no manifest on S3"
        local_manifest = StageDir(local_run, stage).manifest()
        for key in ("rows_in", "rows_out", "rows_rejected", "rejected"):
            assert manifest[key] == local_manifest[key], (stage, key)
    assert StageDir(run, "dedup").manifest()["rows_rejected"] > 0, "the corpus must have near duplicates"
    for stage in ("dedup", "tokenize"):
        remote_rows = rows(run, stage)
        local_rows = rows(local_run, stage)
        assert [row["id"] for row in remote_rows] == [row["id"] for row in local_rows]
        # origin names the file: its s3:// URI against the local path
        assert {row["source_id"] for row in remote_rows} == {row["source_id"] for row in local_rows}

    # shards and mix.json are objects in the bucket, and the mix validates against them
    mix = validate_mix(run / "shards" / "mix.json")
    shards = sorted((run / "shards").glob("shard-*.parquet"))
    assert [shard.path for shard in mix.shards] == [path.name for path in shards]
    assert mix.rows == sum(pq.ParquetFile(local).metadata.num_rows for local in (local_run / "shards").glob("shard-*.parquet"))
    # no temporary objects, and no local folder named like the URI
    leftovers = [path for path in run.rglob("*") if path.name.endswith(".tmp") or path.name.startswith(".write-probe")]
    assert leftovers == []
    assert not Path("s3:").exists()

    # a second run finds every stage fresh on S3
    again = run_job(parse_job(recipe(remote_run, f"{bucket}/seeds/*.jsonl")), REGISTRY, job_dir=tmp_path, log=lambda line: None)
    assert [outcome.action for outcome in again] == ["skipped"] * 4
