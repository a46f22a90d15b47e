"""Where a model's prompt length can be counted before sending, and what the limit is."""

from __future__ import annotations

import json

import pytest

from synthmix.pipeline.llm.engines import check_model_spec, engine_for
from synthmix.pipeline.llm.engines import embedded as embedded_engine
from synthmix.pipeline.llm.engines.embedded import EmbeddedModel
from synthmix.pipeline.llm.engines.openai import OpenAIModel
from synthmix.pipeline.llm.engines.vllm import VllmModel
from synthmix.pipeline.llm.models import ModelSpecError
from synthmix.pipeline.llm.prompt_length import PromptLimit, count_prompt_tokens
from tests.pipeline.small_tokenizer import save_small_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model directory as vLLM loads it: tokenizer files and a config.json declaring 512 positions."""
    directory = save_small_tokenizer(tmp_path_factory.mktemp("model"))
    (directory / "config.json").write_text(json.dumps({"max_position_embeddings": 512, "seq_length": 1024}))
    return directory


def test_one_token_is_kept_for_the_reply():
    limit = PromptLimit("m", "unused", 2048)
    assert limit.problem(2047) is None
    assert limit.problem(2048) == "the prompt has 2048 tokens; model 'm' takes at most 2047 (max_model_len 2048, one token kept for the reply)"


def prompt_limit(name, spec):
    return engine_for(spec).prompt_limit(name, spec)


def test_an_embedded_model_is_counted_in_its_converted_folder_up_to_its_max_model_len(model_dir, monkeypatch):
    monkeypatch.setattr(embedded_engine, "prepare_embedded_model", lambda key, dtype: model_dir)
    limit = prompt_limit("e", EmbeddedModel(max_model_len=1024))
    assert limit == PromptLimit("e", str(model_dir), 1024)


def test_a_vllm_model_folder_is_limited_by_its_engine_kwargs_else_by_its_config(model_dir):
    assert prompt_limit("v", VllmModel(engine="vllm", model=str(model_dir))).max_model_len == 512
    assert prompt_limit("v", VllmModel(engine="vllm", model=str(model_dir), engine_kwargs={"max_model_len": 300})).max_model_len == 300


def test_a_hub_id_or_a_server_without_a_tokenizer_is_not_counted(model_dir):
    assert prompt_limit("v", VllmModel(engine="vllm", model="Qwen/Qwen2.5-0.5B-Instruct")) is None
    assert prompt_limit("o", OpenAIModel(engine="openai", base_url="http://127.0.0.1:1/v1", model="m")) is None


def test_a_server_with_a_tokenizer_folder_is_counted(model_dir):
    served = OpenAIModel(engine="openai", base_url="http://127.0.0.1:1/v1", model="m", tokenizer=str(model_dir))
    assert prompt_limit("o", served) == PromptLimit("o", str(model_dir), 512)
    assert prompt_limit("o", served.model_copy(update={"max_model_len": 128})).max_model_len == 128


def test_a_tokenizer_that_is_not_a_folder_is_refused_before_anything_starts(tmp_path):
    served = OpenAIModel(engine="openai", base_url="http://127.0.0.1:1/v1", model="m", tokenizer=str(tmp_path / "nowhere"))
    with pytest.raises(ModelSpecError, match=r"model 'o': tokenizer .*nowhere.* is not a directory"):
        check_model_spec("o", served, {})


def test_the_count_includes_the_chat_template(model_dir):
    messages = [{"role": "user", "content": "one two three"}]
    # "user", ":", three words, and the template's closing "assistant", ":".
    assert count_prompt_tokens(str(model_dir), messages) == 7


def test_a_tokenizer_without_a_chat_template_counts_nothing(tmp_path):
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(save_small_tokenizer(tmp_path / "chat"))
    plain.chat_template = None
    plain.save_pretrained(tmp_path / "plain")
    (tmp_path / "plain" / "chat_template.jinja").unlink(missing_ok=True)
    assert count_prompt_tokens(str(tmp_path / "plain"), [{"role": "user", "content": "hi"}]) is None
