"""Saying so when a stage's work waits for resources: no silent hang.

Tasks and actors that Ray cannot place yet are its pending resource demand (what the autoscaler
reads from the GCS, available without the dashboard). While a stage runs, `ResourceWatch` polls
that demand in a daemon thread of the driver. When something has waited for `bound_s` and the
stage committed nothing meanwhile, it logs what waits (the resource shapes and counts), what Ray
has free, and what this job's engines hold, then again each time the wait doubles (120 s,
240 s, ...) while it lasts:

    [answer] waiting 60 s for resources: 1 task(s) or actor(s) asking {CPU: 0.25}; Ray has 0 of
    2 CPUs free; the job's engines hold model 'm' 2 CPUs (1 replica(s) x cpus_per_gpu 2)

What holds the rest is running tasks: the stage's own (a global stage queues more tasks than
there are CPUs, and commits only at its end) or other jobs'.

`synthmix.pipeline.llm.engine_resources` refuses most such jobs before they start; this covers the rest
(other jobs on a shared cluster, actors of a stage's own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# Seconds something may wait for resources, with no commit meanwhile, before the log says so.
RESOURCE_WAIT_S = 60.0
_POLL_S = 5.0

Log = Callable[[str], None]
# [(resource shape, how many wait for it)]
Demand = list[tuple[dict[str, float], int]]


def pending_demand() -> Demand:
    """Tasks and actors Ray has not placed yet, by resource shape, from the GCS."""
    import ray
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(ray.get_runtime_context().gcs_address)
    demands = status.resource_demands
    waiting: Demand = []
    for demand in [*demands.ray_task_actor_demand, *demands.placement_group_demand]:
        waiting += [(dict(request.bundle), request.count) for request in demand.bundles_by_count]
    return waiting


def free_resources() -> str:
    import ray

    total, free = ray.cluster_resources(), ray.available_resources()
    shown = [name for name in ("CPU", "GPU") if total.get(name)]
    return ", ".join(f"{free.get(name, 0):g} of {total[name]:g} {name}s free" for name in shown) or "no CPUs"


class ResourceWatch:
    """Polls the pending demand while one stage runs; see the module doc."""

    def __init__(
        self,
        stage: str,
        log: Log,
        *,
        held: Callable[[], str],
        bound_s: float = RESOURCE_WAIT_S,
        poll_s: float = _POLL_S,
        demand: Callable[[], Demand] = pending_demand,
        free: Callable[[], str] = free_resources,
    ) -> None:
        self.stage = stage
        self.log = log
        self.held = held
        self.bound_s = bound_s
        self.poll_s = poll_s
        self.demand = demand
        self.free = free
        self._waiting_since: float | None = None
        self._next_report_s = bound_s  # of waiting: the bound, then each time the wait doubles
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def progressed(self) -> None:
        """The stage committed work: whatever waits now has not waited without progress."""
        if self._waiting_since is not None:
            self._waiting_since = time.monotonic()
            self._next_report_s = self.bound_s

    def check(self, now: float) -> str | None:
        """One poll at `now`: the line to log, if something has waited for `bound_s` without progress."""
        waiting = self.demand()
        if not waiting:
            self._waiting_since, self._next_report_s = None, self.bound_s
            return None
        if self._waiting_since is None:
            self._waiting_since = now
        waited = now - self._waiting_since
        if waited < self._next_report_s:
            return None
        self._next_report_s = 2 * waited
        asked = "; ".join(f"{count} task(s) or actor(s) asking {_shape(bundle)}" for bundle, count in waiting)
        return f"[{self.stage}] waiting {waited:.0f} s for resources: {asked}; Ray has {self.free()}; {self.held()}"

    def __enter__(self) -> ResourceWatch:
        self._thread = threading.Thread(target=self._loop, name=f"resource-watch-{self.stage}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                line = self.check(time.monotonic())
            except Exception:  # noqa: BLE001 - a failed poll (Ray going down with the job) only skips a report
                continue
            if line is not None and not self._stop.is_set():
                self.log(line)


def _shape(bundle: dict[str, float]) -> str:
    return "{" + ", ".join(f"{name}: {amount:g}" for name, amount in sorted(bundle.items())) + "}"
