"""The tokenize stage, run for real on Ray: shards, lineage, rejects, resume, tokenizer default."""

import hashlib
import json
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq
import tiktoken

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.stage import Resources, StageContext
from synthmix.pipeline.store import PROGRESS, StageDir, write_atomic_json
from synthmix.pipeline.tokens.mixture import read_mix, validate_mix
from synthmix.pipeline.tokens.rendering import RenderConfig
from synthmix.pipeline.tokens.shards import read_shard_tokenizer
from synthmix.pipeline.tokens.tokenizers import (
    CL100K_PATTERN,
    HUNYUAN_FILE_SHA256,
    HUNYUAN_PATTERN,
    TokenizerSpec,
    parse_tiktoken_ranks,
    read_cl100k_ranks_file,
    shipped_hunyuan_file,
)
from synthmix.stages.mix import Mix
from synthmix.stages.seeds import Seeds
from synthmix.stages.tokenize import Tokenize, TokenizeParams, resolve_tokenizer_spec, vocabulary_file

CL100K = {"kind": "tiktoken", "name": "cl100k_base"}
CL100K_EOS = 100257


class SmallBatchTokenize(Tokenize):
    """Three rows per slice, so each shard is written from many slices."""

    resources = Resources(num_cpus=1, batch_size=3)


class SmallBatchSeeds(Seeds):
    """Four chunks per part file, so tokenize has several files to split between its tasks."""

    resources = Resources(num_cpus=0.5, batch_size=4)


REGISTRY = {"seeds": SmallBatchSeeds, "tokenize": SmallBatchTokenize, "mix": Mix}


def run(tmp_path, *, stages=("seeds", "tokenize"), run_name="run", **sections):
    sections.setdefault("seeds", {"builtin": {"pydoc_topics": 6, "stdlib_modules": 2}})
    job = parse_job({"name": "t", "run_dir": str(tmp_path / run_name), "stages": list(stages), **sections}, source="t.yaml")
    run_job(job, REGISTRY, job_dir=tmp_path, log=lambda line: None)
    return tmp_path / run_name


def rows_of(files):
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def bare_cl100k() -> tiktoken.Encoding:
    ranks = parse_tiktoken_ranks(read_cl100k_ranks_file(), source="cl100k_base")
    return tiktoken.Encoding("cl100k_bare", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={})


def test_shards_hold_every_seed_chunk_as_the_bare_tokenizers_ids_in_input_order(tmp_path, ray_session):
    import datasets

    run_dir = run(tmp_path, tokenize={"tokenizer": CL100K, "shard_tokens": 4000, "row_group_tokens": 1000})
    seed_rows = rows_of(StageDir(run_dir, "seeds").part_files())
    seeds = {row["id"]: row for row in seed_rows}
    shard_files = sorted((run_dir / "shards").glob("*.parquet"))
    assert len(shard_files) > 1, "a small token budget must roll over into several shards"

    rows = rows_of(shard_files)
    encoding = bare_cl100k()
    # Tasks take consecutive runs of the input files and shards are published in task order.
    assert [row["id"] for row in rows] == [row["id"] for row in seed_rows]
    for row in rows:
        seed = seeds[row["id"]]
        assert row["seed_id"] == seed["seed_id"] and (row["source"], row["domain"]) == (seed["source"], seed["domain"])
        assert row["input_ids"] == encoding.encode_ordinary(seed["text"]) + [CL100K_EOS]
        assert row["num_tokens"] == len(row["input_ids"]) and row["loss_mask"] is None and row["synthetic"] is False

    for path in shard_files:
        metadata = pq.ParquetFile(path).metadata
        tokens = sum(pq.read_table(path, columns=["num_tokens"])["num_tokens"].to_pylist())
        assert tokens <= 4000 or metadata.num_rows == 1
        assert metadata.row_group(0).column(0).compression == "ZSTD"
        assert read_shard_tokenizer(path)["name"] == "cl100k_base"
    loaded = datasets.load_dataset("parquet", data_files=[str(p) for p in shard_files], split="train")
    assert loaded.num_rows == len(rows) and loaded[0]["input_ids"] == rows[0]["input_ids"]

    manifest = StageDir(run_dir, "tokenize").manifest()
    assert manifest["rows_in"] == manifest["rows_out"] == manifest["extra"]["rows"] == len(seeds)
    assert manifest["extra"]["tokens"] == sum(row["num_tokens"] for row in rows)


def test_documents_over_max_tokens_are_rejected_as_too_large_with_their_ids_kept(tmp_path, ray_session):
    run_dir = run(tmp_path, tokenize={"tokenizer": CL100K, "max_tokens": 300})
    stage_dir = StageDir(run_dir, "tokenize")
    manifest = stage_dir.manifest()
    rejected = rows_of(stage_dir.reject_files())
    kept = rows_of(sorted((run_dir / "shards").glob("*.parquet")))
    assert rejected and kept
    assert manifest["rejected"] == {"too_large": len(rejected)}
    assert manifest["rows_in"] == len(kept) + len(rejected)
    assert all(row["num_tokens"] > 300 and len(row["input_ids"]) == row["num_tokens"] for row in rejected)
    assert all(row["reject_detail"] == f"{row['num_tokens']} tokens > max_tokens 300" for row in rejected)
    assert all(row["num_tokens"] <= 300 for row in kept)


def make_stage(**params) -> Tokenize:
    stage = Tokenize(TokenizeParams(tokenizer=CL100K, **params), StageContext(run_dir=".", stage_name="tokenize"))
    stage.setup()
    return stage


def test_rows_without_content_or_lineage_are_rejected_and_samples_get_an_answer_loss_mask():
    stage = make_stage(render=RenderConfig(template="plain", loss_mask=True))
    batch = pa.table(
        {
            "id": ["a", "b", "c", "d", "e"],
            "seed_id": ["s", "s", "s", None, "s"],
            "source": ["x"] * 5,
            "domain": ["general"] * 5,
            "instruction": ["Add 2 and 3.", None, "Say nothing.", "Q", None],
            "answer": ["5", None, "  \n", "A", None],
            "text": [None, "a document", None, None, None],
            "meta": ['{"critique_score": 9}', None, None, None, None],
        }
    )
    output = stage.transform(batch).to_pylist()
    assert [row["id"] for row in output] == ["a", "b", "c", "d", "e"]
    by_id = {row["id"]: row for row in output}
    assert (by_id["c"]["reject_reason"], by_id["c"]["reject_detail"]) == ("empty", "answer is blank")
    assert by_id["d"]["reject_reason"] == "missing_field" and "seed_id" in by_id["d"]["reject_detail"]
    assert by_id["e"]["reject_reason"] == "missing_field" and by_id["e"]["input_ids"] is None

    encoding = bare_cl100k()
    sample = by_id["a"]
    assert sample["reject_reason"] is None and sample["synthetic"] is True and sample["meta"] == '{"critique_score": 9}'
    prompt, answer = encoding.encode_ordinary("Add 2 and 3.\n\n"), encoding.encode_ordinary("5")
    assert sample["input_ids"] == prompt + answer + [CL100K_EOS]
    assert sample["loss_mask"] == [0] * len(prompt) + [1] * (len(answer) + 1)
    document = by_id["b"]
    assert document["synthetic"] is False and document["loss_mask"] is None and document["meta"] == "{}"


def test_interrupted_tokenize_resumes_to_byte_identical_shards_and_keeps_a_valid_mix(tmp_path, ray_session):
    sections = {"tokenize": {"tokenizer": CL100K, "shard_tokens": 3000}, "mix": {}}
    run_dir = run(tmp_path, stages=("seeds", "tokenize", "mix"), **sections)
    reference = {p.name: p.read_bytes() for p in (run_dir / "shards").glob("*.parquet")}
    mix_manifest = StageDir(run_dir, "mix").manifest()
    stage_dir = StageDir(run_dir, "tokenize")
    units = stage_dir.committed_units()
    assert len(units) >= 4

    # What a kill -9 leaves: no manifest, the attempt's progress file, each task's first shard
    # committed and the later ones without markers (a task commits its shards in order), a
    # task's scratch folder, and a half-published shard folder.
    fingerprint = stage_dir.manifest()["fingerprint"]
    stage_dir.manifest_path.unlink()
    write_atomic_json(stage_dir.path / PROGRESS, {"fingerprint": fingerprint, "started_at": 0})
    tasks = {unit.split("-")[0] for unit in units}
    assert len(tasks) == 2, "one task per CPU slot of the 2-CPU test session"
    uncommitted = [unit for unit in units if not unit.split("-")[1] == "00000"]
    assert uncommitted, "some task must have closed more than one shard"
    for unit in uncommitted:
        (stage_dir.units_path / f"{unit}.json").unlink()
    (stage_dir.path / "_scratch" / "task-00000-1-1").mkdir(parents=True)
    (run_dir / ".shards.tmp-1-1").mkdir()
    (run_dir / ".shards.tmp-1-1" / "shard-00000.parquet").write_bytes(b"torn")
    (run_dir / "shards" / "shard-00000.parquet").unlink()

    run(tmp_path, stages=("seeds", "tokenize", "mix"), **sections)
    manifest = stage_dir.manifest()
    assert manifest["resumed"] is True and manifest["rows_out"] == manifest["rows_in"]
    assert {p.name: p.read_bytes() for p in (run_dir / "shards").glob("*.parquet")} == reference
    assert not list(run_dir.glob(".shards.*"))
    # mix stayed fresh; its mix.json still describes the (identical) shards, so the runner left it.
    assert manifest["withdrawn"] == {}
    assert StageDir(run_dir, "mix").manifest() == mix_manifest, "mix stays fresh and is skipped"
    assert validate_mix(run_dir / "shards" / "mix.json").rows == manifest["rows_out"]


def test_a_fixed_task_count_splits_the_input_the_same_on_any_cluster(tmp_path, ray_session):
    # 16 documents, four per seeds unit: four input files for three tasks.
    run_dir = run(tmp_path, seeds={"builtin": {"pydoc_topics": 14, "stdlib_modules": 2}}, tokenize={"tokenizer": CL100K, "tasks": 3})
    assert len(StageDir(run_dir, "seeds").part_files()) == 4
    units = StageDir(run_dir, "tokenize").committed_units()
    assert sorted({unit.split("-")[0] for unit in units}) == ["00000", "00001", "00002"]
    assert len(list((run_dir / "shards").glob("*.parquet"))) == 3, "one (partial) shard per task under the default budget"


def test_rerun_on_changed_rows_withdraws_the_mix_json_of_the_now_stale_mix_stage(tmp_path, ray_session):
    run_dir = run(tmp_path, stages=("seeds", "tokenize", "mix"), tokenize={"tokenizer": CL100K}, mix={})
    assert read_mix(run_dir / "shards" / "mix.json").rows > 0
    job = parse_job(
        {"name": "t", "run_dir": str(run_dir), "stages": ["seeds", "tokenize", "mix"], "tokenize": {"tokenizer": CL100K, "max_tokens": 200}},
        source="t.yaml",
    )
    run_job(job, REGISTRY, job_dir=tmp_path, only="tokenize", log=lambda line: None)
    # The runner removes it on the mix stage's declaration (`publishes`); tokenize never touches it.
    assert StageDir(run_dir, "tokenize").manifest()["withdrawn"] == {"mix": [str(run_dir / "shards" / "mix.json")]}
    assert not (run_dir / "shards" / "mix.json").exists()


def test_default_tokenizer_is_the_shipped_hunyuan_file(tmp_path):
    spec, is_default = resolve_tokenizer_spec(None, tmp_path)
    assert is_default and spec.kind == "hunyuan"
    file = vocabulary_file(spec)
    assert file == shipped_hunyuan_file() and hashlib.sha256(file.read_bytes()).hexdigest() == HUNYUAN_FILE_SHA256
    spec, is_default = resolve_tokenizer_spec(TokenizerSpec(kind="hf", path="tok"), tmp_path / "jobs")
    assert spec.path == (tmp_path / "jobs" / "tok").resolve() and not is_default


def test_hunyuan_shards_wrap_nfc_text_in_its_document_ids(tmp_path, ray_session):
    corpus = tmp_path / "c.jsonl"
    texts = ["Cafe\u0301 <|endoftext|> 12345", "长江是亚洲第一长河。"]
    corpus.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    run_dir = run(tmp_path, seeds={"path": "c.jsonl"}, tokenize={})
    seeds = {row["id"]: row["text"] for row in rows_of(StageDir(run_dir, "seeds").part_files())}
    rows = rows_of(sorted((run_dir / "shards").glob("*.parquet")))
    tokenizer = read_shard_tokenizer(next((run_dir / "shards").glob("*.parquet")))
    assert tokenizer["name"] == "hunyuan" and StageDir(run_dir, "tokenize").manifest()["extra"]["tokenizer_default"]
    ranks = parse_tiktoken_ranks(shipped_hunyuan_file().read_bytes(), source="hy")
    bare = tiktoken.Encoding("hy_bare", pat_str=HUNYUAN_PATTERN, mergeable_ranks=ranks, special_tokens={})
    assert len(rows) == 2
    for row in rows:
        body = bare.encode_ordinary(unicodedata.normalize("NFC", seeds[row["id"]]))
        assert row["input_ids"] == [127958, *body, 127957]
        assert 127957 not in body, "a special-token string in data stays plain text"
