"""The critique stage: rejection rules on replies recorded from the embedded model, then one real engine run.

`critique_replies.json` holds real outputs of SmolLM2-135M-Instruct for template
critique/rubric v1 (greedy), including two that did not finish their JSON before max_tokens.
"""

import json
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline import columns
from pipeline.config import ConfigError, parse_job
from pipeline.graph import build_graph
from pipeline.stage import StageContext
from stages.critique import Critique, CritiqueParams, parse_judgement
from tests.stages.answer_rows import REGISTRY, answer_row, run_after_answers

REPLIES = json.loads((Path(__file__).parent / "critique_replies.json").read_text(encoding="utf-8"))["replies"]
BY_CASE = {reply["case"]: reply for reply in REPLIES}


def generated_batch(stage: Critique, replies: list[dict], errors: dict[str, str] | None = None) -> pa.Table:
    """Rows as they leave apply_llm: rendered requests plus the recorded generated text."""
    errors = errors or {}
    rows = pa.Table.from_pylist([answer_row(reply["case"], reply["instruction"], reply["answer"]) for reply in replies])
    batch = stage.render_requests(rows)
    texts = [None if reply["case"] in errors else reply["generated_text"] for reply in replies]
    return (
        batch.append_column(columns.GENERATED_TEXT, pa.array(texts, pa.string()))
        .append_column(columns.LLM_ERROR, pa.array([errors.get(reply["case"]) for reply in replies], pa.string()))
        .append_column(columns.LLM_MODEL, pa.array(["embedded"] * len(replies), pa.string()))
        .append_column("llm_sampling", pa.array([json.dumps({"temperature": 0.0})] * len(replies), pa.string()))
    )


def critique(replies, errors=None, **params) -> dict[str, dict]:
    stage = Critique(CritiqueParams(**params), StageContext(run_dir=Path("unused"), stage_name="critique"))
    output = stage.transform(generated_batch(stage, replies, errors))
    return {row["id"]: row for row in output.to_pylist()}


def test_recorded_judgement_gives_per_dimension_scores_and_their_mean():
    row = critique([BY_CASE["capital"]], min_score=1)["capital"]
    assert row["reject_reason"] is None
    recorded = json.loads(BY_CASE["capital"]["generated_text"])
    judged = json.loads(row["critique"])
    assert judged["scores"] == {name: recorded[name] for name in ("accuracy", "relevance", "completeness", "usefulness", "clarity")}
    assert judged["rationale"] == recorded["rationale"]
    assert row["critique_score"] == pytest.approx(sum(judged["scores"].values()) / 5)
    assert judged["model"] == "embedded" and judged["template_id"] == "critique/rubric"


def test_low_critique_score_is_rejected_with_reason_and_keeps_its_scores():
    rows = critique([BY_CASE["wrong_math"], BY_CASE["off_topic"]], min_score=6)
    for row in rows.values():
        assert row["reject_reason"] == "critique_low"
        assert "< min_score 6.0" in json.loads(row["reject_detail"])["why"]
        assert row["critique_score"] == 1.0 and json.loads(row["critique"])["scores"]["accuracy"] == 1


def test_unfinished_judgements_are_parse_errors_keeping_the_raw_reply():
    rows = critique([BY_CASE["truncated"], BY_CASE["chinese"]], min_score=1)
    for case, row in rows.items():
        assert row["reject_reason"] == "parse_error"
        detail = json.loads(row["reject_detail"])
        assert detail["raw"] == BY_CASE[case]["generated_text"][:1000]
        assert detail["error"]
        assert row["critique"] is None and row["critique_score"] is None


def test_failed_request_is_rejected_as_llm_error_with_the_error():
    rows = critique([BY_CASE["capital"]], errors={"capital": "prompt is longer than the context (2100 > 2048 tokens)"})
    assert rows["capital"]["reject_reason"] == "llm_error"
    assert "2048" in rows["capital"]["reject_detail"]


def test_a_dimension_floor_rejects_a_pair_whose_aggregate_passes():
    # capital: accuracy 8, every other dimension 1.
    rows = critique([BY_CASE["capital"]], min_score=1, min_dimension={"relevance": 2})
    assert rows["capital"]["reject_reason"] == "critique_low"
    assert json.loads(rows["capital"]["reject_detail"])["why"] == "relevance 1 < min_dimension.relevance 2.0"


def test_weights_decide_the_aggregate():
    rows = critique([BY_CASE["capital"]], min_score=1, weights={"accuracy": 3, "clarity": 1})
    assert rows["capital"]["critique_score"] == pytest.approx((8 * 3 + 1) / 4)


def test_accepted_judgement_adds_a_critique_step_to_meta():
    meta = json.loads(critique([BY_CASE["capital"]], min_score=1)["capital"]["meta"])
    assert meta["steps"][0] == {"template_id": "answer/general"}
    assert meta["steps"][-1]["template_id"] == "critique/rubric"
    assert meta["steps"][-1]["critique_score"] == pytest.approx(2.4)
    assert meta["steps"][-1]["model"] == "embedded"


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
def test_judgements_off_the_rubric_do_not_parse(value, problem):
    judgement, error = parse_judgement(value)
    assert judgement is None and problem in error


def test_unknown_critique_template_is_a_config_error_before_ray_starts(tmp_path):
    job = parse_job({"name": "t", "stages": ["answer", "critique"], "answer": {"path": "a.parquet"}, "critique": {"prompt": "critique/absent"}})
    with pytest.raises(ConfigError, match="critique.prompt.*critique/absent"):
        build_graph(job, REGISTRY, run_dir=tmp_path)


@pytest.mark.engine
def test_critique_runs_on_the_embedded_model_and_accounts_for_every_row(tmp_path, ray_session):
    pairs = [answer_row(reply["case"], reply["instruction"], reply["answer"]) for reply in REPLIES[:4]]
    result = run_after_answers(tmp_path, pairs, "critique", {"min_score": 1, "sampling": {"max_tokens": 160}})
    manifest, accepted, rejected = result.manifest, list(result.accepted.values()), list(result.rejected.values())
    assert manifest["rows_in"] == 4 == len(accepted) + len(rejected)
    assert manifest["llm"]["embedded"]["requests"] == 4
    assert {row["reject_reason"] for row in rejected} <= {"parse_error"}
    for row in accepted:
        scores = json.loads(row["critique"])["scores"]
        assert all(1 <= score <= 10 for score in scores.values())
        assert row["critique_score"] == pytest.approx(sum(scores.values()) / 5, abs=1e-3)
        assert "generated_text" not in row and "messages" not in row


def test_a_pair_without_an_answer_is_rejected_as_empty_whatever_the_judge_said():
    capital = BY_CASE["capital"]
    stage = Critique(CritiqueParams(min_score=1), StageContext(run_dir=Path("unused"), stage_name="critique"))
    batch = generated_batch(stage, [{**capital, "answer": None}])
    (row,) = stage.transform(batch).to_pylist()
    assert row["reject_reason"] == "empty" and row["reject_detail"] == "the pair has no answer to judge"
