"""The Ray-free parts of apply_llm: sampling precedence, row expansion and output unpacking."""

import json

import pyarrow as pa
import pytest

from pipeline.llm import processors as llm
from pipeline.llm.models import SamplingParams

MESSAGES = [{"role": "user", "content": "hi"}]


def expand(table, default_schema=None, defaults=None):
    return llm.expand_requests(
        table,
        messages_column=llm.MESSAGES,
        sampling_column=llm.SAMPLING_PARAMS,
        schema_column=llm.JSON_SCHEMA,
        default_schema=default_schema,
        defaults=defaults or SamplingParams().model_dump(),
    )


def test_row_sampling_overrides_call_which_overrides_model_defaults():
    defaults = llm.merge_sampling(SamplingParams(temperature=0.9, max_tokens=100), {"max_tokens": 50, "seed": 3})
    table = pa.table({"id": ["a", "b"], llm.MESSAGES: [MESSAGES, MESSAGES], llm.SAMPLING_PARAMS: ['{"max_tokens": 7}', None]})
    used = [json.loads(text) for text in expand(table, defaults=defaults).column("__synthmix_sampling").to_pylist()]
    assert [(u["temperature"], u["max_tokens"], u["seed"]) for u in used] == [(0.9, 7, 3), (0.9, 50, 3)]


def test_unknown_sampling_key_is_an_error():
    with pytest.raises(ValueError, match="temprature"):
        llm.merge_sampling(SamplingParams(), {"temprature": 0.1})


def test_n_samples_become_n_rows_with_offset_seeds():
    table = pa.table({"id": ["a"], llm.MESSAGES: [MESSAGES], llm.SAMPLING_PARAMS: [{"n": 3, "seed": 10}]})
    out = expand(table)
    assert out.column("__synthmix_sample_index").to_pylist() == [0, 1, 2]
    assert [json.loads(t)["seed"] for t in out.column("__synthmix_sampling").to_pylist()] == [10, 11, 12]
    assert [row["id"] for row in out.column("__synthmix_row").to_pylist()] == ["a", "a", "a"]


def test_rows_without_seed_get_one_derived_from_their_messages():
    other = [{"role": "user", "content": "bye"}]
    table = pa.table({llm.MESSAGES: [MESSAGES, MESSAGES, other]})
    seeds = [json.loads(t)["seed"] for t in expand(table).column("__synthmix_sampling").to_pylist()]
    assert seeds[0] == seeds[1] != seeds[2]
    assert all(isinstance(seed, int) and seed >= 0 for seed in seeds)


def test_row_schema_wins_over_the_call_schema():
    table = pa.table({llm.MESSAGES: [MESSAGES, MESSAGES], llm.JSON_SCHEMA: ['{"type": "array"}', None]})
    assert expand(table, default_schema='{"type": "object"}').column("__synthmix_schema").to_pylist() == [
        '{"type": "array"}',
        '{"type": "object"}',
    ]


def test_missing_messages_column_names_the_columns_there_are():
    with pytest.raises(ValueError, match=r"needs a column 'messages'.*\['text'\]"):
        expand(pa.table({"text": ["x"]}))


def test_finish_keeps_every_input_column_and_nulls_text_of_failed_rows():
    prepared = expand(pa.table({"id": ["a", "b"], "score": [1.5, 2.5], llm.MESSAGES: [MESSAGES, MESSAGES]}))
    engine_output = prepared.append_column(llm.GENERATED_TEXT, pa.array(["hello", ""]))
    engine_output = engine_output.append_column("__inference_error__", pa.array(["", "ValueError: too long"]))
    engine_output = engine_output.append_column(llm.NUM_INPUT_TOKENS, pa.array([5, 0]))
    engine_output = engine_output.append_column(llm.NUM_GENERATED_TOKENS, pa.array([1, 0]))
    engine_output = engine_output.append_column("prompt", pa.array(["p", "q"]))
    out = llm.finish_rows(engine_output, model_name="smol", extract="vllm")
    assert out.column_names == ["id", "score", llm.MESSAGES] + [f.name for f in llm.OUTPUT_FIELDS]
    assert out.column(llm.GENERATED_TEXT).to_pylist() == ["hello", None]
    assert out.column(llm.LLM_ERROR).to_pylist() == [None, "ValueError: too long"]
    assert out.column(llm.LLM_MODEL).to_pylist() == ["smol", "smol"]
    assert out.column("score").to_pylist() == [1.5, 2.5]


def test_messages_may_be_a_json_string():
    assert llm.as_messages(json.dumps(MESSAGES)) == MESSAGES
