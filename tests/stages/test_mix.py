"""The mix stage, run for real on Ray after tokenize: mix.json, natural shards, Megatron export, the example job."""

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.config import load_job, parse_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.tokens.megatron import export_megatron, read_megatron_sequences
from synthmix.pipeline.tokens.mixture import read_mix, validate_mix
from synthmix.stages.mix import Mix
from synthmix.stages.seeds import Seeds
from synthmix.stages.tokenize import Tokenize

REGISTRY = {"seeds": Seeds, "tokenize": Tokenize, "mix": Mix}
CL100K = {"kind": "tiktoken", "name": "cl100k_base"}
ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path, run_name, **sections):
    sections.setdefault("seeds", {"builtin": {"pydoc_topics": 6, "stdlib_modules": 2}})
    sections.setdefault("tokenize", {"tokenizer": CL100K, "shard_tokens": 4000})
    job = parse_job({"name": run_name, "run_dir": str(tmp_path / run_name), "stages": ["seeds", "tokenize", "mix"], **sections}, source="t.yaml")
    run_job(job, REGISTRY, job_dir=tmp_path, log=lambda line: None)
    return tmp_path / run_name


def shard_table(paths) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in paths])


def test_mix_json_totals_and_phase_weights_match_the_shards_and_the_megatron_export_reads_back(tmp_path, ray_session):
    run_dir = run(tmp_path, "run", mix={"phases": {"anneal": {"stdlib": 3, "pydoc_topics": 1}, "long_context": {"stdlib": 1}}})
    mix_path = run_dir / "shards" / "mix.json"
    mix = validate_mix(mix_path)
    shards = sorted((run_dir / "shards").glob("*.parquet"))
    table = shard_table(shards)
    assert [s.path for s in mix.shards] == [p.name for p in shards]
    assert mix.rows == table.num_rows and mix.tokens == sum(table["num_tokens"].to_pylist())
    tokens_by_source = Counter()
    for source, tokens in zip(table["source"].to_pylist(), table["num_tokens"].to_pylist()):
        tokens_by_source[source] += tokens
    assert mix.tokens_by_source == dict(tokens_by_source)
    assert mix.phases["anneal"] == {"pydoc_topics": 0.25, "stdlib": 0.75}
    assert mix.phases["long_context"] == {"pydoc_topics": 0.0, "stdlib": 1.0}
    assert mix.phases["main"]["stdlib"] == pytest.approx(tokens_by_source["stdlib"] / mix.tokens)

    manifest = StageDir(run_dir, "mix").manifest()
    assert manifest["rows_in"] == manifest["rows_out"] == mix.rows
    assert manifest["extra"]["tokens"] == mix.tokens and manifest["extra"]["tokens_by_source"] == mix.tokens_by_source
    listed = shard_table(StageDir(run_dir, "mix").part_files())
    assert sorted(listed["id"].to_pylist()) == sorted(table["id"].to_pylist())
    seed_ids = set(shard_table(StageDir(run_dir, "seeds").part_files())["id"].to_pylist())
    assert set(table["seed_id"].to_pylist()) <= seed_ids

    export = export_megatron(mix_path, tmp_path / "megatron")
    for source in ("pydoc_topics", "stdlib"):
        expected = [ids for ids, s in zip(table["input_ids"].to_pylist(), table["source"].to_pylist()) if s == source]
        sequences = read_megatron_sequences(export.datasets[source].prefix)
        assert [seq.tolist() for seq in sequences] == expected
        assert all(seq.dtype == np.int32 for seq in sequences)  # cl100k's 100k ids do not fit uint16


def test_natural_shards_made_by_another_job_are_listed_beside_the_synthetic_ones(tmp_path, ray_session):
    (tmp_path / "web.jsonl").write_text('{"text": "A natural document about rivers and their deltas."}\n' * 1 + '{"text": "Another one, on tides."}\n')
    natural_run = run(tmp_path, "natural", seeds={"path": "web.jsonl", "source": "web"}, mix={})
    run_dir = run(tmp_path, "run", mix={"natural_dirs": ["natural/shards"], "phases": {"main": {"web": 1, "stdlib": 1}}})
    mix = validate_mix(run_dir / "shards" / "mix.json")
    natural = [s for s in mix.shards if s.origin == "natural"]
    assert natural and all(Path(s.path) == (natural_run / "shards" / Path(s.path).name).resolve() for s in natural)
    assert mix.rows_by_source["web"] == 2
    assert mix.phases["main"] == {"pydoc_topics": 0.0, "stdlib": 0.5, "web": 0.5}
    assert StageDir(run_dir, "mix").manifest()["extra"]["natural_shards"] == len(natural)


def test_example_natural_data_job_turns_its_corpus_into_shards_and_a_mix(tmp_path, ray_session):
    job = load_job(ROOT / "jobs" / "tokenize.yaml", overrides=[f"run_dir={tmp_path / 'run'}"])
    run_job(job, REGISTRY, job_dir=ROOT / "jobs", log=lambda line: None)
    mix = read_mix(tmp_path / "run" / "shards" / "mix.json")
    corpus_lines = (ROOT / "jobs" / "data" / "natural.jsonl").read_text(encoding="utf-8").splitlines()
    assert mix.rows == len(corpus_lines) and set(mix.rows_by_source) == {"natural-example"}
    assert mix.phases["main"] == {"natural-example": 1.0}
    assert {"code", "science", "general"} <= set(mix.tokens_by_domain)
