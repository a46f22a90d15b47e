"""synthesize: parsing and rejection rules on real recorded replies, and the requests it renders."""

import json
import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.quality.diversity import opening as opening_words
from synthmix.quality.instruction_checks import check_is_request
from synthmix.quality.task_types import TASK_TYPES
from synthmix.stages.synthesize import Synthesize, openings_schema, seed_language
from tests.stages.synthesis_rows import RECORDED, make_stage, seed_rows, with_replies

SEEDS = RECORDED["synthesize"]


@pytest.fixture(scope="module")
def stage() -> Synthesize:
    stage = make_stage("synthesize")
    stage.plan_task_types(seed_rows(SEEDS).to_pylist())
    return stage


def as_strings(reply: str | None) -> str | None:
    """A recorded reply in today's shape: the instructions as plain strings (they were recorded
    as objects with a `type` label, which synthesize no longer asks for)."""
    try:
        value = json.loads(reply)
    except (TypeError, ValueError):
        return reply
    items = value.get("instructions", []) if isinstance(value, dict) else []
    return json.dumps({"instructions": [item["instruction"] if isinstance(item, dict) else item for item in items]})


@pytest.fixture(scope="module")
def recorded_output(stage):
    rendered = stage.render_requests(seed_rows(SEEDS))
    replies = [as_strings(seed["reply"]) for seed in SEEDS]
    return stage.transform(with_replies(rendered, replies, [seed["error"] for seed in SEEDS])).to_pylist()


def test_every_seed_yields_instructions_or_a_reject_naming_it_as_parent(recorded_output):
    parents = {row["parent_id"] for row in recorded_output}
    assert parents == {seed["id"] for seed in SEEDS}


def test_accepted_instructions_are_requests_with_unique_ids_and_their_seed(recorded_output):
    accepted = [row for row in recorded_output if row["reject_reason"] is None]
    assert accepted, "the recorded replies contain at least one usable instruction"
    assert all(check_is_request(row["instruction"]) is None for row in accepted)
    # Content ids: a repeat shares its first copy's id, and only repeats are exact_duplicate rejects.
    firsts = [row["id"] for row in recorded_output if row["reject_reason"] != "exact_duplicate"]
    assert len(set(firsts)) == len(firsts)
    repeats = [row["id"] for row in recorded_output if row["reject_reason"] == "exact_duplicate"]
    assert set(repeats) <= set(firsts)
    assert all(row["seed_id"] == row["parent_id"] for row in recorded_output)


def test_most_recorded_replies_parse_and_most_seeds_yield_a_kept_instruction(recorded_output):
    # The recording (Qwen2.5-Coder-0.5B, structured output): 5 of 5 replies parse, 4 of 5 seeds
    # keep an instruction (the Chinese seed's three were restated as statements: not_a_request).
    unparsed = {row["parent_id"] for row in recorded_output if row["reject_reason"] in ("parse_error", "llm_error")}
    assert 1 - len(unparsed) / len(SEEDS) >= 0.8, unparsed
    kept = {row["parent_id"] for row in recorded_output if row["reject_reason"] is None}
    assert len(kept) / len(SEEDS) >= 0.5, [row["reject_reason"] for row in recorded_output]


def test_rejects_carry_a_known_reason_and_detail(recorded_output):
    allowed = {
        "parse_error",
        "llm_error",
        "empty",
        "not_a_request",
        "copies_seed",
        "too_short",
        "exact_duplicate",
        "template_leak",
        "lang",
        "not_self_contained",
    }
    allowed |= {"incomplete", "contains_answer"}
    rejected = [row for row in recorded_output if row["reject_reason"]]
    assert all(row["reject_reason"] in allowed and row["reject_detail"] for row in rejected)


def test_unparseable_reply_is_a_parse_error_keeping_the_raw_text(stage):
    rendered = stage.render_requests(seed_rows(SEEDS[:1]))
    rows = stage.transform(with_replies(rendered, ['{"instructions": [{"instruction": "Explain the with sta'])).to_pylist()
    assert [row["reject_reason"] for row in rows] == ["parse_error"]
    assert "Explain the with sta" in json.loads(rows[0]["reject_detail"])["raw"]


def test_failed_request_is_an_llm_error_reject(stage):
    rendered = stage.render_requests(seed_rows(SEEDS[:1]))
    rows = stage.transform(with_replies(rendered, [None], ["prompt is longer than the context"])).to_pylist()
    assert rows[0]["reject_reason"] == "llm_error" and "context" in rows[0]["reject_detail"]


def test_copied_seed_repeated_and_statement_instructions_are_rejected(stage):
    seed = SEEDS[0]
    copied = "Explain " + " ".join(seed["text"].split()[:20])
    reply = {
        "instructions": [
            "How does Python decide which exception handler runs first?",
            "How does Python decide which exception handler runs first?",
            copied,
            "The interpreter reads source files line by line.",
        ]
    }
    rendered = stage.render_requests(seed_rows([seed]))
    rows = stage.transform(with_replies(rendered, [json.dumps(reply)])).to_pylist()
    assert [row["reject_reason"] for row in rows] == [None, "exact_duplicate", "copies_seed", "not_a_request"]


def test_instructions_made_of_the_prompts_own_words_are_template_leaks(stage):
    """Seen from Qwen2.5-Coder-0.5B on the quickstart seeds: the prompt's rules echoed as
    instructions ("Write every instruction in English:", "Read the document, then write 4
    different instructions about its subject."), here with the words of today's web prompt."""
    reply = {
        "instructions": [
            "Finish each one so it names the subject and makes sense without the document.",
            "They begin as below; finish each one so it names the subject.",
            "Write 3 requests that a user could send an assistant about the subject of this document.",
            "factual: Which keyword defines a function in Python?",
        ]
    }
    rendered = stage.render_requests(seed_rows(SEEDS[:1]))
    rows = stage.transform(with_replies(rendered, [json.dumps(reply)])).to_pylist()
    assert [row["reject_reason"] for row in rows] == ["template_leak", "template_leak", "template_leak", None]
    assert rows[3]["instruction"] == "Which keyword defines a function in Python?"  # the type label moved out


def test_wrong_language_and_unseen_documents_are_caught_and_the_type_is_read_from_the_words(stage):
    """Seen from Qwen2.5-Coder-0.5B: English instructions for a Chinese seed, questions about
    "this document", "the following code" with no code, and "math" labels on prose questions
    (the label is not read: the instruction's own words say its type)."""
    english_seed = next(seed for seed in SEEDS if seed_language(seed) == "en")
    chinese_seed = next(seed for seed in SEEDS if seed_language(seed) == "zh")
    english = {"instructions": [
        "What is the main idea of this document?",
        "What is the output of the following Python code snippet?",
        "How does Python's garbage collector find reference cycles?",
        "What does `len([1, 2, 3])` return?",
    ]}  # fmt: skip
    chinese = {"instructions": [
        "What is the main function of the water cycle?",
        "请解释水循环中蒸发和降水的作用。",
        "本文的主要内容是什么？",
    ]}  # fmt: skip
    rendered = stage.render_requests(seed_rows([english_seed, chinese_seed]))
    rows = stage.transform(with_replies(rendered, [json.dumps(english), json.dumps(chinese)])).to_pylist()
    assert [row["reject_reason"] for row in rows] == [
        "not_self_contained", "not_self_contained", None, None, "lang", None, "not_self_contained",
    ]  # fmt: skip
    assert rows[2]["task_type"] == "explain" and not rows[2]["objective"]  # labelled math, asks how something works
    assert rows[3]["task_type"] == "explain"


def test_objective_types_are_flagged_and_calculations_and_code_move_domain(stage):
    reply = {
        "instructions": [
            "What is 17 times 23?",
            "Which keyword defines a function in Python?",
            "Describe what makes a good API.",
            "Write a Python function that reverses the words of a sentence.",
        ]
    }
    rendered = stage.render_requests(seed_rows(SEEDS[:1]))
    rows = stage.transform(with_replies(rendered, [json.dumps(reply)])).to_pylist()
    domain = SEEDS[0].get("domain", "general")
    assert [(row["task_type"], row["domain"], row["objective"]) for row in rows] == [
        ("calculate", "math", True),
        ("factual", domain, True),
        ("explain", domain, False),
        ("write_code", "code", False),
    ]
    # Each row records the type its request asked for, in the order the prompt listed them.
    asked = json.loads(rendered["prompt_info"][0].as_py())["task_types"]
    assert len(asked) == stage.params.instructions_per_call < len(rows)
    assert [json.loads(row["meta"])["steps"][-1]["asked_task_type"] for row in rows] == [*asked, None]


def test_requests_follow_the_seed_kind_and_language_and_are_deterministic(stage):
    rendered = stage.render_requests(seed_rows(SEEDS))
    again = stage.render_requests(seed_rows(SEEDS))
    assert rendered["messages"].to_pylist() == again["messages"].to_pylist()
    assert rendered["sampling_params"].to_pylist() == again["sampling_params"].to_pylist()
    for seed, info, messages in zip(SEEDS, rendered["prompt_info"].to_pylist(), rendered["messages"].to_pylist()):
        info = json.loads(info)
        family = {"web": "synthesize/web", "qa": "synthesize/qa", "code": "synthesize/code", "book": "synthesize/book"}[seed["kind"]]
        assert info["template_id"] == family
        user = json.loads(messages)[-1]["content"]
        assert ("用中文" in user) == (seed_language(seed) == "zh")
        assert info["task_types"] and set(info["task_types"]) <= set(stage.params.task_mix)
        assert len(info["variables"]["openings"]) == len(info["task_types"]) == stage.params.instructions_per_call
        assert all(f"{opening} …" in user for opening in info["variables"]["openings"])


def test_each_instruction_is_held_to_start_with_its_opening(stage):
    """The row's JSON schema (what the engine decodes against) makes instruction i start with
    opening i; code follows an opening that ends on a colon on a new line."""
    rendered = stage.render_requests(seed_rows(SEEDS[:1]))
    openings = json.loads(rendered["prompt_info"][0].as_py())["variables"]["openings"]
    items = json.loads(rendered["json_schema"][0].as_py())["properties"]["instructions"]["prefixItems"]
    assert len(items) == len(openings)
    for opening, item in zip(openings, items):
        assert re.match(item["pattern"], f"{opening} the subject of the seed, asked in full?") is not None
        assert re.match(item["pattern"], "Tell me something about the subject of the seed.") is None
    schema = openings_schema(["Find and fix the bug in this Python code:", "为什么"])
    code, why = schema["properties"]["instructions"]["prefixItems"]
    assert re.match(code["pattern"], "Find and fix the bug in this Python code:\\ndef mean(xs):\\n    return sum(xs) / len(xs) + 1") is not None
    assert re.match(code["pattern"], "Find and fix the bug in this Python code: def mean(xs): return sum(xs) / len(xs) + 1") is None
    assert re.match(why["pattern"], "为什么二分查找要求数组先排好序？") is not None


def test_seeds_are_asked_only_for_task_types_that_fit_them():
    stage = make_stage("synthesize", {"instructions_per_call": 4})
    seeds = [{**SEEDS[0], "id": f"code{i}", "kind": "code", "domain": "code"} for i in range(6)]
    seeds += [{**SEEDS[0], "id": f"hist{i}", "kind": "web", "domain": "history"} for i in range(6)]
    stage.plan_task_types(seed_rows(seeds).to_pylist())
    rendered = stage.render_requests(seed_rows(seeds))
    asked = {seed["id"]: json.loads(info)["task_types"] for seed, info in zip(seeds, rendered["prompt_info"].to_pylist())}
    assert all(len(set(types)) == 4 for types in asked.values())
    assert not any({"write_code", "debug", "calculate"} & set(types) for seed_id, types in asked.items() if seed_id.startswith("hist"))
    assert all("write_code" in types for seed_id, types in asked.items() if seed_id.startswith("code"))
    assert sum(stage.planned_mix.values()) == pytest.approx(1.0)


def test_the_manifest_sets_the_achieved_mix_beside_the_asked_and_planned(stage, tmp_path):
    from synthmix.pipeline.store import StageDir

    stage_dir = StageDir(tmp_path, "synthesize")
    stage_dir.path.mkdir()
    pq.write_table(pa.table({"task_type": ["explain", "explain", "compare", "debug"]}), stage_dir.path / "part-a.parquet")
    mix = stage.finalize(stage_dir)["task_mix"]
    assert mix["achieved"] == {"explain": 0.5, "compare": 0.25, "debug": 0.25} and mix["kept"] == 4
    assert mix["asked"] == pytest.approx({task: share / sum(stage.params.task_mix.values()) for task, share in stage.params.task_mix.items()})
    assert mix["planned"] == stage.planned_mix


def test_chinese_seed_rows_are_tagged_zh(recorded_output):
    chinese = [seed["id"] for seed in SEEDS if seed["lang"] == "zh"]
    assert chinese
    assert all(row["lang"] == "zh" for row in recorded_output if row["parent_id"] in chinese)


def test_seed_language_falls_back_to_the_script():
    assert seed_language({"text": "水循环是地球上的水不断运动的过程。"}) == "zh"
    assert seed_language({"text": "The water cycle moves water around the planet."}) == "en"
    assert seed_language({"lang": "fr", "text": "anything"}) == "fr"


def test_families_select_templates_and_join_the_fingerprint():
    stage = make_stage("synthesize", {"families": {"web": ["synthesize/web", "synthesize/qa"]}})
    assert stage.prompt_ids() == ("synthesize/openings", "synthesize/qa", "synthesize/web")
    seeds = seed_rows([{**SEEDS[0], "id": f"s{i}", "kind": "web"} for i in range(12)])
    stage.plan_task_types(seeds.to_pylist())
    used = {json.loads(info)["template_id"] for info in stage.render_requests(seeds)["prompt_info"].to_pylist()}
    assert used == {"synthesize/web", "synthesize/qa"}


def test_every_openings_schema_compiles_in_vllms_grammar_backend():
    """vLLM decodes against the row's schema with xgrammar, its compile cache on. A bounded repeat
    after an ASCII opening ({10,300}) failed to compile there, and the engine gave every English
    seed an empty reply (a quickstart run: 8 of 8 English seeds, parse_error)."""
    import xgrammar

    vocabulary = [chr(code) for code in range(32, 127)] + ["\n", "为", "什", "么", "<eos>"]
    compiler = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo(vocabulary, stop_token_ids=[len(vocabulary) - 1]), cache_enabled=True)
    template = load_prompt("synthesize/openings")
    openings = {
        template.render(task=task, language=language, pick=pick)[-1]["content"] for task in TASK_TYPES for language in ("en", "zh") for pick in range(6)
    }
    for opening in sorted(openings):
        compiler.compile_json_schema(json.dumps(openings_schema([opening, opening])), any_whitespace=False)


def test_no_two_word_opening_dominates_a_task_type():
    """The kept instructions' most common opening (quality/diversity.py: two words, three Han
    characters) should stay under a quarter of a run. A fresh-clone quickstart kept 46% English
    instructions opening "Write a": two of write_code's three openings began so. Each type's
    openings are spread, so no opening of a type carries more than half of its requests."""
    template = load_prompt("synthesize/openings")
    for task in TASK_TYPES:
        for language in ("en", "zh"):
            openings = {template.render(task=task, language=language, pick=pick)[-1]["content"] for pick in range(12)}
            heads = Counter(opening_words(text) for text in openings)
            if len(openings) > 1:
                assert heads.most_common(1)[0][1] * 2 <= len(openings), (task, language, heads)


def test_a_batch_uses_each_opening_of_a_type_equally_often():
    """Openings are dealt in turn over a batch's seeds: drawn per seed, a quickstart run's 11
    English shard rows held four write_code rows opening "Define a"."""
    stage = make_stage("synthesize", {"task_mix": {"write_code": 1.0}, "instructions_per_call": 1})
    seeds = seed_rows([{**SEEDS[0], "id": f"code-{i}", "kind": "code", "domain": "code", "lang": "en"} for i in range(12)])
    stage.plan_task_types(seeds.to_pylist())
    rendered = stage.render_requests(seeds)
    used = Counter(json.loads(info)["variables"]["openings"][0] for info in rendered["prompt_info"].to_pylist())
    template = load_prompt("synthesize/openings")
    every = {template.render(task="write_code", language="en", pick=pick)[-1]["content"] for pick in range(12)}
    assert set(used) == every and max(used.values()) - min(used.values()) <= 1
    again = stage.render_requests(seeds)
    assert again["prompt_info"].to_pylist() == rendered["prompt_info"].to_pylist()
