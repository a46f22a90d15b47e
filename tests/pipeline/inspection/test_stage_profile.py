"""Stage profiles: roles and distributions of any columns and JSON fields, kept against rejected, seeded samples, --where, rejects by reason."""

import json

import pyarrow as pa
import pytest

from synthmix.pipeline.inspection.run_contents import RunInspectionError
from synthmix.pipeline.inspection.stage_profile import nice_bins, profile_rejects, profile_stage
from synthmix.pipeline.store import StageDir, UnitCounts
from tests.pipeline.inspection_run import make_inspection_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("profile"))


def column(profile, name):
    return next(c for c in profile["columns"] if c["name"] == name)


def test_columns_get_roles_and_distributions_from_name_and_type(run):
    profile = profile_stage(run.run_dir, "critique", sample=0)
    assert profile["rows"] == 5 and profile["manifest"]["rejected"] == {"critique_low": 1}
    roles = {c["name"]: c["role"] for c in profile["columns"]}
    assert roles == {
        "id": "lineage",
        "seed_id": "lineage",
        "parent_id": "lineage",
        "source_id": "lineage",
        "origin": "detail",
        "domain": "category",
        "lang": "category",
        "instruction": "text",
        "meta": "json",
        "meta.template": "category",
        "meta.n": "numeric",
        "answer": "text",
        "critique": "json",
        "critique.rationale": "text",
        "critique.scores.accuracy": "numeric",
        "critique.scores.clarity": "numeric",
        "critique.scores.relevance": "numeric",
        "critique.aggregate": "numeric",
        "critique_score": "numeric",
    }
    score = column(profile, "critique_score")
    assert score["stats"]["min"] == 6 and score["stats"]["max"] == 9
    assert {entry["lo"]: entry["count"] for entry in score["histogram"]} == {6: 1, 7: 1, 8: 2, 9: 1}
    domains = {entry["value"]: entry["count"] for entry in column(profile, "domain")["top"]}
    assert domains == {"math": 1, "science": 2, "code": 2}
    lengths = column(profile, "instruction")
    assert sum(entry["count"] for entry in lengths["histogram"]) == 5 and lengths["stats"]["min"] > 0


def test_where_filters_counts_distributions_and_samples(run):
    profile = profile_stage(run.run_dir, "critique", where="domain = 'science' and critique_score < 8", sample=5)
    assert profile["rows"] == 1
    assert [row["critique_score"] for row in profile["samples"]] == [7.0]
    assert column(profile, "domain")["top"] == [{"value": "science", "count": 1}]


def test_bad_where_is_an_error_naming_the_columns(run):
    with pytest.raises(RunInspectionError, match="score.*Columns: id, seed_id, parent_id.*critique_score"):
        profile_stage(run.run_dir, "critique", where="score < 5")
    with pytest.raises(RunInspectionError, match="does not apply"):
        profile_stage(run.run_dir, "critique", where="critique_score <")


def test_where_cannot_reach_files_outside_the_run(run):
    with pytest.raises(RunInspectionError, match="disabled"):
        profile_stage(run.run_dir, "critique", where="id IN (SELECT column0 FROM read_csv('/etc/hostname'))")


def test_samples_are_the_same_for_a_seed_and_differ_across_seeds(run):
    def ids(seed):
        return [row["id"] for row in profile_stage(run.run_dir, "synthesize", sample=3, seed=seed)["samples"]]

    assert ids(0) == ids(0) and len(set(ids(0))) == 3
    assert len({tuple(ids(seed)) for seed in range(8)}) > 1
    everything = profile_stage(run.run_dir, "synthesize", sample=100)["samples"]
    assert len(everything) == 6 and set(everything[0]) >= {"id", "instruction", "meta"}


def test_only_columns_limits_the_profile_and_unknown_ones_are_named(run):
    profile = profile_stage(run.run_dir, "critique", sample=0, only_columns=["critique_score"])
    assert [c["name"] for c in profile["columns"]] == ["critique_score"]
    with pytest.raises(RunInspectionError, match="no column.*nope"):
        profile_stage(run.run_dir, "critique", only_columns=["nope"])


def test_rejects_are_counted_by_reason_and_sampled_by_reason(run):
    rejects = profile_rejects(run.run_dir, "seeds", sample=10)
    assert rejects["by_reason"] == {"not_utf8": 1, "parse_error": 1}
    only = profile_rejects(run.run_dir, "seeds", reason="parse_error", sample=10)
    assert only["matched"] == 1 and only["samples"][0]["reject_reason"] == "parse_error"
    assert "line 2" in only["samples"][0]["reject_detail"]


def test_a_reason_the_stage_never_gave_lists_the_ones_it_did(run):
    with pytest.raises(RunInspectionError, match="its reasons: not_utf8, parse_error"):
        profile_rejects(run.run_dir, "seeds", reason="critique_low")


def test_json_columns_become_fields_plotted_by_what_they_are(run):
    profile = profile_stage(run.run_dir, "critique", sample=0)
    assert column(profile, "critique")["fields"] == [
        "critique.rationale",
        "critique.scores.accuracy",
        "critique.scores.clarity",
        "critique.scores.relevance",
        "critique.aggregate",
    ]
    accuracy = column(profile, "critique.scores.accuracy")
    assert {entry["lo"]: entry["count"] for entry in accuracy["histogram"]} == {6: 1, 7: 1, 8: 2, 9: 1}
    assert column(profile, "meta.template")["top"] == [{"value": "synthesize/qa", "count": 5}]
    assert "histogram" not in column(profile, "critique") and "stats" not in column(profile, "meta")


def test_maps_keyed_by_values_and_rare_keys_are_not_fields(tmp_path):
    # votes.counts is keyed by the answers themselves (here 25 per row, 64 in all, each in most
    # rows), not a record with fields; `note` is in one row of 40.
    rows = [
        {"id": f"r{n}", "votes": json.dumps({"agreement": n / 40, "counts": {str(k): 1 for k in range(n, n + 25)}, **({"note": "x"} if n == 0 else {})})}
        for n in range(40)
    ]
    write_stage(tmp_path, "consistency", rows)
    profile = profile_stage(tmp_path, "consistency", sample=0)
    assert column(profile, "votes")["fields"] == ["votes.agreement"]
    assert sum(entry["count"] for entry in column(profile, "votes.agreement")["histogram"]) == 40


def test_with_rejects_splits_every_count_into_kept_and_rejected(run):
    profile = profile_stage(run.run_dir, "critique", sample=2, with_rejects=True)
    assert (profile["rows"], profile["rows_rejected"]) == (5, 1)
    scores = {entry["lo"]: (entry["count"], entry["rejected"]) for entry in column(profile, "critique_score")["histogram"]}
    assert scores == {2: (0, 1), 3: (0, 0), 4: (0, 0), 5: (0, 0), 6: (1, 0), 7: (1, 0), 8: (2, 0), 9: (1, 0)}
    domains = {entry["value"]: (entry["count"], entry["rejected"]) for entry in column(profile, "domain")["top"]}
    assert domains == {"math": (1, 1), "science": (2, 0), "code": (2, 0)}
    assert "reject_reason" not in profile["samples"][0] and "__rejected" not in profile["samples"][0]


@pytest.mark.parametrize(
    ("low", "high", "integral", "width"),
    [(133, 2499, True, 200), (1790.5, 2030.2, False, 20), (0.62, 0.98, False, 0.02), (0, 7, True, 1), (2.6, 9.2, False, 0.5)],
)
def test_histogram_bins_have_round_edges_and_cover_every_value(low, high, integral, width):
    start, found, count = nice_bins(low, high, 20, integral)
    assert found == pytest.approx(width)
    assert start <= low < start + found and start + (count - 1) * found <= high <= start + count * found + 1e-9
    assert abs(start / found - round(start / found)) < 1e-9  # edges sit on multiples of the width
    assert count <= 25


def test_token_id_lists_are_left_out_unless_named(run):
    profile = profile_stage(run.run_dir, "shards", sample=0)
    assert "input_ids" not in {c["name"] for c in profile["columns"]} and "num_tokens" in {c["name"] for c in profile["columns"]}
    named = profile_stage(run.run_dir, "shards", sample=0, only_columns=["input_ids"])
    assert column(named, "input_ids")["role"] == "list"


def write_stage(run_dir, name, rows):
    stage_dir = StageDir(run_dir, name)
    stage_dir.clear()
    counts = UnitCounts(rows_in=len(rows), rows_out=len(rows))
    stage_dir.commit_unit("0000", pa.Table.from_pylist(rows), pa.table({}), pa.array([row["id"] for row in rows]), counts)
    stage_dir.commit({"stage": name, "fingerprint": "hand-written", **counts.to_json()})
