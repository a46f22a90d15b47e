"""evolve: operation choice, low-resource expansion and rejection rules on real recorded replies."""

import json
import re

import pytest

from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.stages.evolve import APPENDING_OPERATIONS, REWRITE_OPERATIONS, addition_schema, pick_low_resource_examples
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
        # lang: the 0.5B model added an English sentence to a Chinese instruction in the recording.
        assert row["reject_reason"] in (
            None,
            "parse_error",
            "llm_error",
            "empty",
            "refusal",
            "template_leak",
            "too_short",
            "no_information_gain",
            "lang",
            "not_a_request",
        )
        assert json.loads(row["meta"])["steps"][-1]["operation"] == row["evolution_op"]
    # The recording (Qwen2.5-Coder-0.5B): 3 of 3 replies parse; at least one rewrite is kept.
    parsed = [row for row in children if row["reject_reason"] not in ("parse_error", "llm_error")]
    assert len(parsed) / len(children) >= 2 / 3, [row["reject_detail"] for row in children]
    assert any(row["reject_reason"] is None for row in children)


def only(operation: str):
    stage = make_stage("evolve", {"operations": {op: float(op == operation) for op in REWRITE_OPERATIONS}})
    stage.examples = {}
    return stage


def evolve_one(stage, instruction: str, reply: dict, **fields) -> dict:
    parent = instruction_rows([{"id": "p", "instruction": instruction, **fields}])
    rows = stage.transform(with_replies(stage.render_requests(parent), [json.dumps(reply)])).to_pylist()
    return rows[-1]


def test_rewrite_failures_get_their_reasons():
    stage = only("clarify")
    parent = "Explain how a Python dictionary stores its keys and values."
    cases = {
        "Explain how a Python dictionary stores its keys and values!": "no_information_gain",
        "I'm sorry, but I cannot help with that.": "refusal",
        "Rewritten instruction: explain hashing in Python dictionaries and collisions in detail": "template_leak",
        "Explain dicts.": "too_short",
    }
    for text, reason in cases.items():
        assert evolve_one(stage, parent, {"change": "context", "instruction": text})["reject_reason"] == reason, text


def test_an_added_sentence_is_appended_to_its_parent_and_checked_with_it():
    stage = only("deepen")
    parent = "Explain how a Python dictionary stores its keys and values."
    row = evolve_one(stage, parent, {"addition": "Why do two keys with the same hash not overwrite each other?"})
    assert row["reject_reason"] is None
    assert row["instruction"] == parent + " Why do two keys with the same hash not overwrite each other?"
    assert json.loads(row["meta"])["steps"][-1]["addition"].startswith("Why do two keys")
    assert json.loads(row["meta"])["steps"][-1]["evolved_from"] == "p"
    # A reply that restates the whole request stands alone, and is checked as a rewrite.
    whole = evolve_one(stage, parent, {"addition": "Explain how a Python dictionary stores its keys and values!"})
    assert whole["instruction"].endswith("values!") and whole["reject_reason"] == "no_information_gain"
    assert evolve_one(stage, parent, {"addition": "I'm sorry, but I cannot help with that."})["reject_reason"] == "refusal"
    # The Chinese parent gets its addition without a space.
    zh = evolve_one(stage, "解释二分查找的原理。", {"addition": "为什么它要求数据有序？"}, lang="zh")
    assert zh["instruction"] == "解释二分查找的原理。为什么它要求数据有序？" and zh["reject_reason"] is None


def test_an_added_statement_is_no_requirement_and_a_parent_without_a_mark_gets_one():
    """Seen in a quickstart run: deepen appended an answer ("从丝绸之路中获取更多的商品和服务需要更多的
    资源和技术...") to a question, and add_constraints ran its sentence into a parent that had no mark."""
    deepen = only("deepen")
    statement = "从丝绸之路中获取更多的商品和服务需要更多的资源和技术，以及对丝绸之路的深刻理解。"
    row = evolve_one(deepen, "怎样才能从丝绸之路中获取更多的商品和服务？", {"addition": statement}, lang="zh")
    assert row["reject_reason"] == "not_a_request"
    constraint = only("add_constraints")
    row = evolve_one(constraint, "请比较地球的气压和水循环的调节作用", {"addition": "请用表格列出两者的三点不同。"}, lang="zh")
    assert row["instruction"] == "请比较地球的气压和水循环的调节作用。请用表格列出两者的三点不同。" and row["reject_reason"] is None
    row = evolve_one(constraint, "Explain Python decorators", {"addition": "Include one example that times a function."})
    assert row["instruction"] == "Explain Python decorators. Include one example that times a function." and row["reject_reason"] is None


def test_an_expansion_that_repeats_any_example_adds_nothing():
    stage = make_stage("evolve", {"expand_share": 1.0})
    stage.examples = {"science": ["写一段描述水循环如何调节全球气候并更新淡水资源", "光合作用在哪个阶段产生氧气？"]}
    parent = instruction_rows([{"id": "w1", "instruction": "光合作用在哪个阶段产生氧气？", "domain": "science", "lang": "zh"}])
    rendered = stage.render_requests(parent)
    reply = {"instructions": ["撰写一段描述水循环如何调节全球气候并更新淡水资源", "为什么植物的叶子在秋天会变黄？"]}
    rows = [row for row in stage.transform(with_replies(rendered, [json.dumps(reply)])).to_pylist() if row["id"] != "w1"]
    assert [row["reject_reason"] for row in rows] == ["no_information_gain", None]


def test_the_quickstarts_unusable_rewrites_are_rejected():
    """Rewrites Qwen2.5-Coder-0.5B's evolve wrote and the checks kept (issue #30)."""
    clarify = only("clarify")
    cases = [
        (
            "光合作用是绿色植物利用光能把二氧化碳和水合成有机物的过程，光能转换为化学能的必要性是什么？",
            "illumination的太阳能转换为化学能的必要性是什么？",
            "lang",
            "zh",
        ),
        ("计算复利时需要哪些已知变量？", "计算公式中的已知变量是什么？已知变量是本金（P）、年利率（r）、期数（n）。", "contains_answer", "zh"),
        ("描述丝绸之路的历史演变。", "请直接发送这条指令。", "not_self_contained", "zh"),
        ("Implement a signal handler registry in Python.", "Implement the same functionality in a similar function.", "not_self_contained", "en"),
        (
            "Implement a function that registers a handler for a signal.",
            "Implement a function that registers a handler for a signal if the handler is not already implemented. The function",
            "incomplete",
            "en",
        ),
        ("What is the purpose of the 'shift_expr' operator?", "What is the purpose of the 'shift_expr' operator in this context?", "not_self_contained", "en"),
        ("在排序数组中查找的平均时间复杂度是多少？", "请求用户计算在排序数组中查找的平均时间复杂度的平均时间复杂度。", "not_a_request", "zh"),
    ]
    for parent, text, reason, lang in cases:
        row = evolve_one(clarify, parent, {"change": "rewrote", "instruction": text}, lang=lang)
        assert row["reject_reason"] == reason, (text, row["reject_reason"], row["reject_detail"])


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
    from synthmix.pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="unknown evolution operation"):
        make_stage("evolve", {"operations": {"paraphrase": 1}})


def test_an_added_sentence_is_held_to_start_with_its_opening_and_the_opening_is_no_leak():
    stage = only("reasoning")
    parent = instruction_rows([{"id": "p", "instruction": "How many comparisons does binary search need for 1,000 sorted items?"}])
    rendered = stage.render_requests(parent)
    opening = json.loads(rendered["prompt_info"][0].as_py())["variables"]["opening"]
    pattern = json.loads(rendered["json_schema"][0].as_py())["properties"]["addition"]["pattern"]
    assert f'begins "{opening}"' in json.loads(rendered["messages"][0].as_py())[-1]["content"]
    assert re.match(pattern, f"{opening} and say why each step follows.") and not re.match(pattern, "Explain it more.")
    row = stage.transform(with_replies(rendered, [json.dumps({"addition": f"{opening} and say why each step follows."})])).to_pylist()[-1]
    assert row["reject_reason"] is None, row["reject_detail"]


def test_every_addition_schema_compiles_in_vllms_grammar_backend():
    import xgrammar

    vocabulary = [chr(code) for code in range(32, 127)] + ["\n", "为", "什", "么", "<eos>"]
    compiler = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo(vocabulary, stop_token_ids=[len(vocabulary) - 1]), cache_enabled=True)
    template = load_prompt("evolve/openings")
    openings = {
        template.render(operation=op, language=language, pick=pick)[-1]["content"]
        for op in APPENDING_OPERATIONS
        for language in ("en", "zh")
        for pick in range(6)
    }
    for opening in sorted(openings):
        compiler.compile_json_schema(json.dumps(addition_schema(opening)), any_whitespace=False)
