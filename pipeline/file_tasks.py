"""Engine-free stages as plain Ray tasks over their input part files.

Ray Data's streaming executor starts a plan with one task, adds more only after the first
outputs, and leaves a scheduling gap after each task: on 2 CPUs that cost the CPU-bound
tokenize stage about half its cores (measured: one worker busy alone for the first 2.7 s of a
6 s stage). A stage that holds no engine and does no dataset-level work needs none of what Ray
Data adds (actor pools, backpressure between operators): it declares
`execution = Execution.FILE_TASKS` and the runner submits plain tasks instead: the stage splits its input files into tasks (`Stage.plan_file_tasks`), and each task
commits its files as units (`Stage.commit_files`). Ray retries a task whose worker died; a
retried task rewrites the same units under the same names, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from synthmix.pipeline.stage import Stage
from synthmix.pipeline.storage import RemotePath
from synthmix.pipeline.unit_commit import concat_counts, worker_stage

# How often the driver reports while no task has finished (a task may run for minutes).
PROGRESS_INTERVAL_S = 5.0


def _run_task(stage: Stage, files: list[Path | RemotePath], task_index: int, attempt_key: str, done_ids: pa.Array | None) -> pa.Table:
    instance = worker_stage(stage, attempt_key)
    return instance.commit_files(files, task_index=task_index, done_ids=done_ids)


def run_file_tasks(files: list[Path], stage: Stage, *, attempt_key: str, done_ids: pa.Array | None) -> Iterator[pa.Table]:
    """Submit the stage's tasks; yield each task's counts as it finishes, and an empty table
    every PROGRESS_INTERVAL_S while none does, so the caller can still report."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1.0)
    slots = max(1, int(cpus // stage.resources.num_cpus)) if stage.resources.num_cpus else len(files)
    tasks = stage.plan_file_tasks(files, slots)
    remote = ray.remote(_run_task).options(num_cpus=stage.resources.num_cpus, num_gpus=stage.resources.num_gpus or None)
    # Put once: every task would otherwise carry its own copy of the stage (and its indexes).
    stage_ref = ray.put(stage)
    done_ref = ray.put(done_ids) if done_ids is not None and len(done_ids) else None
    # The path objects travel as they are: an s3:// one carries its endpoint into the worker.
    pending = [remote.remote(stage_ref, list(group), index, attempt_key, done_ref) for index, group in enumerate(tasks) if group]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=PROGRESS_INTERVAL_S)
        if not ready:
            yield concat_counts([])
        for ref in ready:
            yield ray.get(ref)
