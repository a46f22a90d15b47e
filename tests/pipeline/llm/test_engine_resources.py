"""Engines and stage tasks fit the cluster, checked before anything starts; a wait is reported."""

from __future__ import annotations

import pytest

from synthmix.pipeline.llm.engine_resources import EngineRoomError, StageNeed, check_engine_room, models_up
from synthmix.pipeline.llm.engines.embedded import EmbeddedModel
from synthmix.pipeline.llm.engines.openai import OpenAIModel
from synthmix.pipeline.llm.engines.vllm import VllmModel
from synthmix.pipeline.resource_wait import ResourceWatch

TWO_CPUS = {"CPU": 2.0}
CONVERTED = "/models/qwen"


def vllm_cpu(cpus_per_gpu: float, replicas: int = 1) -> VllmModel:
    return VllmModel(engine="vllm", model=CONVERTED, gpus_per_replica=0, cpus_per_gpu=cpus_per_gpu, replicas=replicas)


def answer_job(model) -> tuple[list[StageNeed], dict]:
    needs = [StageNeed("probe_source", (), 0.25), StageNeed("answer", ("m",), 0.25), StageNeed("consistency", (), 0.25)]
    return needs, {"m": model}


def test_an_engine_that_leaves_its_stage_no_cpu_is_refused_naming_the_numbers_and_the_setting():
    needs, models = answer_job(vllm_cpu(cpus_per_gpu=2))
    with pytest.raises(EngineRoomError) as refused:
        check_engine_room(needs, models, TWO_CPUS, largest_node_cpus=2)
    message = str(refused.value)
    assert "stage 'answer'" in message and "model 'm' 2 CPUs (1 replica(s) x cpus_per_gpu 2)" in message
    assert "reserve 2 of the 2 CPUs Ray has" in message and "leaving 0" in message and "need 0.25 CPU each" in message
    assert "lower cpus_per_gpu of model 'm' to 1.75 or less" in message.lower() and "ray.num_cpus" in message


def test_an_engine_that_leaves_room_passes():
    check_engine_room(*answer_job(vllm_cpu(cpus_per_gpu=1)), TWO_CPUS, largest_node_cpus=2)
    check_engine_room(*answer_job(EmbeddedModel(cpus_per_replica=1.75)), TWO_CPUS, largest_node_cpus=2)
    check_engine_room(*answer_job(OpenAIModel(engine="openai", base_url="http://127.0.0.1:1/v1", model="x")), TWO_CPUS)


def test_models_count_from_their_first_user_to_their_last():
    needs = [StageNeed("a", ("x",), 0.25), StageNeed("b", (), 0.25), StageNeed("c", ("x", "y"), 0.25), StageNeed("d", (), 0.25)]
    assert [(need.stage, up) for need, up in models_up(needs)] == [("a", ["x"]), ("b", ["x"]), ("c", ["x", "y"]), ("d", [])]
    # Two engines of 1 CPU each are fine apart, not together with a stage's task on 2 CPUs.
    models = {"x": EmbeddedModel(cpus_per_replica=1), "y": EmbeddedModel(cpus_per_replica=1)}
    with pytest.raises(EngineRoomError, match=r"stage 'c': .*reserve 2 of the 2 CPUs.*Lower cpus_per_replica of model 'x' to 0.75 or less"):
        check_engine_room(needs, models, TWO_CPUS, largest_node_cpus=2)
    # Where no one model's setting can make room, the others have to go.
    needs = [StageNeed("c", ("x", "y", "z"), 0.25)]
    with pytest.raises(EngineRoomError, match=r"reserve 3 of the 2 CPUs.*Run fewer models at once"):
        check_engine_room(needs, {**models, "z": EmbeddedModel(cpus_per_replica=1)}, TWO_CPUS, largest_node_cpus=2)


def test_replicas_that_could_never_all_start_are_refused():
    needs, models = answer_job(EmbeddedModel(cpus_per_replica=3))
    with pytest.raises(EngineRoomError, match=r"model 'm' asks for 3 CPUs per replica \(cpus_per_replica\), but the largest Ray node has 2"):
        check_engine_room(needs, models, {"CPU": 8.0}, largest_node_cpus=2)
    needs, models = answer_job(VllmModel(engine="vllm", model=CONVERTED, replicas=3, gpus_per_replica=1))
    with pytest.raises(EngineRoomError, match=r"ask for 3 GPUs in all .* the Ray cluster has 2"):
        check_engine_room(needs, models, {"CPU": 16.0, "GPU": 2.0}, largest_node_cpus=8)


# --- a wait the check could not foresee is reported ---------------------------------------


class Clock:
    def __init__(self, waiting):
        self.waiting = waiting

    def __call__(self):
        return self.waiting


def watch(demand, **kwargs) -> ResourceWatch:
    return ResourceWatch("answer", print, held=lambda: "the job's engines hold model 'm' 2 CPUs", demand=demand, free=lambda: "0 of 2 CPUs free", **kwargs)


def test_a_wait_longer_than_the_bound_is_reported_naming_what_waits_and_what_holds():
    demand = Clock([({"CPU": 0.25}, 3)])
    watcher = watch(demand, bound_s=60)
    assert watcher.check(0.0) is None and watcher.check(59.0) is None
    line = watcher.check(61.0)
    assert line == (
        "[answer] waiting 61 s for resources: 3 task(s) or actor(s) asking {CPU: 0.25}; Ray has 0 of 2 CPUs free; the job's engines hold model 'm' 2 CPUs"
    )
    assert watcher.check(90.0) is None and watcher.check(121.0) is None, "said again before the wait doubled"
    assert watcher.check(122.0).startswith("[answer] waiting 122 s")
    assert watcher.check(200.0) is None and watcher.check(245.0).startswith("[answer] waiting 245 s")


def test_a_wait_that_ends_or_a_commit_starts_the_clock_again():
    demand = Clock([({"CPU": 1.0}, 1)])
    watcher = watch(demand, bound_s=60)
    watcher.check(0.0)
    demand.waiting = []
    assert watcher.check(30.0) is None
    demand.waiting = [({"CPU": 1.0}, 1)]
    assert watcher.check(40.0) is None and watcher.check(99.0) is None
    assert watcher.check(101.0) is not None


def test_a_task_ray_cannot_place_is_read_from_the_clusters_pending_demand(ray_session):
    from synthmix.pipeline.resource_wait import free_resources, pending_demand

    @ray_session.remote(num_cpus=2)
    class Hog:
        def ping(self):
            return True

    hog = Hog.remote()
    try:
        ray_session.get(hog.ping.remote(), timeout=60)
        waiting = ray_session.remote(num_cpus=0.5)(lambda: True).remote()
        found = []
        for _ in range(100):  # the GCS learns of the demand within a few hundred ms
            found = pending_demand()
            if found:
                break
            ray_session.wait([waiting], timeout=0.1)
        assert ({"CPU": 0.5}, 1) in found
        assert free_resources() == "0 of 2 CPUs free"
    finally:
        ray_session.kill(hog)
