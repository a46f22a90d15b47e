"""The Ray-free parts of apply_llm: sampling precedence, row expansion and output unpacking."""

import json

import pyarrow as pa
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.llm import engine_pool
from synthmix.pipeline.llm import processors as llm
from synthmix.pipeline.llm.engines.openai import read_http_replies
from synthmix.pipeline.llm.engines.vllm_runtime import read_vllm_replies
from synthmix.pipeline.llm.models import SamplingParams

MESSAGES = [{"role": "user", "content": "hi"}]


def expand(table, default_schema=None, defaults=None, limit=None):
    return llm.expand_requests(
        table,
        messages_column=contracts.MESSAGES,
        sampling_column=contracts.SAMPLING_PARAMS,
        schema_column=contracts.JSON_SCHEMA,
        default_schema=default_schema,
        defaults=defaults or SamplingParams().model_dump(),
        limit=limit,
    )


def test_row_sampling_overrides_call_which_overrides_model_defaults():
    defaults = llm.merge_sampling(SamplingParams(temperature=0.9, max_tokens=100), {"max_tokens": 50, "seed": 3})
    table = pa.table({"id": ["a", "b"], contracts.MESSAGES: [MESSAGES, MESSAGES], contracts.SAMPLING_PARAMS: ['{"max_tokens": 7}', None]})
    used = [json.loads(text) for text in expand(table, defaults=defaults).column("__synthmix_sampling").to_pylist()]
    assert [(u["temperature"], u["max_tokens"], u["seed"]) for u in used] == [(0.9, 7, 3), (0.9, 50, 3)]


def test_unknown_sampling_key_is_an_error():
    with pytest.raises(ValueError, match="temprature"):
        llm.merge_sampling(SamplingParams(), {"temprature": 0.1})


def test_n_samples_become_n_rows_with_offset_seeds():
    table = pa.table({"id": ["a"], contracts.MESSAGES: [MESSAGES], contracts.SAMPLING_PARAMS: [{"n": 3, "seed": 10}]})
    out = expand(table)
    assert out.column("__synthmix_sample_index").to_pylist() == [0, 1, 2]
    assert [json.loads(t)["seed"] for t in out.column("__synthmix_sampling").to_pylist()] == [10, 11, 12]
    assert [row["id"] for row in out.column("__synthmix_row").to_pylist()] == ["a", "a", "a"]


def test_rows_without_seed_get_one_derived_from_their_messages():
    other = [{"role": "user", "content": "bye"}]
    table = pa.table({contracts.MESSAGES: [MESSAGES, MESSAGES, other]})
    seeds = [json.loads(t)["seed"] for t in expand(table).column("__synthmix_sampling").to_pylist()]
    assert seeds[0] == seeds[1] != seeds[2]
    assert all(isinstance(seed, int) and seed >= 0 for seed in seeds)


def test_row_schema_wins_over_the_call_schema():
    table = pa.table({contracts.MESSAGES: [MESSAGES, MESSAGES], contracts.JSON_SCHEMA: ['{"type": "array"}', None]})
    assert expand(table, default_schema='{"type": "object"}').column("__synthmix_schema").to_pylist() == [
        '{"type": "array"}',
        '{"type": "object"}',
    ]


def test_missing_messages_column_names_the_columns_there_are():
    with pytest.raises(ValueError, match=r"needs a column 'messages'.*\['text'\]"):
        expand(pa.table({"text": ["x"]}))


def test_finish_keeps_every_input_column_and_nulls_text_of_failed_rows():
    prepared = expand(pa.table({"id": ["a", "b"], "score": [1.5, 2.5], contracts.MESSAGES: [MESSAGES, MESSAGES]}))
    engine_output = prepared.append_column(contracts.GENERATED_TEXT, pa.array(["hello", ""]))
    engine_output = engine_output.append_column("__inference_error__", pa.array(["", "ValueError: too long"]))
    engine_output = engine_output.append_column(contracts.PROMPT_TOKENS, pa.array([5, 0]))
    engine_output = engine_output.append_column(contracts.GENERATED_TOKENS, pa.array([1, 0]))
    engine_output = engine_output.append_column("prompt", pa.array(["p", "q"]))
    out = llm.finish_rows(engine_output, model_name="smol", read_replies=read_vllm_replies)
    assert out.column_names == ["id", "score", contracts.MESSAGES] + [f.name for f in llm.OUTPUT_FIELDS]
    assert out.column(contracts.GENERATED_TEXT).to_pylist() == ["hello", None]
    assert out.column(contracts.LLM_ERROR).to_pylist() == [None, "ValueError: too long"]
    assert out.column(contracts.LLM_MODEL).to_pylist() == ["smol", "smol"]
    assert out.column("score").to_pylist() == [1.5, 2.5]


def test_messages_may_be_a_json_string():
    assert llm.as_messages(json.dumps(MESSAGES)) == MESSAGES


# --- prompts longer than the model takes ---------------------------------------------------


@pytest.fixture(scope="module")
def word_limit(tmp_path_factory):
    """A limit of 40 tokens, counted one per word by a small tokenizer."""
    from synthmix.pipeline.llm.prompt_length import PromptLimit
    from tests.pipeline.small_tokenizer import save_small_tokenizer

    return PromptLimit("smol", str(save_small_tokenizer(tmp_path_factory.mktemp("tokenizer"))), 40)


def chat(words: int) -> list[dict]:
    return [{"role": "user", "content": "word " * words}]


def test_a_prompt_longer_than_the_model_takes_is_never_sent_and_says_its_count_and_the_limit(word_limit, monkeypatch):

    table = pa.table({"id": ["short", "long", "edge"], contracts.MESSAGES: [json.dumps(chat(5)), json.dumps(chat(500)), json.dumps(chat(35))]})
    prepared = expand(table, limit=word_limit)
    sent = []

    def engine(requests, **kwargs):
        sent.extend(requests)
        return [{"text": "fine", "error": None, "prompt_tokens": 9, "generated_tokens": 1} for _ in requests]

    monkeypatch.setattr(engine_pool, "send_batch", engine)
    generated = engine_pool.generate_on_replicas(prepared, replicas=[], model_name="smol", messages_column=contracts.MESSAGES, batch_size=8)
    out = {row["id"]: row for row in llm.finish_rows(generated, model_name="smol", read_replies=engine_pool.read_replica_replies).to_pylist()}
    assert [len(request["messages"][0]["content"].split()) for request in sent] == [5, 35], "the long prompt reached the engine"
    long = out["long"]
    assert long[contracts.GENERATED_TEXT] is None and long[contracts.LLM_ERROR_REASON] == "prompt_too_long"
    # 500 words, the role and the template's own words: counted in the model's tokens, not characters.
    assert long[contracts.PROMPT_TOKENS] >= 500
    assert f"the prompt has {long[contracts.PROMPT_TOKENS]} tokens; model 'smol' takes at most 39 (max_model_len 40" in long[contracts.LLM_ERROR]
    assert [out[name][contracts.LLM_ERROR_REASON] for name in ("short", "edge")] == [None, None]
    assert out["edge"][contracts.GENERATED_TEXT] == "fine"


def test_a_refusal_the_engine_or_server_gives_stays_an_llm_error(word_limit):
    prepared = expand(pa.table({"id": ["a"], contracts.MESSAGES: [MESSAGES]}))
    reply = pa.array([{"text": None, "error": "HTTP 400: context length exceeded", "prompt_tokens": 0, "completion_tokens": 0}])
    out = llm.finish_rows(prepared.append_column("http_response", reply), model_name="api", read_replies=read_http_replies).to_pylist()
    assert out[0][contracts.LLM_ERROR_REASON] == "llm_error" and "HTTP 400" in out[0][contracts.LLM_ERROR]
