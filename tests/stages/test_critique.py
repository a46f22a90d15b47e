"""The critique stage: its checks, how it reads the judge's token probabilities, its decisions, and one real engine run.

The unit tests script the judge's replies (the text and the likeliest first tokens an engine
returns) and drive the stage's own steps in order, as its Ray Data plan does: `check_pairs`,
then per signal `render_requests`, the reply, `keep_reply`; then `transform`.
"""

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.graph import build_graph
from synthmix.pipeline.stage import StageContext, with_columns
from synthmix.stages.critique import Critique, CritiqueParams, keep_reply, parse_judgement
from tests.stages.answer_rows import REGISTRY, answer_row, run_after_answers

PASSAGE = "The Great Wall of China was built over many centuries, mostly during the Ming dynasty (1368-1644)."


def first_token(**probabilities: float) -> str:
    """An engine's `llm_top_logprobs` for a one-token reply: one position, these tokens."""
    return json.dumps([{token: math.log(p) for token, p in probabilities.items()}])


YES = {"text": "Yes", "logprobs": first_token(Yes=0.9, No=0.1)}
NO = {"text": "No", "logprobs": first_token(Yes=0.2, No=0.8)}
SUPPORTED = {"text": "A", "logprobs": first_token(A=0.8, B=0.1, C=0.1)}
CONTRADICTS = {"text": "B", "logprobs": first_token(A=0.1, B=0.85, C=0.05)}


def stage_with(**params) -> Critique:
    return Critique(CritiqueParams(**params), StageContext(run_dir=Path("unused"), stage_name="critique", models={}))


def judged(stage: Critique, rows: list[dict], replies: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Run the stage's steps on `rows` with scripted replies: replies[signal][row id] = {text, logprobs, error}."""
    batch = stage.check_pairs(pa.Table.from_pylist(rows))
    for signal in stage.params.signals:
        rendered = stage.render_requests(batch, signal=signal)
        asked = [messages is not None for messages in rendered[contracts.MESSAGES].to_pylist()]
        by_id = replies.get(signal, {})
        ids = rendered[contracts.ID].to_pylist()
        reply = [by_id.get(row_id, YES if signal != "grounding" else SUPPORTED) if sent else {} for row_id, sent in zip(ids, asked)]
        batch = keep_reply(with_reply(rendered, asked, reply), signal=signal, model_name="embedded")
    return {row["id"]: row for row in stage.transform(batch).to_pylist()}


def with_reply(rendered: pa.Table, asked: list[bool], reply: list[dict]) -> pa.Table:
    """The rows as apply_llm returns them: its output columns replace any of the same name."""
    return with_columns(
        rendered,
        {
            contracts.GENERATED_TEXT: pa.array([None if r.get("error") else r.get("text") for r in reply], pa.string()),
            contracts.LLM_TOP_LOGPROBS: pa.array([None if r.get("error") else r.get("logprobs") for r in reply], pa.string()),
            contracts.LLM_ERROR: pa.array([r.get("error") for r in reply], pa.string()),
            contracts.LLM_ERROR_REASON: pa.array([(r.get("reason") or "llm_error") if r.get("error") else None for r in reply], pa.string()),
            contracts.LLM_MODEL: pa.array(["embedded" if sent else None for sent in asked], pa.string()),
            contracts.PROMPT_TOKENS: pa.array([100 if sent else 0 for sent in asked], pa.int64()),
            contracts.GENERATED_TOKENS: pa.array([1 if sent else 0 for sent in asked], pa.int64()),
        },
    )


def pair(row_id: str, instruction: str, answer: str, *, passage: str | None = None, lang: str = "en") -> dict:
    return {**answer_row(row_id, instruction, answer, lang=lang), contracts.PASSAGE: passage}


GOOD = "Lists are mutable and tuples are not: you can append to a list, but a tuple keeps the items it was made with."


def test_critique_score_is_p_yes_and_a_pair_below_min_score_is_critique_low():
    rows = judged(
        stage_with(signals=["verdict"], min_score=0.5),
        [pair("good", "How do lists and tuples differ?", GOOD), pair("bad", "Why?", GOOD)],
        {"verdict": {"bad": NO}},
    )
    assert rows["good"]["reject_reason"] is None
    assert rows["good"]["critique_score"] == pytest.approx(0.9)
    assert rows["bad"]["reject_reason"] == "critique_low"
    assert rows["bad"]["critique_score"] == pytest.approx(0.2)
    assert "< min_score 0.5" in json.loads(rows["bad"]["reject_detail"])["why"]
    assert json.loads(rows["bad"]["critique"])["signals"] == {"verdict": pytest.approx(0.2)}


def test_grounding_is_asked_only_with_a_passage_and_a_contradiction_is_rejected():
    rows = judged(
        stage_with(),
        [
            pair("grounded", "When was most of the Great Wall built?", "Mostly during the Ming dynasty.", passage=PASSAGE),
            pair("wrong", "When was most of the Great Wall built?", "Mostly during the Tang dynasty.", passage=PASSAGE),
            pair("no_passage", "How do lists and tuples differ?", GOOD),
        ],
        {"grounding": {"wrong": CONTRADICTS}},
    )
    assert rows["wrong"]["reject_reason"] == "contradicts_source"
    assert json.loads(rows["wrong"]["reject_detail"])["grounding"]["contradicts"] == pytest.approx(0.85)
    # The score is the verdict discounted by the chance of a contradiction.
    assert rows["grounded"]["critique_score"] == pytest.approx(0.9 * (1 - 0.1))
    assert rows["grounded"]["reject_reason"] is None
    assert "grounding" not in json.loads(rows["no_passage"]["critique"])["signals"]
    assert rows["no_passage"]["critique_score"] == pytest.approx(0.9)


def test_expected_grade_decides_when_asked_to():
    grade = {"text": "4", "logprobs": first_token(**{"5": 0.5, "4": 0.25, "2": 0.25})}
    rows = judged(
        stage_with(signals=["score"], decide_by="score", min_score=0.5), [pair("p", "How do lists and tuples differ?", GOOD)], {"score": {"p": grade}}
    )
    expected = 0.5 * 5 + 0.25 * 4 + 0.25 * 2
    assert json.loads(rows["p"]["critique"])["signals"]["score"] == pytest.approx(expected)
    assert rows["p"]["critique_score"] == pytest.approx((expected - 1) / 4)


def test_checks_reject_before_the_judge_is_asked():
    python_question = "How do you overload the << operator for a class in Python?"
    cpp_answer = "In C++ you write:\n```cpp\nostream& operator<<(ostream& out, const P& p) { return out; }\n```"
    stage = stage_with(signals=["verdict"])
    rows = [
        pair("cpp", python_question, cpp_answer),
        pair("syntax", "Write a Python function that doubles a number.", "```python\ndef double(x)\n    return 2 * x\n```"),
        pair("cut", "Explain recursion.", "Recursion is when a function calls itself, so that each call works on a smaller"),
        pair("refusal", "Explain recursion.", "I'm sorry, but I can't help with that."),
        pair("language", "什么是光合作用？", "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen.", lang="zh"),
    ]
    out = judged(stage, rows, {})
    assert {row_id: row["reject_reason"] for row_id, row in out.items()} == {
        "cpp": "wrong_code_language",
        "syntax": "code_syntax_error",
        "cut": "incomplete",
        "refusal": "refusal",
        "language": "lang",
    }
    # None of them was sent to the judge: no request, no tokens.
    assert all(json.loads(row["critique"])["signals"] == {} for row in out.values())
    assert all(row["critique_score"] is None for row in out.values())


def test_judge_rejected_scores_pairs_the_checks_reject_but_still_rejects_them():
    rows = judged(stage_with(signals=["verdict"], judge_rejected=True), [pair("cut", "Explain recursion.", "Recursion is when a function calls")], {})
    assert rows["cut"]["reject_reason"] == "incomplete"
    assert rows["cut"]["critique_score"] == pytest.approx(0.9)


def test_an_unreadable_reply_is_a_parse_error_and_a_failed_request_an_llm_error():
    prose = {"text": "The", "logprobs": first_token(The=0.7, This=0.3)}
    rows = judged(
        stage_with(signals=["verdict"]),
        [pair("prose", "How do lists and tuples differ?", GOOD), pair("failed", "How do lists and tuples differ?", GOOD + " ")],
        {"verdict": {"prose": prose, "failed": {"error": "prompt longer than the context (2100 > 2048 tokens)"}}},
    )
    assert rows["prose"]["reject_reason"] == "parse_error"
    assert "neither yes nor no" in json.loads(rows["prose"]["reject_detail"])["error"]
    assert rows["failed"]["reject_reason"] == "llm_error" and "2048" in rows["failed"]["reject_detail"]


def test_every_judge_call_of_a_pair_is_counted_for_the_manifest():
    stage = stage_with()
    batch = stage.check_pairs(pa.Table.from_pylist([pair("g", "When?", "Mostly during the Ming dynasty.", passage=PASSAGE), pair("n", "Why lists?", GOOD)]))
    for signal in stage.params.signals:
        rendered = stage.render_requests(batch, signal=signal)
        asked = [messages is not None for messages in rendered[contracts.MESSAGES].to_pylist()]
        batch = keep_reply(with_reply(rendered, asked, [YES if a else {} for a in asked]), signal=signal, model_name="embedded")
    # The grounded pair asked the verdict and the grounding; the other only the verdict.
    assert batch[contracts.LLM_REQUESTS].to_pylist() == [2, 1]
    assert batch[contracts.PROMPT_TOKENS].to_pylist() == [200, 100]
    assert batch[contracts.LLM_MODEL].to_pylist() == ["embedded", "embedded"]


def test_the_pair_comes_first_in_every_one_token_template():
    """Engines that cache prompt prefixes read the pair once for all signals."""
    stage = stage_with(signals=["verdict", "score", "grounding"])
    batch = pa.Table.from_pylist([pair("g", "When was it built?", "Mostly during the Ming dynasty.", passage=PASSAGE)])
    batch = stage.check_pairs(batch)
    chats = [json.loads(stage.render_requests(batch, signal=signal)[contracts.MESSAGES][0].as_py()) for signal in stage.params.signals]
    assert len({chat[0]["content"] for chat in chats}) == 1, "one system message for every signal"
    users = [chat[-1]["content"] for chat in chats]
    shared = users[0].split("Is this response")[0]
    assert PASSAGE in shared and "Mostly during the Ming dynasty." in shared
    assert all(user.startswith(shared) for user in users)


def test_old_rubric_scale_min_score_is_refused_with_the_new_value():
    with pytest.raises(ValueError, match=r"old 1-10 rubric scale.*0\.56"):
        CritiqueParams(min_score=6)


def test_decide_by_must_be_asked():
    with pytest.raises(ValueError, match="decide_by 'score' is not among signals"):
        CritiqueParams(signals=["verdict"], decide_by="score")


@pytest.mark.parametrize(
    "value, problem",
    [
        ({"rationale": "ok", "accuracy": 11, "relevance": 5, "completeness": 5, "usefulness": 5, "clarity": 5}, "accuracy is 11"),
        ({"rationale": "ok", "accuracy": True, "relevance": 5, "completeness": 5, "usefulness": 5, "clarity": 5}, "accuracy is True"),
        ({"rationale": "ok", "accuracy": 7.5, "relevance": 5, "completeness": 5, "usefulness": 5, "clarity": 5}, "accuracy is 7.5"),
        ({"accuracy": 7, "relevance": 5, "completeness": 5, "usefulness": 5, "clarity": 5}, "lacks ['rationale']"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_rubric_judgements_off_the_rubric_do_not_parse(value, problem):
    judgement, error = parse_judgement(value)
    assert judgement is None and problem in error


def test_a_rubric_decides_by_its_weighted_mean_and_its_dimension_floors():
    rubric = {"rationale": "right but terse", "accuracy": 8, "relevance": 1, "completeness": 1, "usefulness": 1, "clarity": 1}
    reply = {"rubric": {"p": {"text": json.dumps(rubric)}}}
    rows = judged(stage_with(signals=["rubric"], decide_by="rubric", min_score=0.0, weights={"accuracy": 3, "clarity": 1}), [pair("p", "Why?", GOOD)], reply)
    assert rows["p"]["critique_score"] == pytest.approx(((8 * 3 + 1) / 4 - 1) / 9, abs=1e-4)
    floored = judged(stage_with(signals=["rubric"], decide_by="rubric", min_score=0.0, min_dimension={"relevance": 2}), [pair("p", "Why?", GOOD)], reply)
    assert json.loads(floored["p"]["reject_detail"])["why"] == "relevance 1 < min_dimension.relevance 2.0"


def test_unknown_critique_template_is_a_config_error_before_ray_starts(tmp_path):
    job = parse_job({"name": "t", "stages": ["answer", "critique"], "answer": {"path": "a.parquet"}, "critique": {"templates": {"verdict": "critique/absent"}}})
    with pytest.raises(ConfigError, match="critique.*critique/absent"):
        build_graph(job, REGISTRY, run_dir=tmp_path)


REAL_PAIRS = [
    pair("capital", "What is the capital of France?", "The capital of France is Paris."),
    pair("wrong_capital", "What is the capital of France?", "The capital of France is Berlin."),
    pair("wall", "When was most of the Great Wall built?", "Most of it was built during the Ming dynasty (1368-1644).", passage=PASSAGE),
    pair("wall_wrong", "When was most of the Great Wall built?", "Most of it was built during the Qin dynasty, in 1950.", passage=PASSAGE),
    pair("refusal", "What is the capital of France?", "I'm sorry, but I can't help with that."),
]


@pytest.mark.engine
def test_critique_reads_a_real_judge_by_probability_and_accounts_for_every_request(tmp_path, ray_session):
    section = {"signals": ["verdict", "score", "grounding"], "min_score": 0.0, "max_contradiction": 1.0}
    result = run_after_answers(tmp_path, REAL_PAIRS, "critique", section)
    manifest, accepted, rejected = result.manifest, result.accepted, result.rejected
    assert manifest["rows_in"] == len(REAL_PAIRS) == len(accepted) + len(rejected)
    # The refusal is caught before the judge; every other pair is read, not a parse error.
    assert rejected["refusal"]["reject_reason"] == "refusal"
    assert set(accepted) == {"capital", "wrong_capital", "wall", "wall_wrong"}
    # verdict and score for 4 pairs, grounding for the 2 with a passage.
    assert manifest["llm"]["embedded"]["requests"] == 4 * 2 + 2
    for row in accepted.values():
        signals = json.loads(row["critique"])["signals"]
        assert 0.0 <= signals["verdict"] <= 1.0 and 1.0 <= signals["score"] <= 5.0
        assert ("grounding" in signals) == (row["id"] in ("wall", "wall_wrong"))
        assert 0.0 <= row["critique_score"] <= 1.0
        assert "generated_text" not in row and "messages" not in row


def test_a_pair_without_an_answer_is_rejected_as_empty_and_a_too_long_judge_prompt_says_so():
    rows = judged(
        stage_with(signals=["verdict"], min_score=0.5),
        [pair("blank", "How do lists and tuples differ?", "  "), pair("long", "How do lists and tuples differ?", GOOD)],
        {"verdict": {"long": {"error": "the prompt is 5000 tokens; the model takes 4096", "reason": "prompt_too_long"}}},
    )
    assert rows["blank"]["reject_reason"] == "empty" and rows["blank"]["reject_detail"] == "the pair has no answer to judge"
    assert rows["long"]["reject_reason"] == "prompt_too_long" and rows["long"]["reject_detail"] == "verdict: the prompt is 5000 tokens; the model takes 4096"
