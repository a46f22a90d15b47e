"""What an engine is: the one object the rest of synthmix asks about a model of its kind.

An engine owns its spec (a pydantic model of its `models:` entries, discriminated by `engine:`),
the checks that catch a bad spec before anything starts, what its replicas reserve on the
cluster, how long a prompt it takes, what `synthmix models` says of it, and how a stage's rows
reach it and its replies come back (`generate`). Nothing outside the engine's module asks which
engine a model has; the registry (`synthmix.pipeline.llm.engines`) finds the engine by its name.

`PooledEngine` is an engine whose replicas the job starts once and shares between its stages
(`synthmix.pipeline.llm.engine_pool`): such an engine says where a replica goes and what it starts,
and the pool does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from synthmix.pipeline.llm.engine_pool import ReplicaPlacement, Reservation, generate_on_replicas, read_replica_replies
from synthmix.pipeline.llm.models import ModelSettings, ModelSpecError, ReplicatedModelSettings
from synthmix.pipeline.llm.request_columns import Replies

if TYPE_CHECKING:
    from synthmix.pipeline.llm.engine_pool import EnginePool
    from synthmix.pipeline.llm.engine_replica import ReplicaSettings
    from synthmix.pipeline.llm.prompt_length import PromptLimit

# Reads one batch of an engine's output rows into the rows' replies (see `Engine.generate`).
ReplyReader = Callable[[Any], Replies]

# The light processor stages (chat template, HTTP client, sending to a pool) must not hold a
# whole CPU each: on a small machine that starves the engine and can hang the plan.
LIGHT_STAGE_CPUS = 0.25


class Engine:
    """One kind of engine. Subclasses set `name` (the `engine:` value) and `settings` (its spec)."""

    name: ClassVar[str]
    settings: ClassVar[type[ModelSettings]]

    def check(self, name: str, spec: Any, cluster_resources: Mapping[str, float]) -> None:
        """Raise `ModelSpecError` for what would fail at engine start (`cluster_resources` is
        `ray.cluster_resources()` of the job's cluster). Nothing to check by default."""

    def reservation(self, name: str, spec: Any) -> Reservation | None:
        """What the model's replicas hold on the cluster; None for a server outside the job."""
        return None

    def prompt_limit(self, name: str, spec: Any) -> PromptLimit | None:
        """How to count a prompt in the model's tokens, and the most it takes; None where the
        tokens cannot be counted here (the engine's own refusal is then the row's error)."""
        return None

    def dtype(self, spec: Any) -> str | None:
        """The number format the engine computes in, where synthmix decides it."""
        return None

    def describe(self, spec: Any) -> str:
        """What `synthmix models list` says of the model beside its name and engine."""
        return f"model {getattr(spec, 'model', '?')}"

    def prepare(self, name: str, spec: Any) -> str | None:
        """Make the model ready to start (`synthmix models prepare`); the line to print, or None
        where there is nothing to prepare."""
        return None

    def generate(self, prepared: Any, spec: Any, *, model_name: str, messages_column: str, pool: EnginePool | None) -> tuple[Any, ReplyReader]:
        """The rows of `prepared` (a Ray Dataset of `synthmix.pipeline.llm.request_columns` rows) sent to the
        model, lazily, and the function that reads each output batch's replies. `pool` is the
        job's engine pool, or None outside a job (or with per-stage engines)."""
        raise NotImplementedError


class PooledEngine(Engine):
    """An engine whose replicas the job starts once, in Ray actors, and shares between its stages."""

    def replica_placement(self, spec: Any) -> ReplicaPlacement:
        """Where one replica's actor goes: its CPUs and GPUs, or a placement group's bundles."""
        raise NotImplementedError

    def replica_settings(self, name: str, spec: Any, index: int) -> ReplicaSettings:
        """What replica `index` starts: its engine's source, arguments and environment."""
        raise NotImplementedError

    def replica_backend(self, default: Callable[[ReplicaSettings], Any]) -> Callable[[ReplicaSettings], Any]:
        """What builds the engine inside the replica's actor; `default` is the pool's (vLLM's,
        or the fake tests put in its place)."""
        return default

    def generate(
        self, prepared: Any, spec: ReplicatedModelSettings, *, model_name: str, messages_column: str, pool: EnginePool | None
    ) -> tuple[Any, ReplyReader]:
        if pool is None:
            return self.generate_per_stage(prepared, spec, messages_column=messages_column)
        # The job's engine for this model: started by the first stage that needs it, shared after.
        # A task holds several batches at once, so every replica always has some in flight.
        generated = prepared.map_batches(
            generate_on_replicas,
            batch_format="pyarrow",
            batch_size=spec.batch_size * spec.batches_in_flight * spec.replicas,
            fn_kwargs={
                "replicas": pool.replicas_for(model_name, spec, self),
                "model_name": model_name,
                "stage": pool.current_stage,
                "messages_column": messages_column,
                "batch_size": spec.batch_size,
            },
            num_cpus=LIGHT_STAGE_CPUS,
        )
        return generated, read_replica_replies

    def generate_per_stage(self, prepared: Any, spec: Any, *, messages_column: str) -> tuple[Any, ReplyReader]:
        """The engine started for this call alone (outside a job, or SYNTHMIX_ENGINES=per_stage)."""
        raise ModelSpecError(
            f"engine '{self.name}' runs only as the job's shared engine; call apply_llm inside "
            "synthmix.pipeline.llm.engine_pool.job_engines(...) (as `synthmix run` does), without SYNTHMIX_ENGINES=per_stage"
        )
