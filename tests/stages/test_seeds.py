"""The seed stage on every input kind, run for real on Ray through the runner."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.contracts import content_id
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Ray Data streams blocks between operators; a map stage never holds the whole dataset. " * 2,
    "MinHash estimates the Jaccard similarity of two shingle sets from their signatures. " * 2,
    "长文档在段落边界处被切分成较小的块，每一块都有稳定的标识符。" * 3,
]


def run_seeds(tmp_path, seeds_section, **kwargs):
    job = parse_job({"name": "t", "run_dir": str(tmp_path / "run"), "stages": ["seeds"], "seeds": seeds_section}, source="t.yaml")
    run_job(job, STAGES, job_dir=tmp_path, log=lambda line: None, **kwargs)
    stage_dir = StageDir(tmp_path / "run", "seeds")
    return stage_dir, stage_dir.manifest()


def read_rows(files):
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def assert_accounting_holds(stage_dir, manifest, records_in):
    accepted = read_rows(stage_dir.part_files())
    rejected = read_rows(stage_dir.reject_files())
    assert manifest["rows_in"] == records_in
    assert manifest["rows_out"] == len(accepted)
    assert manifest["rows_rejected"] == len(rejected)
    # Every record read shows up: as at least one chunk, or as a reject.
    parents = {row["parent_id"] for row in accepted} | {row["parent_id"] for row in rejected}
    assert len(parents) == records_in
    return accepted, rejected


def test_jsonl_with_broken_and_non_utf8_lines_keeps_the_good_rows(tmp_path, ray_session):
    lines = [json.dumps({"text": text}).encode() for text in PARAGRAPHS[:3]]
    lines.insert(1, b'{"text": "unterminated')
    lines.insert(3, b'{"text": "caf\xe9 au lait"}')
    lines.append(json.dumps({"body": "no text field"}).encode())
    lines.append(json.dumps({"text": "   \n\t "}).encode())
    (tmp_path / "corpus.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    stage_dir, manifest = run_seeds(tmp_path, {"path": "corpus.jsonl"})
    accepted, rejected = assert_accounting_holds(stage_dir, manifest, records_in=7)
    assert {row["text"] for row in accepted} == {text.strip() for text in PARAGRAPHS[:3]}
    by_reason = {row["reject_reason"]: row for row in rejected}
    assert set(by_reason) == {"parse_error", "not_utf8", "missing_field", "empty"}
    assert "line 2" in by_reason["parse_error"]["reject_detail"]
    assert "line 4" in by_reason["not_utf8"]["reject_detail"]
    assert by_reason["not_utf8"]["parent_id"] == "corpus.jsonl:4"
    assert manifest["rejected"] == {"empty": 1, "missing_field": 1, "not_utf8": 1, "parse_error": 1}


def test_gzipped_jsonl_and_parquet_and_saved_dataset_are_read(tmp_path, ray_session):
    import datasets

    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": PARAGRAPHS[0], "domain": "general"}) + "\n")
    pq.write_table(pa.table({"text": [PARAGRAPHS[1], PARAGRAPHS[2]]}), tmp_path / "b.parquet", row_group_size=1)
    datasets.Dataset.from_dict({"text": [PARAGRAPHS[3]]}).save_to_disk(str(tmp_path / "saved"))

    stage_dir, manifest = run_seeds(tmp_path, {"path": ["a.jsonl.gz", "b.parquet", "saved"], "domain": "science"})
    accepted, _ = assert_accounting_holds(stage_dir, manifest, records_in=4)
    assert sorted(row["text"] for row in accepted) == sorted(text.strip() for text in PARAGRAPHS)
    sources = {row["source"] for row in accepted}
    assert sources == {"a.jsonl.gz", "b.parquet", "data-00000-of-00001.arrow"}
    domains = {row["text"][:10]: row["domain"] for row in accepted}
    assert domains[PARAGRAPHS[0][:10]] == "general"  # a record's own field wins over the stage default
    assert domains[PARAGRAPHS[1][:10]] == "science"


def test_long_documents_are_chunked_at_paragraph_boundaries_with_stable_ids(tmp_path, ray_session):
    document = "\n\n".join(f"Paragraph {i}. " + "word " * 80 for i in range(20))
    (tmp_path / "long.jsonl").write_text(json.dumps({"text": document}) + "\n")
    stage_dir, manifest = run_seeds(tmp_path, {"path": "long.jsonl", "chunk_chars": 1000})
    accepted, _ = assert_accounting_holds(stage_dir, manifest, records_in=1)
    assert len(accepted) > 1 and all(len(row["text"]) <= 1000 for row in accepted)
    assert all(row["text"].startswith("Paragraph") for row in accepted)
    assert all(row["id"] == row["seed_id"] == content_id(row["text"]) for row in accepted)
    assert sorted(row["chunk_index"] for row in accepted) == list(range(len(accepted)))


def test_oversized_documents_are_rejected_as_too_large(tmp_path, ray_session):
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "x" * 5000}) + "\n" + json.dumps({"text": "small"}) + "\n")
    stage_dir, manifest = run_seeds(tmp_path, {"path": "c.jsonl", "max_doc_chars": 1000})
    assert manifest["rejected"] == {"too_large": 1} and manifest["rows_out"] == 1


def test_exact_duplicates_within_and_across_files_are_rejected_once_kept_once(tmp_path, ray_session):
    for name in ("one", "two"):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in [PARAGRAPHS[0], PARAGRAPHS[0], PARAGRAPHS[1]]) + "\n")
    stage_dir, manifest = run_seeds(tmp_path, {"path": "*.jsonl"})
    accepted = read_rows(stage_dir.part_files())
    assert sorted(row["text"] for row in accepted) == sorted(t.strip() for t in PARAGRAPHS[:2])
    assert manifest["rows_in"] == 6 and manifest["rows_out"] == 2
    assert manifest["rejected"] == {"exact_duplicate": 4}
    assert len(read_rows(stage_dir.reject_files())) == 4


def test_builtin_source_reads_pydoc_topics_and_stdlib_modules(tmp_path, ray_session):
    stage_dir, manifest = run_seeds(tmp_path, {"builtin": {"pydoc_topics": 5, "stdlib_modules": 2}})
    accepted, _ = assert_accounting_holds(stage_dir, manifest, records_in=7)
    assert {row["source"] for row in accepted} == {"pydoc_topics", "stdlib"}
    assert any("def " in row["text"] for row in accepted if row["kind"] == "code")


def test_missing_seed_path_is_a_clear_error(tmp_path, ray_session):
    from synthmix.pipeline.inputs.seed_files import SeedInputError

    with pytest.raises(SeedInputError, match="matches no file"):
        run_seeds(tmp_path, {"path": "absent/*.jsonl"})


def test_max_chunks_keeps_the_smallest_ids_and_rejects_the_rest_as_not_drawn(tmp_path, ray_session):
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": text}) for text in PARAGRAPHS) + "\n")
    every = {content_id(text.strip()) for text in PARAGRAPHS}
    kept_ids = {}
    for cap in (2, 3):
        stage_dir, manifest = run_seeds(tmp_path, {"path": "c.jsonl", "max_chunks": cap})
        accepted, rejected = assert_accounting_holds(stage_dir, manifest, records_in=4)
        kept_ids[cap] = {row["id"] for row in accepted}
        assert kept_ids[cap] == set(sorted(every)[:cap])
        assert manifest["rejected"] == {"not_drawn": 4 - cap} and manifest["extra"]["not_drawn"] == 4 - cap
        assert {row["id"] for row in rejected} == every - kept_ids[cap]
        assert json.loads(rejected[0]["reject_detail"])["max_chunks"] == cap
    # A pilot's slice is inside a larger one's: the same chunks come first.
    assert kept_ids[2] < kept_ids[3]
    # The cap is in the fingerprint: the full run does not take the capped stage for its own.
    capped = StageDir(tmp_path / "run", "seeds").manifest()["fingerprint"]
    _, full = run_seeds(tmp_path, {"path": "c.jsonl"})
    assert full["fingerprint"] != capped and full["rows_out"] == 4 and full["rejected"] == {}
