"""The dedup stage run for real on Ray through the runner, fed by a Parquet source stage."""

import itertools
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import columns
from pipeline.config import ConfigError, parse_job
from pipeline.runner import run_job
from pipeline.stage import Resources
from pipeline.store import StageDir
from quality.lsh import choose_bands_rows
from quality.shingles import ShingleSpec
from stages.registry import STAGES
from tests.quality.near_duplicate_fixture import (
    CJK_SAMPLES,
    build_planted_corpus,
    chinese_near_duplicates,
    exact_jaccard,
    pydoc_sections,
)
from tests.stages.answer_rows import ParquetRows

SCORE = columns.CRITIQUE_SCORE


class CorpusRows(ParquetRows):
    """Rows of a Parquet file as they are, committed in units of `resources.batch_size` rows."""

    name = "rows"
    resources = Resources(num_cpus=0.5, batch_size=1024)
    output_fields = (
        pa.field(columns.ID, pa.string()),
        pa.field(columns.INSTRUCTION, pa.string()),
        pa.field(columns.ANSWER, pa.string()),
        pa.field(SCORE, pa.float64()),
    )


class SmallUnitRows(CorpusRows):
    """The same rows in many small units: many part files, so dedup reads many blocks."""

    resources = Resources(num_cpus=0.5, batch_size=16)


def run_dedup(tmp_path, rows: list[dict], dedup: dict, *, source=CorpusRows, run_name="run", **kwargs):
    """Run rows -> dedup; returns (accepted rows, rejected rows, manifest), rows sorted by id."""
    table = pa.Table.from_pylist(rows, schema=pa.schema(CorpusRows.output_fields))
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
    assert sorted(row[columns.ID] for row in accepted + rejected) == sorted(row[columns.ID] for row in rows)
    return accepted, rejected, manifest


def read_sorted(files) -> list[dict]:
    rows = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []
    return sorted(rows, key=lambda row: row[columns.ID])


def corpus_rows(texts: list[str]) -> list[dict]:
    return [{columns.ID: f"doc-{i:05d}", columns.INSTRUCTION: text, columns.ANSWER: None, SCORE: None} for i, text in enumerate(texts)]


def clustered_pairs(rejected: list[dict]) -> set[tuple[int, int]]:
    """Index pairs of documents placed in one cluster, from the rejects' details."""
    members: dict[str, set[str]] = {}
    for row in rejected:
        detail = json.loads(row[columns.REJECT_DETAIL])
        members.setdefault(detail["cluster_id"], {detail["kept_id"]}).add(row[columns.ID])
    index = lambda row_id: int(row_id.removeprefix("doc-"))  # noqa: E731
    return {tuple(sorted(map(index, pair))) for group in members.values() for pair in itertools.combinations(group, 2)}


@pytest.fixture(scope="module")
def planted():
    return build_planted_corpus(140, seed=1, spec=ShingleSpec(), singles=30)


@pytest.fixture(scope="module")
def planted_run(planted, tmp_path_factory, ray_session):
    """One run over the planted corpus: one source unit, one shuffle partition."""
    tmp_path = tmp_path_factory.mktemp("planted")
    return run_dedup(tmp_path, corpus_rows(planted.texts), {"text_columns": [columns.INSTRUCTION], "partition_rows": 100_000})


def test_planted_near_duplicates_are_found_with_high_recall_and_precision(planted, planted_run, record_property):
    _, rejected, manifest = planted_run
    found = clustered_pairs(rejected)
    planted_pairs = {tuple(pair): jaccard for pair, jaccard in zip(planted.pairs.tolist(), planted.jaccard)}
    surprise = sorted(found - planted_pairs.keys())
    truth = planted_pairs | dict(zip(surprise, exact_jaccard(planted.texts, surprise, ShingleSpec())))
    positives = {pair for pair, jaccard in truth.items() if jaccard >= 0.8}
    recall = len(found & positives) / len(positives)
    precision = len(found & positives) / len(found)
    record_property("recall", recall)
    record_property("precision", precision)
    print(f"\n{len(positives)} planted pairs with Jaccard >= 0.8: recall {recall:.4f}, precision {precision:.4f}")
    assert recall >= 0.98 and precision >= 0.99
    extra = manifest["extra"]
    assert (extra["bands"], extra["rows"]) == choose_bands_rows(0.8, 128)
    assert (extra["num_perm"], extra["seed"], extra["threshold"]) == (128, 0, 0.8)
    assert extra["shingles"]["kind"] == "word" and extra["shingles"]["n"] == 5
    assert extra["candidate_pairs"] >= extra["verified_pairs"] >= len(rejected) > 0
    assert extra["clusters"] == len({json.loads(row[columns.REJECT_DETAIL])["cluster_id"] for row in rejected})
    # Planted copies that differ only in case and spacing normalise to the same text.
    assert set(manifest["rejected"]) == {"near_duplicate", "exact_duplicate"}


def test_many_blocks_and_partitions_and_a_rerun_give_the_same_rows(planted, planted_run, tmp_path, ray_session):
    accepted, rejected, _ = planted_run
    settings = {"text_columns": [columns.INSTRUCTION], "partition_rows": 23, "max_pairs_in_memory": 5}
    split = run_dedup(tmp_path, corpus_rows(planted.texts), settings, source=SmallUnitRows)
    assert split[0] == accepted and split[1] == rejected
    assert split[2]["extra"]["partitions"] > 10 and StageDir(tmp_path / "run", "rows").manifest()["units"] > 10
    again = run_dedup(tmp_path, corpus_rows(planted.texts), settings, source=SmallUnitRows, only="dedup_samples")
    assert again[:2] == split[:2]


def test_cluster_keeps_highest_score_then_smallest_id_and_labels_exact_copies(tmp_path, ray_session):
    paragraph = next(p for section in pydoc_sections() for p in section if len(p.split()) >= 150)
    words = paragraph.split()
    edited = " ".join(words[:40] + ["different"] + words[41:])
    other = next(p for section in reversed(pydoc_sections()) for p in section if len(p.split()) >= 150)
    rows = [
        {columns.ID: "a", columns.INSTRUCTION: paragraph, columns.ANSWER: "yes", SCORE: 7.0},
        {columns.ID: "b", columns.INSTRUCTION: edited, columns.ANSWER: "yes", SCORE: 9.0},
        {columns.ID: "c", columns.INSTRUCTION: paragraph.upper(), columns.ANSWER: " YES ", SCORE: 9.0},
        {columns.ID: "d", columns.INSTRUCTION: edited, columns.ANSWER: "yes", SCORE: None},
        {columns.ID: "e", columns.INSTRUCTION: other, columns.ANSWER: "yes", SCORE: 1.0},
    ]
    settings = {"text_columns": [columns.INSTRUCTION, columns.ANSWER], "score_column": SCORE}
    accepted, rejected, manifest = run_dedup(tmp_path, rows, settings)
    # b and c tie at 9: b has the smaller id. c is a's exact copy (after normalisation), not b's.
    assert [row[columns.ID] for row in accepted] == ["b", "e"]
    details = {row[columns.ID]: (row[columns.REJECT_REASON], json.loads(row[columns.REJECT_DETAIL])) for row in rejected}
    assert {row_id: reason for row_id, (reason, _) in details.items()} == {
        "a": "near_duplicate", "c": "near_duplicate", "d": "exact_duplicate",
    }  # fmt: skip
    for reason, detail in details.values():
        assert (detail["kept_id"], detail["cluster_id"], detail["cluster_size"]) == ("b", "a", 4)
    assert details["d"][1]["similarity_to_kept"] == 1.0 and 0.8 < details["a"][1]["similarity_to_kept"] < 1.0
    assert manifest["extra"]["clusters"] == 1

    with pytest.raises(ConfigError, match="reads column"):
        run_dedup(tmp_path, rows, {"text_columns": ["absent"]})  # the source is fresh: only dedup reruns


def test_chinese_copies_are_found_with_character_shingles(tmp_path, ray_session):
    if not CJK_SAMPLES.is_dir():
        pytest.skip(f"{CJK_SAMPLES} (CPython's test package) is not installed")
    rows = corpus_rows(chinese_near_duplicates(3) + ["An unrelated English paragraph about hashing shingles of words."])
    settings = {"text_columns": [columns.INSTRUCTION], "shingles": {"kind": "char", "n": 3}}
    _, rejected, manifest = run_dedup(tmp_path, rows, settings)
    assert clustered_pairs(rejected) == {(0, 2), (1, 3)}
    assert manifest["extra"]["shingles"]["kind"] == "char"
