"""`engine: openai`: any OpenAI-compatible chat-completions server (vLLM serve, SGLang, hosted
APIs), a server that lives outside the job.

Rows go through Ray Data's LLM layer, `HttpRequestProcessorConfig` for batching and `qps`
pacing, with our own client session (`synthmix.pipeline.llm.openai_session`) underneath: Ray's HTTP stage
sends a batch's requests one after another and raises on the first request that exhausts its
retries, failing the whole dataset; the session sends them concurrently and turns failures into
per-row errors.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthmix.pipeline.llm.engines.base import LIGHT_STAGE_CPUS, Engine, ReplyReader
from synthmix.pipeline.llm.models import ModelSettings, ModelSpecError
from synthmix.pipeline.llm.openai_session import SCHEMA_KEY, UNSENT_KEY
from synthmix.pipeline.llm.prompt_length import PromptLimit, declared_context, limit_in_directory, local_dir
from synthmix.pipeline.llm.request_columns import PLACEHOLDER_MESSAGES, ROW, SAMPLING, SCHEMA, TOO_LONG, UNSENT, Replies, as_messages

_HTTP_RESPONSE = "http_response"  # set by Ray's HTTP stage; shaped by synthmix.pipeline.llm.openai_session


class OpenAIModel(ModelSettings):
    """A chat-completions endpoint at `base_url` (e.g. http://host:8000/v1)."""

    engine: Literal["openai"]
    base_url: str
    model: str
    # Name of the environment variable holding the API key; None sends no Authorization header.
    api_key_env: str | None = None
    # Requests per second per client actor; None sends without pacing.
    qps: int | None = Field(default=None, ge=1)
    max_retries: int = Field(default=3, ge=0)
    # First wait between retries, doubled after each failed try.
    backoff_s: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=120.0, gt=0)
    # Client actors sending requests; each keeps one batch of requests in flight.
    concurrency: int = Field(default=1, ge=1)
    # Whether the server honours response_format={"type": "json_schema"}; else only parsing helps.
    supports_json_schema: bool = True
    # A local directory with the served model's tokenizer files (e.g. the folder the server loads):
    # prompts are then counted before they are sent, and one longer than the model takes is a
    # `prompt_too_long` reject instead of a request the server refuses (synthmix.pipeline.llm.prompt_length).
    tokenizer: str | None = None
    # The server's context length; without it, what the tokenizer directory's config.json declares.
    max_model_len: int | None = Field(default=None, ge=64)


class OpenAIEngine(Engine):
    name = "openai"
    settings = OpenAIModel

    def check(self, name: str, spec: OpenAIModel, cluster_resources: Mapping[str, float]) -> None:
        if not spec.base_url.startswith(("http://", "https://")):
            raise ModelSpecError(f"model '{name}': base_url {spec.base_url!r} is not an http(s) URL; write e.g. http://127.0.0.1:8000/v1")
        if spec.tokenizer and not Path(spec.tokenizer).expanduser().is_dir():
            raise ModelSpecError(
                f"model '{name}': tokenizer {spec.tokenizer!r} is not a directory; give the local folder holding the served "
                "model's tokenizer files (tokenizer.json, tokenizer_config.json), or drop `tokenizer` to let the server judge prompt lengths"
            )
        if spec.api_key_env and not os.environ.get(spec.api_key_env):
            raise ModelSpecError(
                f"model '{name}': environment variable {spec.api_key_env} (api_key_env) is not set; export the API key "
                "in it, or drop api_key_env for a server without authentication"
            )

    def prompt_limit(self, name: str, spec: OpenAIModel) -> PromptLimit | None:
        # Counted only where the served model's tokenizer files are named.
        directory = local_dir(spec.tokenizer)
        return limit_in_directory(name, directory, spec.max_model_len or declared_context(directory))

    def describe(self, spec: OpenAIModel) -> str:
        return f"server {spec.base_url}"

    def generate(self, prepared: Any, spec: OpenAIModel, *, model_name: str, messages_column: str, pool: Any) -> tuple[Any, ReplyReader]:
        from ray.data.llm import HttpRequestProcessorConfig, build_processor

        from synthmix.pipeline.llm.openai_session import OpenAIChatSession

        headers = {}
        if spec.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[spec.api_key_env]}"
        config = HttpRequestProcessorConfig(
            url=spec.base_url.rstrip("/") + "/chat/completions",
            headers=headers,
            qps=spec.qps,
            # Retries happen inside the session, which turns the last failure into a row error.
            max_retries=0,
            session_factory=functools.partial(
                OpenAIChatSession,
                timeout_s=spec.timeout_s,
                max_retries=spec.max_retries,
                backoff_s=spec.backoff_s,
                send_json_schema=spec.supports_json_schema,
            ),
            concurrency=spec.concurrency,
            batch_size=spec.batch_size,
            http_request_stage={"num_cpus": LIGHT_STAGE_CPUS},
        )
        light = {"num_cpus": LIGHT_STAGE_CPUS}
        processor = build_processor(
            config,
            preprocess=HttpRequest(messages_column, spec.model),
            preprocess_map_kwargs=light,
            postprocess_map_kwargs=light,
        )
        return processor(prepared), read_http_replies


class HttpRequest:
    """Processor preprocess for an OpenAI-compatible server: a chat-completions payload."""

    def __init__(self, messages_column: str, model: str) -> None:
        self.messages_column = messages_column
        self.model = model

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if row[UNSENT]:
            # Ray's HTTP stage sends every row: an unsent one costs a one-token placeholder.
            return {"payload": {"model": self.model, "messages": PLACEHOLDER_MESSAGES, "max_tokens": 1, SCHEMA_KEY: ""}}
        sampling = json.loads(row[SAMPLING])
        payload = {
            "model": self.model,
            "messages": as_messages(row[ROW][self.messages_column]),
            "temperature": sampling["temperature"],
            "top_p": sampling["top_p"],
            "max_tokens": sampling["max_tokens"],
            "seed": sampling["seed"],
            "stop": sampling["stop"] or [],
            # The session turns it into response_format (or drops it where unsupported).
            SCHEMA_KEY: row[SCHEMA] or "",
            # A prompt counted too long is not sent (the session answers with the reason).
            UNSENT_KEY: row[TOO_LONG] or "",
        }
        if sampling.get("logprobs"):
            payload.update(logprobs=True, top_logprobs=int(sampling["logprobs"]))
        return {"payload": payload}


def read_http_replies(batch: Any) -> Replies:
    """The replies in the column Ray's HTTP stage wrote, as the session shaped them."""
    return Replies.from_records(batch.column(_HTTP_RESPONSE).to_pylist(), generated_tokens_key="completion_tokens")
