"""answer and gather_samples: routing, k samples for objective tasks, replies, regrouping."""

import json

import pyarrow as pa
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError
from synthmix.pipeline.llm.models import SamplingParams
from synthmix.pipeline.llm.processors import merge_sampling
from synthmix.stages.gather_samples import gather_group
from tests.stages.synthesis_rows import INPUTS, RECORDED, instruction_rows, make_stage, with_replies

ANSWERS = RECORDED["answer"]
INSTRUCTIONS = INPUTS["answer"]


def test_objective_instructions_expand_to_k_samples_with_stable_ids():
    stage = make_stage("answer", {"samples": 3})
    expanded = stage.expand_samples(instruction_rows(INSTRUCTIONS))
    counts = {}
    for row in expanded.to_pylist():
        counts[row["parent_id"]] = counts.get(row["parent_id"], 0) + 1
        assert row[contracts.NUM_SAMPLES] == (3 if row["objective"] else 1)
    assert counts == {"i1": 1, "i2": 3, "i3": 1}
    assert len(set(expanded["id"].to_pylist())) == expanded.num_rows
    assert expanded["id"].to_pylist() == stage.expand_samples(instruction_rows(INSTRUCTIONS))["id"].to_pylist()


def test_each_sample_gets_its_own_seed_and_the_domain_template():
    stage = make_stage("answer")
    rendered = stage.render_requests(stage.expand_samples(instruction_rows(INSTRUCTIONS)))
    seeds = [json.loads(s)["seed"] for s in rendered["sampling_params"].to_pylist()]
    assert len(set(seeds)) == len(seeds)
    templates = [json.loads(i)["template_id"] for i in rendered["prompt_info"].to_pylist()]
    assert templates == ["answer/code", "answer/math", "answer/math", "answer/math", "answer/general"]
    assert "用中文" in json.loads(rendered["messages"][4].as_py())[0]["content"]


def test_domain_sampling_overrides_the_stage_sampling_for_that_domain_only():
    stage = make_stage("answer", {"sampling": {"max_tokens": 200}, "domain_sampling": {"math": {"max_tokens": 512}}})
    rendered = stage.render_requests(stage.expand_samples(instruction_rows(INSTRUCTIONS)))
    per_row = [json.loads(s) for s in rendered["sampling_params"].to_pylist()]
    domains = rendered["domain"].to_pylist()
    assert [params.get("max_tokens") for params in per_row] == [512 if domain == "math" else None for domain in domains]
    # The row's keys win over the stage's in apply_llm; the others fall through to `sampling`.
    merged = [merge_sampling(SamplingParams(**merge_sampling(SamplingParams(), stage.params.sampling)), params)["max_tokens"] for params in per_row]
    assert merged == [512 if domain == "math" else 200 for domain in domains]


def test_routes_pick_the_domain_model_with_a_default():
    stage = make_stage("answer", {"routes": {"math": "embedded", "default": "embedded"}})
    assert stage.model_for("math") == "embedded" and stage.model_for("poetry") == "embedded"
    with pytest.raises(ConfigError, match="needs a `default` entry"):
        make_stage("answer", {"routes": {"math": "embedded"}})
    with pytest.raises(ConfigError, match="uses model 'qwen-math', which is not defined"):
        make_stage("answer", {"routes": {"math": "qwen-math", "default": "embedded"}})


def test_recorded_replies_become_answers_and_failures_rejects():
    stage = make_stage("answer")
    expanded = stage.expand_samples(instruction_rows(INSTRUCTIONS))
    by_id = {row["id"]: row for row in ANSWERS}
    replies = [by_id[row_id]["reply"] if row_id in by_id else "A short answer." for row_id in expanded["id"].to_pylist()]
    replies[0] = None
    errors = ["engine error: out of memory"] + [None] * (len(replies) - 1)
    rows = stage.transform(with_replies(stage.render_requests(expanded), replies, errors)).to_pylist()
    assert rows[0]["reject_reason"] == "llm_error"
    assert all(row["answer"] and row["answer_model"] == "embedded" for row in rows[1:])
    assert [row["id"] for row in rows] == expanded["id"].to_pylist()


def test_most_recorded_replies_are_answers():
    # The recording (Qwen2.5-Coder-0.5B): 5 of 5 samples answer, the three math samples "84".
    stage = make_stage("answer")
    expanded = stage.expand_samples(instruction_rows(INSTRUCTIONS))
    by_id = {row["id"]: row for row in ANSWERS}
    assert set(by_id) == set(expanded["id"].to_pylist()), "every sample has its recorded reply"
    replies = [by_id[row_id] for row_id in expanded["id"].to_pylist()]
    rows = stage.transform(with_replies(stage.render_requests(expanded), [r["reply"] for r in replies], [r["error"] for r in replies])).to_pylist()
    answered = [row for row in rows if row.get("reject_reason") is None and row["answer"]]
    assert len(answered) / len(rows) >= 0.8, [row.get("reject_reason") for row in rows]


def test_a_reply_that_asks_the_question_back_is_rejected_with_its_text():
    stage = make_stage("answer")
    expanded = stage.expand_samples(instruction_rows(INSTRUCTIONS[:1]))
    reply = "Can you explain how the with statement releases resources through a context manager?"
    (row,) = stage.transform(with_replies(stage.render_requests(expanded), [reply], [None])).to_pylist()
    assert row["reject_reason"] == "not_an_answer" and "with statement" in row["reject_detail"]
    assert row["answer"] == reply, "the rejected reply stays readable in the rejects"


def test_gather_group_orders_samples_and_names_the_pair_after_its_instruction():
    group = pa.Table.from_pylist(
        [
            {"id": "s2", "parent_id": "i2", "answer": "84", contracts.SAMPLE_INDEX: 2, "samples": None},
            {"id": "s0", "parent_id": "i2", "answer": "\\boxed{84}", contracts.SAMPLE_INDEX: 0, "samples": None},
            {"id": "s1", "parent_id": "i2", "answer": "The answer is 84.", contracts.SAMPLE_INDEX: 1, "samples": None},
        ]
    )
    row = gather_group(group).to_pylist()[0]
    assert row["samples"] == ["\\boxed{84}", "The answer is 84.", "84"]
    assert row["answer"] == "\\boxed{84}" and row["parent_id"] == "i2" and row["id"] not in {"s0", "s1", "s2"}


def test_a_reject_after_a_kept_row_in_the_same_batch_keeps_its_reason():
    # Seen in a run: a batch's table took its columns from its first row, so once that row was
    # kept, every later reject of the batch lost its reason and was kept (empty answers included).
    stage = make_stage("answer")
    expanded = stage.expand_samples(instruction_rows([INSTRUCTIONS[0], {**INSTRUCTIONS[0], "id": "i4"}, {**INSTRUCTIONS[0], "id": "i5"}]))
    question_back = "Can you explain how the with statement releases resources through a context manager?"
    replies = ["The with statement calls __enter__ and then __exit__ when the block ends.", question_back, None]
    errors = [None, None, "This model's maximum context length is 2048 tokens"]
    rows = stage.transform(with_replies(stage.render_requests(expanded), replies, errors)).to_pylist()
    assert [row["reject_reason"] for row in rows] == [None, "not_an_answer", "llm_error"]
