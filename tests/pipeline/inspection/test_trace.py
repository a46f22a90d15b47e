"""Tracing a row: its line from the seed chunk down to shard rows, across kept and rejected rows."""

import json

import pytest

from synthmix.pipeline.inspection.run_contents import RunInspectionError
from synthmix.pipeline.inspection.terminal_view import render_trace
from synthmix.pipeline.inspection.trace import trace_row
from tests.pipeline.inspection_run import make_inspection_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("trace"))


def test_an_evolved_row_shows_its_seed_its_instruction_and_every_later_stage(run):
    trace = trace_row(run.run_dir, run.evolved_id)
    steps = [(step["stage"], step["id"], step["relation"]) for step in trace["steps"]]
    assert steps == [
        ("seeds", run.seed_id, "ancestor"),
        ("synthesize", run.instruction_id, "ancestor"),
        ("evolve", run.evolved_id, "self"),
        ("critique", run.evolved_id, "self"),
        ("shards", run.evolved_id, "self"),
    ]
    critique = trace["steps"][3]["columns"]
    assert critique["critique_score"] == 9.0 and critique["answer"].startswith("Answer to")
    assert "input_ids" not in trace["steps"][4]["columns"]  # token lists are left out
    assert trace["seed_ids"] == [run.seed_id]
    assert trace["family_rows"] == 4 and run.sibling_id not in {step["id"] for step in trace["steps"]}


def test_a_seed_shows_all_descendants_including_rejected_ones(run):
    trace = trace_row(run.run_dir, run.seed_id)
    rejected = [step for step in trace["steps"] if step["status"] == "rejected"]
    assert [(step["stage"], step["id"], step["reject_reason"]) for step in rejected] == [("critique", run.sibling_id, "critique_low")]
    assert '"threshold": 5' in rejected[0]["reject_detail"]
    assert {step["id"] for step in trace["steps"]} == {run.seed_id, run.instruction_id, run.evolved_id, run.sibling_id}
    assert [step["depth"] for step in trace["steps"]] == sorted(step["depth"] for step in trace["steps"])


def test_a_record_rejected_before_chunking_traces_to_itself(run):
    trace = trace_row(run.run_dir, "corpus.jsonl:2")
    assert [(step["stage"], step["status"], step["reject_reason"]) for step in trace["steps"]] == [("seeds", "rejected", "parse_error")]


def test_an_unknown_id_is_an_error_naming_the_stages_searched(run):
    with pytest.raises(RunInspectionError, match="searched: seeds, synthesize, evolve, critique, shards"):
        trace_row(run.run_dir, "0" * 32)


def test_every_step_names_the_user_record_it_comes_from(run):
    trace = trace_row(run.run_dir, run.evolved_id)
    made_by_hand = [step for step in trace["steps"] if step["stage"] != "seeds"]
    assert {step["source_id"] for step in made_by_hand} == {"doc-1"}
    assert all(json.loads(step["origin"])["file"] == "corpus.jsonl" for step in made_by_hand)
    assert all("source_id" not in step["columns"] and "origin" not in step["columns"] for step in trace["steps"])
    text = render_trace(trace)
    assert text.count("record: source_id doc-1") >= len(made_by_hand)
