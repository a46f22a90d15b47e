"""What a job's engines reserve on the Ray cluster, checked against what its stages need before
anything starts.

A replica actor holds its CPUs (and GPUs) for as long as its model is up: from the first stage
that uses the model to the last (synthmix.pipeline.llm.engine_pool). A stage's own Ray Data tasks (read,
render, send to the engine, commit) need a share of a CPU each beside them. When the engines up
during a stage leave less than that free, the tasks never run and the engine waits for requests
that never come: seen as a silent, endless hang (`engine: vllm, gpus_per_replica: 0,
cpus_per_gpu: 2` under `ray: {num_cpus: 2}`). `check_engine_room` refuses such a job at once,
with the numbers and the setting to change; it also refuses engines that could never all start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from synthmix.pipeline.contracts import ConfigError
from synthmix.pipeline.llm.engine_pool import Reservation
from synthmix.pipeline.llm.engines import engine_for
from synthmix.pipeline.llm.models import ModelSettings


class EngineRoomError(ConfigError):
    """The job's engines and its stages' tasks cannot all have the resources they ask for."""


def reservation(name: str, spec: ModelSettings) -> Reservation | None:
    """What the model's replicas hold on the cluster (its engine says); None for a server outside the job."""
    return engine_for(spec).reservation(name, spec)


@dataclass(frozen=True)
class StageNeed:
    """A selected stage, in plan order: the models it calls and the CPUs one of its tasks asks for."""

    stage: str
    models: tuple[str, ...]
    task_cpus: float


def models_up(needs: Sequence[StageNeed]) -> list[tuple[StageNeed, list[str]]]:
    """Each stage with the models up while it runs: every model whose first user is at or before it
    and whose last user is at or after it (engines start lazily and go after their last user)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, need in enumerate(needs):
        for model in need.models:
            first.setdefault(model, index)
            last[model] = index
    return [(need, sorted(model for model in first if first[model] <= index <= last[model])) for index, need in enumerate(needs)]


def check_engine_room(
    needs: Sequence[StageNeed],
    models: Mapping[str, ModelSettings],
    cluster: Mapping[str, float],
    largest_node_cpus: float | None = None,
) -> None:
    """Raise `EngineRoomError` when a stage's engines leave its tasks no CPU, when engines up at
    once ask for more CPUs or GPUs than the cluster has, or a replica for more CPUs than any node.

    `cluster` is `ray.cluster_resources()`; `largest_node_cpus` the CPUs of the biggest node."""
    total_cpus = float(cluster.get("CPU", 0))
    total_gpus = float(cluster.get("GPU", 0))
    for need, names in models_up(needs):
        held = [found for found in (reservation(name, models[name]) for name in names) if found is not None]
        if not held:
            continue
        cpus = sum(found.cpus for found in held)
        gpus = sum(found.gpus for found in held)
        listed = "; ".join(found.describe() for found in held)
        widest = max(held, key=lambda found: found.cpus_per_replica)
        if largest_node_cpus is not None and widest.cpus_per_replica > largest_node_cpus:
            raise EngineRoomError(
                f"model '{widest.model}' asks for {widest.cpus_per_replica:g} CPUs per replica ({widest.setting}), but the largest "
                f"Ray node has {largest_node_cpus:g}; a replica never starts. Lower {widest.setting} to {largest_node_cpus:g} or less"
            )
        if gpus > total_gpus:
            raise EngineRoomError(
                f"stage '{need.stage}': the engines up during it ask for {gpus} GPUs in all ({listed}), but the Ray cluster has "
                f"{total_gpus:g}; the replicas beyond them never start. Lower `replicas` or `gpus_per_replica`, or add GPUs"
            )
        left = total_cpus - cpus
        if left < need.task_cpus:
            room = total_cpus - need.task_cpus - (cpus - widest.cpus)
            fix = (
                f"lower {widest.setting} of model '{widest.model}' to {room / widest.replicas:g} or less"
                if room > 0
                else f"run fewer models at once (model '{widest.model}' and the others above)"
            )
            raise EngineRoomError(
                f"stage '{need.stage}': the engines up during it reserve {cpus:g} of the {total_cpus:g} CPUs Ray has ({listed}), "
                f"leaving {max(left, 0):g} for the stage's own Ray Data tasks, which need {need.task_cpus:g} CPU each: it would "
                f"wait forever. {fix[0].upper()}{fix[1:]}, or give Ray more CPUs (`ray.num_cpus`, now {total_cpus:g})"
            )
