"""The funnel: counts, reasons, tokens and state per stage, from manifests and shard footers."""

import pytest

from synthmix.pipeline.inspection.funnel import run_funnel
from tests.pipeline.inspection_run import make_inspection_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("funnel"))


def test_funnel_lists_stages_in_run_order_with_counts_reasons_and_tokens(run):
    rows = {row["stage"]: row for row in run_funnel(run.run_dir, {"seeds": "fresh"})}
    assert list(rows) == ["seeds", "synthesize", "evolve", "critique", "shards"]
    assert rows["seeds"]["state"] == "fresh" and rows["synthesize"]["state"] == "unlisted"
    assert (rows["seeds"]["rows_in"], rows["seeds"]["rows_out"], rows["seeds"]["rejected"]) == (5, 3, {"not_utf8": 1, "parse_error": 1})
    assert rows["evolve"]["rejected"] == {"near_duplicate": 2}
    assert rows["critique"]["llm"]["embedded"]["generated_tokens"] == 150
    assert rows["shards"]["rows_out"] == 5


def test_a_stage_of_the_job_not_run_yet_keeps_its_state_with_no_counts(run):
    rows = run_funnel(run.run_dir, {"seeds": "stale", "answer": "missing"})
    answer = next(row for row in rows if row["stage"] == "answer")
    assert answer["state"] == "missing" and answer["rows_out"] is None
    assert rows[0]["state"] == "stale"
