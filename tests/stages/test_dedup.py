"""The dedup stage run for real on Ray through the runner, fed by a Parquet source stage."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.stage import Resources
from synthmix.pipeline.store import StageDir
from synthmix.quality.lsh import choose_bands_rows
from synthmix.quality.normalize import TextNormalization, normalize_texts
from synthmix.quality.shingles import DEFAULTS, ShingleSpec
from synthmix.stages.registry import STAGES
from tests.quality.mixed_script_corpus import score_mixed_removals, small_mixed_corpus
from tests.quality.near_duplicate_fixture import (
    build_bilingual_corpus,
    chinese_near_duplicates,
    exact_jaccard,
    pydoc_sections,
    score_removals,
)
from tests.stages.answer_rows import ParquetRows

SCORE = contracts.CRITIQUE_SCORE


class CorpusRows(ParquetRows):
    """Rows of a Parquet file as they are, committed in units of `resources.batch_size` rows."""

    name = "rows"
    resources = Resources(num_cpus=0.5, batch_size=1024)
    output_fields = (
        pa.field(contracts.ID, pa.string()),
        pa.field(contracts.INSTRUCTION, pa.string()),
        pa.field(contracts.ANSWER, pa.string()),
        pa.field(SCORE, pa.float64()),
    )


class SmallUnitRows(CorpusRows):
    """The same rows in many small units: many part files, so dedup reads many blocks."""

    resources = Resources(num_cpus=0.5, batch_size=100)


def run_dedup(tmp_path, rows: list[dict], dedup: dict, *, source=CorpusRows, run_name="run", schema=CorpusRows.output_fields, **kwargs):
    """Run rows -> dedup; returns (accepted rows, rejected rows, manifest), rows sorted by id."""
    table = pa.Table.from_pylist(rows, schema=pa.schema(schema))
    pq.write_table(table, tmp_path / "rows.parquet")
    job = parse_job(
        {
            "name": "t",
            "run_dir": str(tmp_path / run_name),
            "stages": ["rows", {"name": "dedup_samples", "kind": "dedup"}],
            "rows": {"path": "rows.parquet"},
            "dedup_samples": dedup,
        },
        source="t.yaml",
    )
    run_job(job, {**STAGES, "rows": source}, job_dir=tmp_path, log=lambda line: None, **kwargs)
    stage_dir = StageDir(tmp_path / run_name, "dedup_samples")
    manifest = stage_dir.manifest()
    accepted = read_sorted(stage_dir.part_files())
    rejected = read_sorted(stage_dir.reject_files())
    assert manifest["rows_in"] == len(rows) == manifest["rows_out"] + manifest["rows_rejected"]
    assert (manifest["rows_out"], manifest["rows_rejected"]) == (len(accepted), len(rejected))
    assert sorted(row[contracts.ID] for row in accepted + rejected) == sorted(row[contracts.ID] for row in rows)
    return accepted, rejected, manifest


def read_sorted(files) -> list[dict]:
    rows = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []
    return sorted(rows, key=lambda row: row[contracts.ID])


def corpus_rows(texts: list[str]) -> list[dict]:
    return [{contracts.ID: f"doc-{i:05d}", contracts.INSTRUCTION: text, contracts.ANSWER: None, SCORE: None} for i, text in enumerate(texts)]


def index_of(row_id: str) -> int:
    return int(row_id.removeprefix("doc-"))


def removed_for(rejected: list[dict]) -> dict[int, tuple[int, float]]:
    """Removed document -> (the document kept for it, the similarity the stage measured)."""
    removed = {}
    for row in rejected:
        detail = json.loads(row[contracts.REJECT_DETAIL])
        removed[index_of(row[contracts.ID])] = (index_of(detail["kept_id"]), detail["similarity_to_kept"])
    return removed


@pytest.fixture(scope="module")
def bilingual():
    return build_bilingual_corpus(2000, seed=1)


@pytest.fixture(scope="module")
def bilingual_run(bilingual, tmp_path_factory, ray_session):
    """One run over the bilingual corpus with the default settings."""
    tmp_path = tmp_path_factory.mktemp("bilingual")
    return run_dedup(tmp_path, corpus_rows(bilingual.texts), {"text_columns": [contracts.INSTRUCTION]})


def test_bilingual_planted_duplicates_are_found_in_both_languages_and_only_true_ones_removed(bilingual, bilingual_run, record_property):
    _, rejected, manifest = bilingual_run
    removed = removed_for(rejected)
    scores = score_removals(bilingual, {doc: kept for doc, (kept, _) in removed.items()})
    pairs = np.array([(doc, kept) for doc, (kept, _) in sorted(removed.items())])
    stated = np.array([similarity for _, (_, similarity) in sorted(removed.items())])
    scores["similarity_error"] = float(np.abs(stated - exact_jaccard(bilingual.texts, pairs, ShingleSpec())).max())
    for name, value in scores.items():
        record_property(name, value)
    print(f"\nbilingual corpus, {len(bilingual.texts)} documents: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
    assert scores["pairs_en"] > 100 and scores["pairs_zh"] > 20
    assert scores["recall_en"] >= 0.98 and scores["recall_zh"] >= 0.98
    assert scores["precision"] >= 0.99
    assert scores["similarity_error"] < 1e-3, "the stated similarity is the true Jaccard, not an estimate"
    extra = manifest["extra"]
    assert (extra["bands"], extra["rows"]) == choose_bands_rows(0.8, 128)
    assert (extra["num_perm"], extra["seed"], extra["threshold"]) == (128, 0, 0.8)
    assert extra["shingles"]["kind"] == "auto" and (extra["shingles"]["n"], extra["shingles"]["winnow"]) == DEFAULTS["auto"]
    assert extra["candidate_pairs"] >= extra["likely_pairs"] >= extra["similar_pairs"] >= len(rejected) > 0
    # Per script, what the stage can know without the truth: the test corpus's languages, counted.
    by_script = extra["by_script"]
    language_counts = dict(zip(*np.unique(bilingual.language, return_counts=True)))
    assert by_script["latin"]["documents"] == language_counts["en"]
    assert by_script["han"]["documents"] == language_counts["zh"]
    removed_zh = sum(bilingual.language[index_of(row[contracts.ID])] == "zh" for row in rejected)
    assert by_script["han"]["exact_duplicates"] + by_script["han"]["near_duplicates"] == removed_zh > 0
    assert 0.8 <= by_script["han"]["near_similarity"]["min"] <= by_script["han"]["near_similarity"]["median"] <= 1.0
    # Planted copies that differ only in case and spacing normalise to the same text.
    assert set(manifest["rejected"]) == {"near_duplicate", "exact_duplicate"}


def test_mixed_script_copies_are_found_at_every_han_share(tmp_path, ray_session, record_property):
    """The stage with its defaults on Chinese technical text that quotes commands (and English):
    re-wrapped, edited and reordered copies found at every Han share, only duplicates removed."""
    corpus = small_mixed_corpus()
    _, rejected, manifest = run_dedup(tmp_path, corpus_rows(corpus.texts), {"text_columns": [contracts.INSTRUCTION]})
    found = score_mixed_removals(corpus, {doc: kept for doc, (kept, _) in removed_for(rejected).items()})
    for group, values in found.items():
        record_property(group, values)
    assert all(values["recall"] >= 0.98 for values in found.values()), found
    assert found["all"]["precision"] >= 0.99 and manifest["extra"]["shingles"]["kind"] == "auto"


def test_many_blocks_and_partitions_and_a_rerun_give_the_same_rows(bilingual, bilingual_run, tmp_path, ray_session):
    accepted, rejected, _ = bilingual_run
    settings = {"text_columns": [contracts.INSTRUCTION], "partition_rows": 450}
    split = run_dedup(tmp_path, corpus_rows(bilingual.texts), settings, source=SmallUnitRows)
    assert split[0] == accepted and split[1] == rejected
    assert split[2]["extra"]["partitions"] >= 5 and StageDir(tmp_path / "run", "rows").manifest()["units"] >= 20
    again = run_dedup(tmp_path, corpus_rows(bilingual.texts), settings, source=SmallUnitRows, only="dedup_samples")
    assert again[:2] == split[:2]


def pydoc_paragraphs(min_words: int) -> list[str]:
    return [p for section in pydoc_sections() for p in section if len(p.split()) >= min_words]


def edit_every(words: list[str], step: int, offset: int) -> list[str]:
    """The words with every step-th word (from offset) replaced by a word of its own."""
    return [f"edit{index}x{offset}" if index % step == offset else word for index, word in enumerate(words)]


def test_cluster_keeps_highest_score_then_smallest_id_and_labels_exact_copies(tmp_path, ray_session):
    paragraph = pydoc_paragraphs(150)[0]
    words = paragraph.split()
    edited = " ".join(words[:40] + ["different"] + words[41:])
    other = pydoc_paragraphs(150)[-1]
    rows = [
        {contracts.ID: "a", contracts.INSTRUCTION: paragraph, contracts.ANSWER: "yes", SCORE: 7.0},
        {contracts.ID: "b", contracts.INSTRUCTION: edited, contracts.ANSWER: "yes", SCORE: 9.0},
        {contracts.ID: "c", contracts.INSTRUCTION: paragraph.upper(), contracts.ANSWER: " YES ", SCORE: 9.0},
        {contracts.ID: "d", contracts.INSTRUCTION: edited, contracts.ANSWER: "yes", SCORE: None},
        {contracts.ID: "e", contracts.INSTRUCTION: other, contracts.ANSWER: "yes", SCORE: 1.0},
    ]
    settings = {"text_columns": [contracts.INSTRUCTION, contracts.ANSWER], "score_column": SCORE}
    accepted, rejected, manifest = run_dedup(tmp_path, rows, settings)
    # b and c tie at 9: b has the smaller id. c is a's exact copy (after normalisation), not b's.
    assert [row[contracts.ID] for row in accepted] == ["b", "e"]
    details = {row[contracts.ID]: (row[contracts.REJECT_REASON], json.loads(row[contracts.REJECT_DETAIL])) for row in rejected}
    assert {row_id: reason for row_id, (reason, _) in details.items()} == {
        "a": "near_duplicate", "c": "near_duplicate", "d": "exact_duplicate",
    }  # fmt: skip
    for _, detail in details.values():
        assert (detail["kept_id"], detail["cluster_size"]) == ("b", 4)
        assert "kept_source_id" not in detail  # the input has no source_id column
    truth = exact_jaccard([paragraph + "\nyes", edited + "\nyes"], np.array([[0, 1]]), ShingleSpec())[0]
    assert details["d"][1]["similarity_to_kept"] == 1.0
    assert details["a"][1]["similarity_to_kept"] == details["c"][1]["similarity_to_kept"] == round(truth, 4) < 1.0
    assert manifest["extra"]["components"] == 1

    with pytest.raises(ConfigError, match="reads column"):
        run_dedup(tmp_path, rows, {"text_columns": ["absent"]})  # the source is fresh: only dedup reruns


def test_a_chain_of_near_copies_removes_only_documents_close_to_a_kept_one(tmp_path, ray_session):
    # a ~ b and b ~ c at about 0.84, but a and c only ~0.7: one cluster by drift, not one duplicate.
    words = normalize_texts([pydoc_paragraphs(200)[1]], TextNormalization()).to_pylist()[0].split()[:200]
    a = " ".join(words)
    b = " ".join(edit_every(words, 60, 0))
    c = " ".join(edit_every(edit_every(words, 60, 0), 60, 30))
    texts = [a, b, c]
    truth = exact_jaccard(texts, np.array([[0, 1], [1, 2], [0, 2]]), ShingleSpec())
    assert truth[0] >= 0.8 and truth[1] >= 0.8 and truth[2] < 0.8, truth
    rows = [
        {contracts.ID: f"doc-{i:05d}", contracts.INSTRUCTION: text, contracts.ANSWER: None, SCORE: score}
        for i, (text, score) in enumerate(zip(texts, (9.0, 5.0, 1.0)))
    ]
    accepted, rejected, _ = run_dedup(tmp_path, rows, {"text_columns": [contracts.INSTRUCTION], "score_column": SCORE})
    assert [row[contracts.ID] for row in accepted] == ["doc-00000", "doc-00002"]
    assert removed_for(rejected) == {1: (0, round(truth[0], 4))}


def test_without_exact_copies_are_still_removed_as_near_duplicates(tmp_path, ray_session):
    paragraph, other = pydoc_paragraphs(150)[3], pydoc_paragraphs(150)[4]
    rows = corpus_rows([paragraph, paragraph.upper(), paragraph, other])
    _, rejected, _ = run_dedup(tmp_path, rows, {"text_columns": [contracts.INSTRUCTION], "exact": False})
    assert {row[contracts.ID]: row[contracts.REJECT_REASON] for row in rejected} == {
        "doc-00001": "near_duplicate", "doc-00002": "near_duplicate",
    }  # fmt: skip
    assert {json.loads(row[contracts.REJECT_DETAIL])["similarity_to_kept"] for row in rejected} == {1.0}


class SourceRows(CorpusRows):
    output_fields = (*CorpusRows.output_fields, pa.field(contracts.SOURCE_ID, pa.string()))


def test_rejects_name_the_kept_documents_source_id(tmp_path, ray_session):
    paragraph = pydoc_paragraphs(150)[2]
    rows = [
        {contracts.ID: "a", contracts.INSTRUCTION: paragraph, contracts.ANSWER: None, SCORE: 1.0, contracts.SOURCE_ID: "user-17"},
        {contracts.ID: "b", contracts.INSTRUCTION: paragraph + " extra", contracts.ANSWER: None, SCORE: 0.0, contracts.SOURCE_ID: "user-3"},
        {contracts.ID: "c", contracts.INSTRUCTION: paragraph, contracts.ANSWER: None, SCORE: 0.0, contracts.SOURCE_ID: None},
    ]
    table = pa.Table.from_pylist(rows, schema=pa.schema(SourceRows.output_fields))
    pq.write_table(table, tmp_path / "rows.parquet")
    _, rejected, _ = run_dedup(
        tmp_path, rows, {"text_columns": [contracts.INSTRUCTION], "score_column": SCORE}, source=SourceRows, schema=SourceRows.output_fields
    )
    details = {row[contracts.ID]: json.loads(row[contracts.REJECT_DETAIL]) for row in rejected}
    assert details == {
        "b": {"kept_id": "a", "kept_source_id": "user-17", "similarity_to_kept": details["b"]["similarity_to_kept"], "cluster_size": 3},
        "c": {"kept_id": "a", "kept_source_id": "user-17", "similarity_to_kept": 1.0, "cluster_size": 3},
    }  # fmt: skip
    assert {row[contracts.ID]: row[contracts.SOURCE_ID] for row in rejected} == {"b": "user-3", "c": None}


def test_chinese_copies_are_found_with_the_default_shingles(tmp_path, ray_session):
    rows = corpus_rows(chinese_near_duplicates(3) + ["An unrelated English paragraph about hashing shingles of words."])
    _, rejected, manifest = run_dedup(tmp_path, rows, {"text_columns": [contracts.INSTRUCTION]})
    assert {tuple(sorted((doc, kept))) for doc, (kept, _) in removed_for(rejected).items()} == {(0, 2), (1, 3)}
    assert manifest["extra"]["shingles"]["kind"] == "auto"
    assert set(manifest["extra"]["by_script"]) == {"han", "latin"}
