"""What every model spec shares, declared once: the `models` section of a job file holds one
named entry per model, and its `engine` key picks the engine that owns the rest of the entry.

The engines and their settings live in `synthmix.pipeline.llm.engines` (one module each: `embedded`, the
default when `engine` is left out; `vllm`; `openai`). Here are the settings their specs inherit:
`ModelSettings` for every engine (batch size, sampling defaults) and `ReplicatedModelSettings`
for engines whose replicas the job starts itself (replicas, batches in flight, hang timeout).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelSpecError(ValueError):
    """A model spec that would fail once its engine starts; raised before anything starts."""


class SamplingParams(BaseModel):
    """Sampling parameters: a model's defaults, which a row's `sampling_params` may override key by key."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1)
    # None: derived from the row's messages, so reruns reproduce (see `synthmix.pipeline.llm.processors`).
    seed: int | None = Field(default=None, ge=0)
    # More than one sample per row becomes that many output rows (see `synthmix.pipeline.llm.processors.apply_llm`).
    n: int = Field(default=1, ge=1)
    stop: list[str] | None = None
    # Most likely tokens returned per generated position, with their log-probabilities (column
    # `llm_top_logprobs`): a judge read by probability asks for a one-token reply and this.
    logprobs: int | None = Field(default=None, ge=1, le=20)


class ModelSettings(BaseModel):
    """Settings of every model spec; an engine's spec adds `engine: Literal[<its name>]` and its own."""

    model_config = ConfigDict(extra="forbid")

    engine: str
    # Rows per request batch: per engine call, per Ray Data processor batch, or per client batch.
    batch_size: int = Field(default=64, ge=1)
    sampling: SamplingParams = SamplingParams()


class ReplicatedModelSettings(ModelSettings):
    """Settings of a model whose engine replicas the job starts and shares between its stages."""

    replicas: int = Field(default=1, ge=1)
    # Batches each replica is sent at once (see synthmix.pipeline.llm.engine_pool.send_batch): one at a time,
    # the engine drains at every batch's longest answer; 4 of 64 fill vLLM's offline max_num_seqs.
    batches_in_flight: int = Field(default=4, ge=1)
    # Seconds without a single generated token, while requests wait, after which the engine is
    # taken for hung and the stage fails naming the model (see synthmix.pipeline.llm.engine_replica).
    hang_timeout_s: float = Field(default=300, gt=0)
