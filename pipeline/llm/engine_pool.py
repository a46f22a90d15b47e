"""Engines that live for a job, not for a stage: each model starts once and serves every stage.

The runner opens `job_engines(stages)` around a job's stages, in plan order. Inside it,
`apply_llm` asks `replicas_for(name, spec)` for a model's replicas: the first stage that
actually runs with that model starts them (a skipped or empty stage starts nothing), later
stages get the same ones. `enter_stage(name)` releases every model whose last user in the plan
has finished, so no engine holds its CPUs or GPUs through stages that no longer need it;
leaving the scope (the job ends or fails) releases the rest and waits until they are gone.

Neither starting nor releasing holds the job up. A stage's plan reads and renders its rows
while its engine loads, and its first requests wait in the actor until the engine is up. A
released engine shuts down beside the next stage; a model started later waits for it first.

A replica is a `synthmix.pipeline.llm.engine_replica.Replica` in an async Ray actor; Ray Data tasks send
it batches (`generate`), and batches in flight at once share its continuous batching.
Outside a job scope, or with SYNTHMIX_ENGINES=per_stage, `apply_llm` starts an engine per call
through Ray Data's LLM processor instead, as before (see docs/engines.md).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from synthmix.pipeline.llm.engine_replica import Replica, ReplicaFailed, ReplicaSettings, StageCounters, build_vllm_backend
from synthmix.pipeline.llm.request_columns import ROW, SAMPLING, SCHEMA, TOO_LONG, UNSENT, Replies, as_messages

# "per_stage" brings back one engine per stage (to compare, or to fall back); anything else shares.
MODE_ENV = "SYNTHMIX_ENGINES"
PER_STAGE = "per_stage"

Log = Callable[[str], None]
# How often a starting engine is reported as still starting.
STARTUP_REPORT_S = 30
# How often a job reports what its engines have generated: a stage's one task may hold all its
# rows, so commits (the runner's progress lines) can be minutes apart.
GENERATION_REPORT_S = 30
# Read by the worker process Ray starts for a replica (see _create_replica).
WORKER_NICENESS_ENV = "RAY_worker_niceness"
# Builds a replica's engine inside its actor. Tests replace it with a fake engine (one that
# answers at once, hangs or dies), so the pool's lifecycle is tested without vLLM start-ups.
BACKEND_FACTORY: Callable[[ReplicaSettings], Any] = build_vllm_backend


@dataclass(frozen=True)
class ReplicaPlacement:
    """Where one replica's actor goes (an engine's `replica_placement`): its CPUs and GPUs, or,
    with `bundles`, a placement group of them that the actor and its engine's workers share."""

    num_cpus: float
    num_gpus: int = 0
    bundles: list[dict[str, float]] | None = None


@dataclass(frozen=True)
class Reservation:
    """What one model's replicas hold while the model is up."""

    model: str
    replicas: int
    cpus_per_replica: float
    gpus_per_replica: int
    setting: str  # the job-file key that decides cpus_per_replica

    @property
    def cpus(self) -> float:
        return self.replicas * self.cpus_per_replica

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    def describe(self) -> str:
        return f"model '{self.model}' {self.cpus:g} CPUs ({self.replicas} replica(s) x {self.setting} {self.cpus_per_replica:g})"


class ReplicaEngine(Protocol):
    """What the pool asks of an engine whose replicas it starts (synthmix.pipeline.llm.engines.base.PooledEngine).

    Named here, not imported: the engines run their batches through the pool, so the pool
    importing them back would close a cycle."""

    def replica_settings(self, name: str, spec: Any, index: int) -> ReplicaSettings: ...

    def replica_placement(self, spec: Any) -> ReplicaPlacement: ...

    def replica_backend(self, default: Callable[[ReplicaSettings], Any]) -> Callable[[ReplicaSettings], Any]: ...

    def reservation(self, name: str, spec: Any) -> Reservation | None: ...

    def dtype(self, spec: Any) -> str | None: ...


@dataclass
class StartedModel:
    spec: Any  # the model's validated `models:` entry
    reservation: Reservation | None  # what its replicas hold on the cluster
    replicas: list[Any]  # Ray actor handles
    placement_groups: list[Any]
    started_by: str | None
    began: float  # time.perf_counter() when its replicas were created
    # Set once every replica is up (startup_s says how long that took) or failed to start.
    settled: threading.Event = field(default_factory=threading.Event)
    startup_s: float | None = None
    released: bool = False
    dtype: str | None = None  # the number format its engine computes in (the engine's `dtype`)
    # Per stage: its counters at the last progress line, and when (the engine's start before the first).
    reported: dict[str | None, tuple[StageCounters, float]] = field(default_factory=dict)


@dataclass
class EnginePool:
    """The models started in one job, and which stage uses each last."""

    last_user: dict[str, int]  # model name -> index in `order` of the last stage using it
    order: list[str]  # stage names, in plan order
    log: Log
    backend_factory: Callable[[ReplicaSettings], Any] = build_vllm_backend
    started: dict[str, StartedModel] = field(default_factory=dict)
    current_stage: str | None = None
    # stage -> model -> start-up seconds spent in that stage (0.0: the model was already up).
    startups: dict[str, dict[str, float]] = field(default_factory=dict)
    # Every start, in order (model, stage): what tests and benchmarks count.
    start_log: list[tuple[str, str | None]] = field(default_factory=list)
    # (stage, model) -> the model's engine seconds when the stage first asked for it.
    engine_baselines: dict[tuple[str | None, str], float] = field(default_factory=dict)
    _stop_reporting: threading.Event = field(default_factory=threading.Event)
    _releasing: list[threading.Thread] = field(default_factory=list)  # shutdowns under way

    def replicas_for(self, name: str, spec: Any, engine: ReplicaEngine) -> list[Any]:
        """The model's replicas; on first use, started by `engine` in the background (see `_watch_start`)."""
        model = self.started.get(name)
        if model is None:
            model = self.started[name] = self._start(name, spec, engine)
            self.engine_baselines.setdefault((self.current_stage, name), 0.0)
        else:
            self.engine_baselines.setdefault((self.current_stage, name), self.engine_seconds(name) or 0.0)
            self.log(f"[{self.current_stage}] model {name}: reusing its engine (started by {model.started_by})")
            if self.current_stage is not None:
                # A stage that calls again (answer's later rounds) keeps the start-up it paid.
                self.startups.setdefault(self.current_stage, {}).setdefault(name, 0.0)
        return model.replicas

    def _start(self, name: str, spec: Any, engine: ReplicaEngine) -> StartedModel:
        self.wait_for_releases()
        self.log(f"[{self.current_stage}] model {name}: starting {spec.replicas} engine replica(s)")
        began = time.perf_counter()
        actors, groups = [], []
        for index in range(spec.replicas):
            actor, group = _create_replica(name, spec, index, engine, engine.replica_backend(self.backend_factory))
            actors.append(actor)
            groups.append(group)
        self.start_log.append((name, self.current_stage))
        model = StartedModel(spec, engine.reservation(name, spec), actors, groups, self.current_stage, began, dtype=engine.dtype(spec))
        threading.Thread(target=self._watch_start, args=(name, model), name=f"engine-start-{name}", daemon=True).start()
        return model

    def _watch_start(self, name: str, model: StartedModel) -> None:
        """Wait for the replicas to come up, saying so every STARTUP_REPORT_S (minutes on a loaded
        machine or for a big model are not a hang), then record the start-up seconds.

        The stage does not wait here: its Ray Data plan starts meanwhile, and its calls queue in
        the actors until they are up. A replica that fails to start fails those calls, and so the
        stage, with the model named (`send_batch`)."""
        import ray

        stage = model.started_by
        try:
            waiting = [actor.ready.remote() for actor in model.replicas]
            while ray.wait(waiting, num_returns=len(waiting), timeout=STARTUP_REPORT_S)[1]:
                if model.released:  # while starting
                    break
                self.log(f"[{stage}] model {name}: engine still starting, {time.perf_counter() - model.began:.0f} s")
            else:
                ray.get(waiting)
                model.startup_s = time.perf_counter() - model.began
                if stage is not None:
                    self.startups.setdefault(stage, {})[name] = round(model.startup_s, 3)
                self.log(f"[{stage}] model {name}: engine up in {model.startup_s:.1f} s; generating")
        except Exception as error:  # noqa: BLE001 - reported here, raised by the stage's calls
            if not model.released:
                self.log(f"[{stage}] {start_failure(name, error)}")
        finally:
            model.settled.set()

    def engine_seconds(self, name: str) -> float | None:
        """Seconds the model's replicas have spent generating, summed over them; None while it is
        not up (or a replica does not answer)."""
        import ray

        model = self.started.get(name)
        if model is None or model.startup_s is None:
            return None
        try:
            return sum(ray.get([replica.busy_seconds.remote() for replica in model.replicas], timeout=10))
        except Exception:  # noqa: BLE001 - a dead replica fails its stage; the figure is just missing
            return None

    def stage_engine_usage(self, stage: str) -> dict[str, dict[str, float | str | None]]:
        """Per model the stage used: `engine_s`, the seconds its replicas generated since the stage
        first asked for it (start-up apart; the stage's own work, as stages run one at a time),
        and the `dtype` it computes in."""
        usage: dict[str, dict[str, float | str | None]] = {}
        for (user, name), baseline in self.engine_baselines.items():
            now = self.engine_seconds(name) if user == stage else None
            if now is not None:
                usage[name] = {"engine_s": round(now - baseline, 3), "dtype": self.started[name].dtype}
        return usage

    def wait_for_starts(self, stage: str) -> None:
        """Until every model that `stage` started is up or has failed to start."""
        for model in list(self.started.values()):
            if model.started_by == stage:
                model.settled.wait()

    def report_generation(self) -> None:
        """One progress line per started model and stage whose requests moved since the last one:
        requests answered, generating and waiting, tokens generated so far (unfinished requests'
        included), and the rate over the interval since that stage's last line."""
        import ray

        for name, model in list(self.started.items()):
            if model.startup_s is None:  # still starting: its calls would wait behind the start
                continue
            try:
                per_replica = ray.get([replica.counters.remote() for replica in model.replicas], timeout=10)
            except Exception:  # noqa: BLE001 - a dead replica fails its stage; the report just skips it
                continue
            now = time.perf_counter()
            for stage, counters in sorted(sum_counters(per_replica).items(), key=lambda item: str(item[0])):
                last, last_at = model.reported.get(stage, (StageCounters(), model.began + model.startup_s))
                if counters == last:
                    continue
                interval = max(now - last_at, 1e-9)
                rate = (counters.tokens - last.tokens) / interval
                self.log(
                    f"[{stage}] model {name}: {counters.answered} requests answered, {counters.generating} generating, "
                    f"{counters.waiting} waiting; {counters.tokens} tokens generated (unfinished requests' included), "
                    f"{rate:.0f} tok/s over the last {interval:.0f} s"
                )
                model.reported[stage] = (counters, now)

    def report_every(self, seconds: float) -> None:
        """Until the pool closes: `report_generation` every `seconds`, in a daemon thread."""

        def loop() -> None:
            while not self._stop_reporting.wait(seconds):
                if self.started:
                    self.report_generation()

        threading.Thread(target=loop, name="engine-progress", daemon=True).start()

    def enter_stage(self, stage: str) -> None:
        """Called before each stage of the plan: models whose last user came before it go."""
        self.current_stage = stage
        if stage not in self.order:
            return
        position = self.order.index(stage)
        for name in [name for name in self.started if self.last_user.get(name, -1) < position]:
            self.release(name)

    def release(self, name: str) -> None:
        """Let the model go, in the background: vLLM's shutdown took 4.6-4.9 s on CPU here (its
        grace period for the engine-core process is 5 s), time the next stages need not wait for. A model
        started later waits for it (`_start`), so two never hold the same CPUs or GPUs."""
        model = self.started.pop(name, None)
        if model is None:
            return
        model.released = True
        self.log(f"model {name}: releasing its engine")
        thread = threading.Thread(target=self._shut_down, args=(name, model), name=f"engine-release-{name}", daemon=True)
        thread.start()
        self._releasing.append(thread)

    def _shut_down(self, name: str, model: StartedModel) -> None:
        import ray

        began = time.perf_counter()
        # A clean shutdown stops vLLM's engine-core process; the kill then frees the resources.
        # (A replica still starting would take the shutdown only once it is up: it is just killed.)
        if model.startup_s is not None:
            with contextlib.suppress(Exception):
                ray.get([actor.shutdown.remote() for actor in model.replicas], timeout=60)
        _kill(model.replicas, model.placement_groups)
        self.log(f"model {name}: engine released ({time.perf_counter() - began:.1f} s)")

    def wait_for_releases(self) -> None:
        while self._releasing:
            self._releasing.pop().join()

    def close(self) -> None:
        self._stop_reporting.set()
        for name in list(self.started):
            self.release(name)
        self.wait_for_releases()


_ACTIVE: EnginePool | None = None


def active_pool() -> EnginePool | None:
    """The job's pool, or None outside a job (or when engines are per stage)."""
    return _ACTIVE


@contextlib.contextmanager
def job_engines(stage_models: list[tuple[str, tuple[str, ...]]], log: Log) -> Iterator[EnginePool | None]:
    """Scope of a job's shared engines; `stage_models` is (stage, models it uses) in plan order."""
    global _ACTIVE
    if os.environ.get(MODE_ENV) == PER_STAGE or _ACTIVE is not None:
        # Per-stage engines asked for, or an outer scope (a job inside a job's scope) owns them.
        yield _ACTIVE
        return
    last_user = {model: index for index, (_, models) in enumerate(stage_models) for model in models}
    pool = EnginePool(last_user=last_user, order=[stage for stage, _ in stage_models], log=log, backend_factory=BACKEND_FACTORY)
    _ACTIVE = pool
    pool.report_every(GENERATION_REPORT_S)
    try:
        yield pool
    finally:
        _ACTIVE = None
        pool.close()


def sum_counters(per_replica: list[dict[str | None, StageCounters]]) -> dict[str | None, StageCounters]:
    """The replicas' counters added up, per stage."""
    total: dict[str | None, StageCounters] = {}
    for counters in per_replica:
        for stage, counted in counters.items():
            total[stage] = total.get(stage, StageCounters()).add(counted)
    return total


def engines_held() -> str:
    """What the job's engines hold on the cluster now, for a line about resources."""
    held = [model.reservation for model in list(_ACTIVE.started.values())] if _ACTIVE is not None else []
    return "the job's engines hold " + ("; ".join(found.describe() for found in held if found is not None) or "nothing")


def enter_stage(stage: str) -> None:
    if _ACTIVE is not None:
        _ACTIVE.enter_stage(stage)


def stage_startups(stage: str) -> dict[str, float]:
    """Start-up seconds per model spent in `stage` of the current job (0.0 where reused)."""
    if _ACTIVE is None:
        return {}
    _ACTIVE.wait_for_starts(stage)
    return dict(_ACTIVE.startups.get(stage, {}))


def stage_engine_usage(stage: str) -> dict[str, dict[str, float | str | None]]:
    """Engine seconds and dtype per model that `stage` of the current job used (see EnginePool)."""
    if _ACTIVE is None:
        return {}
    _ACTIVE.wait_for_starts(stage)
    return _ACTIVE.stage_engine_usage(stage)


def start_failure(name: str, error: BaseException) -> str:
    """What the log and the failed stage say of a model whose engine did not start."""
    return f"model '{name}': its engine failed to start: {error}"


def _create_replica(name: str, spec: Any, index: int, engine: ReplicaEngine, backend_factory: Callable) -> tuple[Any, Any]:
    """A replica actor, and its placement group where the engine's placement names bundles."""
    import ray

    settings = engine.replica_settings(name, spec, index)
    placement = engine.replica_placement(spec)
    options: dict[str, Any] = {
        "name": None,
        # Async actor: every batch sent to it waits in the event loop, so all reach the engine at once.
        "max_concurrency": 1000,
        # Ray starts workers at niceness 15 so its control plane stays responsive; an engine is the
        # job's main work, and niced it loses every contested core step to Ray's own processes
        # (vLLM's compute threads wait for the slowest of them). Ray's job supervisor is unniced the same way.
        "runtime_env": {"env_vars": {**settings.env, WORKER_NICENESS_ENV: "0"}},
        # A replica that dies is not restarted behind the stage's back: the stage fails clearly.
        "max_restarts": 0,
        "num_cpus": placement.num_cpus,
        "num_gpus": placement.num_gpus or None,
    }
    group = None
    if placement.bundles:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = ray.util.placement_group(placement.bundles, strategy="PACK")
        ray.get(group.ready())
        options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)
    actor_class = ray.remote(Replica)
    options = {key: value for key, value in options.items() if value is not None}
    return actor_class.options(**options).remote(settings, backend_factory), group


def _kill(actors: list[Any], groups: list[Any]) -> None:
    import ray

    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    for group in groups:
        if group is not None:
            with contextlib.suppress(Exception):
                ray.util.remove_placement_group(group)


def send_batch(requests: list[dict[str, Any]], *, replicas: list[Any], model_name: str, batch_size: int, stage: str | None = None) -> list[dict[str, Any]]:
    """In a Ray Data task: the requests to the model's replicas, `batch_size` per call and every
    call at once, spread over the replicas in turn; the replies back in the requests' order.

    All calls at once, because each replica's engine batches whatever waits in it continuously:
    sent one after another, it would idle at the end of every call, waiting for its longest answer.
    A replica that died or hung fails the task (and so the stage) with the model named; a
    request the engine refused comes back as a reply with `error`, a row error. `stage` names
    the sender in the replica's progress counters.
    """
    import ray

    if not requests:
        return []
    first = random.randrange(len(replicas))
    calls = [
        replicas[(first + index) % len(replicas)].generate.remote(requests[start : start + batch_size], stage)
        for index, start in enumerate(range(0, len(requests), batch_size))
    ]
    try:
        return [reply for replies in ray.get(calls) for reply in replies]
    except ray.exceptions.RayActorError as error:
        if error.actor_init_failed:
            raise ReplicaFailed(start_failure(model_name, error)) from None
        raise ReplicaFailed(f"model '{model_name}': its engine replica died mid-stage ({type(error).__name__}); rerun the stage to resume") from None
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, ReplicaFailed):
            raise ReplicaFailed(str(cause)) from None
        raise


_REPLY = "__synthmix_reply"  # set by generate_on_replicas: the shared engine's reply
_REPLY_TYPE = pa.struct(
    [
        pa.field("text", pa.string()),
        pa.field("error", pa.string()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("generated_tokens", pa.int64()),
        pa.field("top_logprobs", pa.string()),
    ]
)


def generate_on_replicas(batch: pa.Table, *, replicas: list[Any], model_name: str, messages_column: str, batch_size: int, stage: str | None = None) -> pa.Table:
    """Ray Data task: the rows' requests to the job's engine for the model, `batch_size` per
    call, all calls at once (`send_batch`); each reply added as one struct column."""
    messages = pc.struct_field(batch.column(ROW), messages_column).to_pylist()
    # A row that asks nothing, or whose prompt was counted too long, is never sent (finish_rows
    # gives the latter its reason).
    unsent, too_long = batch.column(UNSENT).to_pylist(), batch.column(TOO_LONG).to_pylist()
    sent = [index for index, (skip, problem) in enumerate(zip(unsent, too_long, strict=True)) if not skip and problem is None]
    samplings, schemas = batch.column(SAMPLING).to_pylist(), batch.column(SCHEMA).to_pylist()
    requests = [{"messages": as_messages(messages[index]), "sampling": samplings[index], "schema": schemas[index]} for index in sent]
    nothing = {"text": None, "error": None, "prompt_tokens": None, "generated_tokens": 0, "top_logprobs": None}
    replies: list[dict[str, Any]] = [nothing] * batch.num_rows
    for index, reply in zip(sent, send_batch(requests, replicas=replicas, model_name=model_name, batch_size=batch_size, stage=stage), strict=True):
        replies[index] = reply
    return batch.append_column(_REPLY, pa.array(replies, _REPLY_TYPE))


def read_replica_replies(batch: pa.Table) -> Replies:
    """The replies `generate_on_replicas` added."""
    return Replies.from_records(batch.column(_REPLY).to_pylist())
