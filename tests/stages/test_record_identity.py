"""Record identity, seed to shard: a user's own ids and chosen fields survive every stage.

Run for real on Ray through the runner: seeds reads the user's Parquet/JSONL, and the shard rows
that tokenize writes still say which record (and which chunk of it) each came from.
"""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.inputs.seed_files import SeedInputError
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES
from tests.stages.test_seeds import PARAGRAPHS, read_rows

CL100K = {"kind": "tiktoken", "name": "cl100k_base"}


def run(tmp_path, stages, seeds, **sections):
    job = parse_job({"name": "t", "run_dir": str(tmp_path / "run"), "stages": list(stages), "seeds": seeds, **sections}, source="t.yaml")
    run_job(job, STAGES, job_dir=tmp_path, log=lambda line: None)
    return tmp_path / "run"


def user_corpus(path, rows_per_group=2):
    """Four documents with the user's ids, a URL on all but one, a list-valued field, and one long
    document that chunks into several rows."""
    long_document = "\n\n".join(f"Paragraph {i}. " + PARAGRAPHS[i % 3] for i in range(12))
    table = pa.table({
        "doc_id": ["u-1", "u-2", "u-3", "u-4"],
        "text": [PARAGRAPHS[0], PARAGRAPHS[1], PARAGRAPHS[3], long_document],
        "url": ["https://a.example/1", None, "https://a.example/3", "https://a.example/4"],
        "tags": [["en", "web"], [], ["zh"], ["en"]],
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=rows_per_group)
    return table


def test_parquet_records_keep_their_ids_file_row_and_fields_down_to_the_shards(tmp_path, ray_session):
    corpus = user_corpus(tmp_path / "docs.parquet")
    seeds = {"path": "docs.parquet", "id_field": "doc_id", "keep_fields": ["url", "tags", "absent"], "chunk_chars": 400}
    run_dir = run(tmp_path, ["seeds", "tokenize"], seeds, tokenize={"tokenizer": CL100K})

    seeds_rows = read_rows(StageDir(run_dir, "seeds").part_files())
    by_source = {}
    for row in seeds_rows:
        by_source.setdefault(row["source_id"], []).append(json.loads(row["origin"]))
    assert set(by_source) == {"u-1", "u-2", "u-3", "u-4"}
    for index, source_id in enumerate(corpus["doc_id"].to_pylist()):
        origins = sorted(by_source[source_id], key=lambda origin: origin["chunk"])
        # The row is the record's row in the file, across row groups (two rows per group here).
        assert {origin["row"] for origin in origins} == {index} and {origin["file"] for origin in origins} == {"docs.parquet"}
        assert [origin["chunk"] for origin in origins] == list(range(len(origins)))
        fields = origins[0]["fields"]
        assert fields["url"] == corpus["url"][index].as_py()  # null where the record has none
        assert json.loads(fields["tags"]) == corpus["tags"][index].as_py()  # a list is kept as JSON text
        assert fields["absent"] is None  # a kept field no record has is null, not an error
    assert len(by_source["u-4"]) > 1, "the long document must chunk, or chunk indexes are not tested"

    shards = read_rows(sorted((run_dir / "shards").glob("*.parquet")))
    assert sorted((row["id"], row["source_id"], row["origin"]) for row in shards) == sorted((row["id"], row["source_id"], row["origin"]) for row in seeds_rows)


def test_repeated_user_ids_are_kept_as_given_and_row_ids_stay_unique(tmp_path, ray_session):
    lines = [{"id": 7, "text": PARAGRAPHS[0]}, {"id": 7, "text": PARAGRAPHS[1]}, {"text": PARAGRAPHS[2]}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    run_dir = run(tmp_path, ["seeds"], {"path": "c.jsonl"})
    rows = sorted(read_rows(StageDir(run_dir, "seeds").part_files()), key=lambda row: json.loads(row["origin"])["line"])
    assert [row["source_id"] for row in rows] == ["7", "7", None]  # `id` is used where records have one
    assert [json.loads(row["origin"])["line"] for row in rows] == [1, 2, 3]
    assert len({row["id"] for row in rows}) == 3


def test_exact_duplicate_reject_names_the_kept_records_id(tmp_path, ray_session):
    lines = [{"id": "first", "text": PARAGRAPHS[0]}, {"id": "copy", "text": PARAGRAPHS[0]}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    run_dir = run(tmp_path, ["seeds"], {"path": "c.jsonl"})
    [reject] = read_rows(StageDir(run_dir, "seeds").reject_files())
    assert reject["reject_reason"] == "exact_duplicate" and reject["source_id"] == "copy"
    assert json.loads(reject["reject_detail"])["kept_source_id"] == "first"


@pytest.mark.parametrize("file_name", ["docs.parquet", "docs.jsonl"])
def test_id_field_that_names_no_field_is_an_error_naming_the_file_and_its_fields(tmp_path, file_name):
    if file_name.endswith(".parquet"):
        user_corpus(tmp_path / file_name)
    else:
        (tmp_path / file_name).write_text(json.dumps({"doc_id": "u-1", "text": PARAGRAPHS[0]}) + "\n")
    with pytest.raises(SeedInputError) as error:
        run(tmp_path, ["seeds"], {"path": file_name, "id_field": "uid"})
    message = str(error.value)
    assert "'uid'" in message and file_name in message and "doc_id" in message and "text" in message


def test_dedup_of_a_user_corpus_answers_which_of_mine_were_kept_and_removed(tmp_path, ray_session):
    """Over a Parquet corpus with the user's `id` column: `synthmix export` of the dedup stage
    gives the user's ids of the kept documents, and its rejects name, for each removed document,
    the user's id of the document kept in its place."""
    from pydoc_data.topics import topics

    from synthmix.pipeline.cli import main

    texts = [topics[name] for name in sorted(topics) if 1500 < len(topics[name]) < 15000]
    ids = [f"mine-{i}" for i in range(len(texts))]
    copies = {}
    for i in range(0, 25, 5):  # five near-copies: one word changed near the end
        words = texts[i].split(" ")
        words[-3] = "changed"
        copies[f"mine-copy-of-{i}"] = ("mine-" + str(i), " ".join(words))
    pq.write_table(pa.table({"id": ids + list(copies), "text": texts + [text for _, text in copies.values()]}), tmp_path / "docs.parquet")
    (tmp_path / "dedup.yaml").write_text(json.dumps({
        "name": "mine", "run_dir": str(tmp_path / "run"), "stages": ["seeds", "dedup"],
        "seeds": {"path": "docs.parquet", "chunk_chars": 20000}, "dedup": {"text_columns": ["text"], "threshold": 0.8},
    }))  # fmt: skip
    assert main(["run", str(tmp_path / "dedup.yaml")]) == 0
    assert main(["export", str(tmp_path / "run"), "dedup", "--format", "jsonl", "-o", str(tmp_path / "kept.jsonl")]) == 0
    assert main(["export", str(tmp_path / "run"), "dedup", "--rejects", "--format", "jsonl", "-o", str(tmp_path / "removed.jsonl")]) == 0

    kept = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    removed = [json.loads(line) for line in (tmp_path / "removed.jsonl").read_text().splitlines()]
    kept_ids = {row["source_id"] for row in kept}
    assert len(kept) == len(kept_ids) and kept_ids | {row["source_id"] for row in removed} == set(ids) | set(copies)
    assert len(removed) == len(copies), "each planted pair loses exactly one document"
    pairs = {frozenset((copy, original)) for copy, (original, _) in copies.items()}
    for row in removed:
        kept_in_its_place = json.loads(row["reject_detail"])["kept_source_id"]
        assert kept_in_its_place in kept_ids and frozenset((row["source_id"], kept_in_its_place)) in pairs
