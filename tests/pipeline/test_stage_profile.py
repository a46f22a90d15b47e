"""Stage profiles: roles and distributions of any columns, seeded samples, --where, rejects by reason."""

import pytest

from pipeline.run_contents import RunInspectionError
from pipeline.stage_profile import profile_rejects, profile_stage
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
        "id": "lineage", "seed_id": "lineage", "parent_id": "lineage", "domain": "category", "lang": "category",
        "instruction": "text", "meta": "detail", "answer": "text", "critique_score": "numeric",
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
