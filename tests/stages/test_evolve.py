"""evolve: operation choice, low-resource expansion and rejection rules on real recorded replies."""

import json

import pytest

from stages.evolve import REWRITE_OPERATIONS, pick_low_resource_examples
from tests.stages.synthesis_rows import RECORDED, instruction_rows, make_stage, with_replies

EVOLVED = RECORDED["evolve"]


@pytest.fixture(scope="module")
def stage():
    stage = make_stage("evolve")
    stage.examples = {}
    return stage


def test_recorded_replies_become_children_or_rejects_and_parents_are_kept(stage):
    rendered = stage.render_requests(instruction_rows(EVOLVED))
    rows = stage.transform(with_replies(rendered, [r["reply"] for r in EVOLVED], [r["error"] for r in EVOLVED])).to_pylist()
    parents = {r["id"] for r in EVOLVED}
    kept = [row for row in rows if row["id"] in parents]
    children = [row for row in rows if row["id"] not in parents]
    assert len(kept) == len(EVOLVED)  # keep_parents
    assert {row["parent_id"] for row in children} == parents
    for row in children:
        assert row["evolution_depth"] == 1 and row["evolution_op"] in REWRITE_OPERATIONS
        assert row["reject_reason"] in (None, "parse_error", "llm_error", "empty", "refusal", "template_leak", "too_short", "no_information_gain")
        assert json.loads(row["meta"])["steps"][-1]["operation"] == row["evolution_op"]
    # The recording (Qwen2.5-Coder-0.5B): 3 of 3 replies parse; one rewrite is kept, two repeat their instruction.
    parsed = [row for row in children if row["reject_reason"] not in ("parse_error", "llm_error")]
    assert len(parsed) / len(children) >= 2 / 3, [row["reject_detail"] for row in children]
    assert any(row["reject_reason"] is None for row in children)


def test_evolution_failures_get_their_reasons(stage):
    parent = instruction_rows([{"id": "p", "instruction": "Explain how a Python dictionary stores its keys and values."}])
    rendered = stage.render_requests(parent)
    cases = {
        "Explain how a Python dictionary stores its keys and values!": "no_information_gain",
        "I'm sorry, but I cannot help with that.": "refusal",
        "Rewritten instruction: explain hashing in Python dictionaries and collisions in detail": "template_leak",
        "Explain dicts.": "too_short",
    }
    for text, reason in cases.items():
        rows = stage.transform(with_replies(rendered, [json.dumps({"instruction": text})])).to_pylist()
        assert rows[-1]["reject_reason"] == reason, text


def test_operation_choice_is_deterministic_and_respects_zero_weights():
    stage = make_stage("evolve", {"operations": {"clarify": 0, "deepen": 1, "add_constraints": 0, "concretize": 0, "reasoning": 0}})
    ops = {stage.choose_operation(f"row{i}", "general", {}) for i in range(50)}
    assert ops == {"deepen"}
    again = make_stage("evolve")
    assert [again.choose_operation(f"r{i}", "general", {}) for i in range(30)] == [again.choose_operation(f"r{i}", "general", {}) for i in range(30)]
    assert len({again.choose_operation(f"r{i}", "general", {}) for i in range(60)}) == len(REWRITE_OPERATIONS)


def test_rare_domains_are_expanded_from_their_own_examples():
    rows = [{"domain": "general", "instruction": f"general task {i}"} for i in range(40)] + [{"domain": "law", "instruction": "What is a tort?"}]
    examples = pick_low_resource_examples(rows, listed=[], max_share=0.05, per_domain=3)
    assert examples == {"law": ["What is a tort?"]}
    listed = pick_low_resource_examples(rows, listed=["general"], max_share=0.0, per_domain=2)
    assert listed == {"general": ["general task 0", "general task 1"]}
    stage = make_stage("evolve", {"expand_share": 1.0})
    assert stage.choose_operation("x", "law", examples) == "expand"
    assert stage.choose_operation("x", "general", examples) != "expand"


def test_expand_replies_become_several_new_instructions(stage):
    stage.examples = {"law": ["What is a tort?", "Define negligence in civil law."]}
    try:
        expander = make_stage("evolve", {"expand_share": 1.0})
        expander.examples = stage.examples
        parent = instruction_rows([{"id": "l1", "instruction": "What is a tort?", "domain": "law"}])
        rendered = expander.render_requests(parent)
        assert json.loads(rendered["prompt_info"][0].as_py())["operation"] == "expand"
        reply = {
            "instructions": ["Explain the difference between a contract and a tort.", "What is a tort?", "How do courts decide damages in negligence cases?"]
        }
        rows = expander.transform(with_replies(rendered, [json.dumps(reply)])).to_pylist()
        children = [row for row in rows if row["id"] != "l1"]
        assert [row["reject_reason"] for row in children] == [None, "no_information_gain", None]
        assert all(row["evolution_op"] == "expand" and row["objective"] is False for row in children)
    finally:
        stage.examples = {}


def test_unknown_operation_is_a_config_error():
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="unknown evolution operation"):
        make_stage("evolve", {"operations": {"paraphrase": 1}})
