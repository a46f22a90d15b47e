"""apply_llm on the real embedded model through Ray Data: one engine start serves every test here."""

import json

import pytest

from synthmix.pipeline.llm import processors as llm
from synthmix.pipeline.llm.engines.embedded import EmbeddedModel
from synthmix.pipeline.llm.llm_output import parse_llm_json

pytestmark = pytest.mark.engine

FRUIT = {
    "type": "object",
    "properties": {"fruit": {"type": "string", "maxLength": 20}},
    "required": ["fruit"],
    "additionalProperties": False,
}
STORY = [{"role": "user", "content": "Tell a long story about a lighthouse keeper."}]


def chat(text):
    return [{"role": "user", "content": text}]


ROWS = [
    {"id": "short", "messages": STORY, "sampling_params": json.dumps({"max_tokens": 4}), "json_schema": None},
    {"id": "longer", "messages": STORY, "sampling_params": json.dumps({"max_tokens": 40}), "json_schema": None},
    {
        "id": "json",
        "messages": chat('Name one fruit. Answer as JSON like {"fruit": "..."}.'),
        "sampling_params": None,
        "json_schema": json.dumps(FRUIT),
    },
    {"id": "too_long", "messages": chat("word " * 3000), "sampling_params": None, "json_schema": None},
    {"id": "two_samples", "messages": chat("Say hello."), "sampling_params": json.dumps({"n": 2, "seed": 5, "temperature": 1.0}), "json_schema": None},
    {
        "id": "judged",
        "messages": chat("Is Paris the capital of France? Reply with Yes or No only."),
        "sampling_params": json.dumps({"max_tokens": 2, "logprobs": 5}),
        "json_schema": None,
    },
]


@pytest.fixture(scope="module")
def results(ray_session):
    """Every test case in one dataset, so the engine starts once (20-45 s on CPU)."""
    import ray.data

    dataset = ray.data.from_items(ROWS)
    rows = llm.apply_llm(dataset, model=EmbeddedModel(batch_size=8), model_name="smol", sampling={"temperature": 0.0, "max_tokens": 96}).take_all()
    by_id = {}
    for row in rows:
        by_id.setdefault(row["id"], []).append(row)
    return by_id


def test_every_input_row_comes_out_with_its_columns(results):
    assert sorted(results) == sorted(row["id"] for row in ROWS)
    for rows in results.values():
        for row in rows:
            assert row["llm_model"] == "smol"
            assert (row["generated_text"] is None) != (row["llm_error"] is None)
            assert "messages" in row and "sampling_params" in row


def test_plain_generation_returns_text_and_token_counts(results):
    (row,) = results["longer"]
    assert row["llm_error"] is None
    assert row["generated_text"].strip()
    assert row["num_input_tokens"] > 5
    assert row["num_generated_tokens"] > 4


def test_per_row_max_tokens_is_respected(results):
    (short,) = results["short"]
    (longer,) = results["longer"]
    assert short["num_generated_tokens"] <= 4 < longer["num_generated_tokens"]
    assert json.loads(short["llm_sampling"])["max_tokens"] == 4
    assert json.loads(longer["llm_sampling"])["temperature"] == 0.0


def test_structured_output_satisfies_the_row_schema(results):
    (row,) = results["json"]
    value, error = parse_llm_json(row["generated_text"], FRUIT)
    assert error is None, row["generated_text"]
    assert isinstance(value["fruit"], str)


def test_prompt_longer_than_the_context_is_a_row_error_not_a_failed_stage(results):
    (row,) = results["too_long"]
    assert row["generated_text"] is None
    # Counted in the model's tokens before the engine saw it (the engine would refuse it too).
    assert row["llm_error_reason"] == "prompt_too_long" and row["num_input_tokens"] > 3000
    assert f"the prompt has {row['num_input_tokens']} tokens; model " in row["llm_error"] and "max_model_len 2048" in row["llm_error"]


def test_n_samples_come_out_as_rows_with_distinct_seeds(results):
    rows = sorted(results["two_samples"], key=lambda row: row["llm_sample_index"])
    assert [row["llm_sample_index"] for row in rows] == [0, 1]
    assert [json.loads(row["llm_sampling"])["seed"] for row in rows] == [5, 6]
    assert all(row["generated_text"] for row in rows)


def test_logprobs_come_back_per_generated_position_only_where_asked_for(results):
    (row,) = results["judged"]
    positions = json.loads(row["llm_top_logprobs"])
    assert 1 <= len(positions) == row["num_generated_tokens"] <= 2
    first = positions[0]
    assert 1 <= len(first) <= 5
    assert all(logprob <= 0 for logprob in first.values())
    # Greedy decoding: the reply starts with the likeliest token.
    assert row["generated_text"].startswith(max(first, key=first.get))
    assert all(row["llm_top_logprobs"] is None for row in results["longer"] + results["json"])
