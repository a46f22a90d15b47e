"""What a stage is: declarations the runner checks before Ray starts, and lifecycle hooks.

A stage class declares its name, the columns it reads and writes, its parameters (a pydantic
model of its job-file section), its resources, the prompt templates it uses, how it executes
and what it publishes outside its own folder. The runner does the rest: reading inputs,
skipping committed work, splitting accepted rows from rejects, counting, atomic writes and
manifests. A stage never counts by hand and never drops a row: it returns every row, with
`reject_reason` set on the ones it rejects.

How a stage executes is declared, never inferred (`execution`):
- `Execution.BATCHES`: a Ray Data plan. `expand_input(dataset)` and `prepare(dataset)` do
  dataset-level work (an LLM processor), then `transform(batch)` maps each batch, committed as
  a unit, so an interrupted stage resumes where it stopped. Sources and model stages run so.
  A stage may pass over its input in rounds: after each pass, `next_round()` on the driver says
  whether another is needed (answer: more samples where a vote is not settled).
- `Execution.FILE_TASKS`: plain Ray tasks over the upstream part files (pipeline/file_tasks.py),
  for stages with no engine and no dataset-level work; `transform` per slice, each a unit.
- `Execution.GLOBAL` (`GlobalStage`): `run(dataset)` needs all rows at once (dedup, mix); it
  is recomputed whole.

Lifecycle, in order ("driver": the process running the job; "worker": a Ray worker process):
1. driver, graph build: `__init__(params, context)`; declarations checked; `publishes()`.
2. driver, once per attempt, when there is input: `setup_on_driver()` (check the input
   schema, build an index that travels to the workers with the stage, read a few examples).
3. driver: `expand_input`/`prepare` (BATCHES; again after each `next_round()` that asks for it),
   `plan_file_tasks` (FILE_TASKS) or `run` (GLOBAL).
4. worker: `setup()` once per process and attempt, then `transform(batch)` or `commit_files`.
5. worker: `teardown()` when the process lets go of the attempt's stage (pipeline/unit_commit.py).
6. driver: `finalize(stage_dir)` in its own `StageDir`, and in the paths `publishes()` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import Lineage
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.unit_commit import commit_in_slices

if TYPE_CHECKING:
    import ray.data


def with_columns(table: pa.Table, values: dict[str, pa.Array]) -> pa.Table:
    """`table` with each named column replaced in place, or appended when it is new."""
    for name, array in values.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    return table


class Execution(StrEnum):
    """How the runner executes a stage; each stage class declares one."""

    BATCHES = "batches"  # a Ray Data plan: expand_input, prepare, then transform per batch
    FILE_TASKS = "file_tasks"  # plain Ray tasks over the upstream part files, no dataset-level work
    GLOBAL = "global"  # run(dataset) sees every row; recomputed whole after an interruption


class NoParams(BaseModel):
    """For stages without parameters: any key in their section is a typo."""

    model_config = ConfigDict(extra="forbid")


class StageParams(BaseModel):
    """Base of every stage's parameter model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Resources:
    """What one worker of the stage needs. Fractional CPUs keep small pools from starving the plan."""

    num_cpus: float = 0.5
    num_gpus: float = 0
    concurrency: int | None = None  # actors; None: Ray Data decides (tasks)
    batch_size: int = 256


class ModelSettings(Protocol):
    """A model the job declares, as the stage core sees it: carried from the job to the stages,
    which hand it to the engine layer (`synthmix.pipeline.llm.engines` defines the kinds). Typed this
    thinly so that the core does not import the engine layer it sits under."""

    @property
    def engine(self) -> str: ...


@dataclass(frozen=True)
class StageContext:
    """What a stage may know about the job beyond its own section; picklable, sent to workers."""

    run_dir: Path
    stage_name: str
    models: dict[str, ModelSettings] = field(default_factory=dict)
    job_dir: Path = Path(".")  # the job file's folder, for resolving relative paths
    # Schema of the input rows (None for source stages), so carried columns keep their types.
    input_schema: pa.Schema | None = None
    # Rows the stage will read (from the upstream part files' metadata; None for source stages).
    input_rows: int | None = None
    upstream_dirs: dict[str, Path] = field(default_factory=dict)
    # What the input stage publishes outside its folder (a tokenize stage: its shard folder).
    input_publishes: tuple[Path, ...] = ()


class Stage:
    """Streaming stage: subclass, declare, implement `transform` (and `read_input` for a source)."""

    name: ClassVar[str]
    input_columns: ClassVar[tuple[str, ...]] = ()
    # Columns this stage writes (new or replaced). With `carries_input`, every input column is
    # kept as well, so downstream stages may read them.
    output_fields: ClassVar[tuple[pa.Field, ...]] = ()
    carries_input: ClassVar[bool] = True
    lineage: ClassVar[Lineage] = Lineage.SAME_ROW
    params: ClassVar[type[BaseModel]] = NoParams
    resources: ClassVar[Resources] = Resources()
    prompts: ClassVar[tuple[str, ...]] = ()
    # A source stage reads files, not an upstream stage.
    is_source: ClassVar[bool] = False
    # Resumable: committed batches are not redone after an interruption.
    resumable: ClassVar[bool] = True
    execution: ClassVar[Execution] = Execution.BATCHES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("is_base", False):
            return
        if not isinstance(cls.__dict__.get("name", getattr(cls, "name", None)), str):
            raise TypeError(f"stage class {cls.__name__} must declare `name = '<folder name>'`")
        names = [f.name for f in cls.output_fields]
        if len(names) != len(set(names)):
            raise TypeError(f"stage {cls.name}: output_fields repeats a column: {names}")
        for reserved in (contracts.REJECT_REASON, contracts.REJECT_DETAIL):
            if reserved in names:
                raise TypeError(f"stage {cls.name}: do not declare {reserved}; the runner adds it to rejects")
        _check_execution_declaration(cls)

    def __init__(self, params: BaseModel, context: StageContext) -> None:
        self.params = params
        self.context = context

    # --- declarations the graph uses -------------------------------------------------------
    @classmethod
    def output_columns(cls, available: tuple[str, ...]) -> tuple[str, ...]:
        """Columns downstream stages can read, given the columns this stage receives."""
        own = tuple(f.name for f in cls.output_fields)
        if not cls.carries_input:
            return own
        return tuple(name for name in available if name not in own) + own

    def prompt_ids(self) -> tuple[str, ...]:
        """Template ids this stage renders; their file bytes join its fingerprint."""
        return self.prompts

    def models_used(self) -> tuple[str, ...]:
        """Names of the job's models this stage calls; the graph checks they are defined."""
        return ()

    def fingerprint_extra(self) -> dict[str, Any]:
        """Anything else that decides this stage's output (e.g. source files' sizes and mtimes)."""
        return {}

    def publishes(self) -> tuple[Path, ...]:
        """Absolute paths outside its own folder that `finalize` writes (tokenize: its shard
        folder; mix: `mix.json` in it). Only this stage writes or removes them; the graph
        refuses two stages publishing one path, and the runner withdraws them when a rerun
        upstream leaves this stage stale. Default: nothing."""
        return ()

    def publications_hold(self) -> bool:
        """Whether what this (fresh) stage published still agrees with its input, after a stage
        upstream was rerun with an unchanged fingerprint; if not, the runner withdraws it."""
        return True

    def check_downstream(self, stages: Sequence[Stage]) -> None:
        """Raise `ConfigError` when the stages reading this one's rows (directly or through others,
        in plan order) do not fit what this stage was configured for. Default: anything fits."""

    def check_execution(self) -> None:
        """Declarations that depend on the job's parameters, checked when the graph is built."""
        if self.execution is Execution.FILE_TASKS and (self.models_used() or self.resources.concurrency):
            raise TypeError(
                f"stage {self.name} runs as file tasks but calls a model or asks for an actor pool; "
                f"declare `execution = Execution.BATCHES`, where engines and actors run"
            )

    # --- runtime ---------------------------------------------------------------------------
    def output_schema(self) -> pa.Schema:
        """Schema of accepted rows; part files are cast to it so every file agrees."""
        own = pa.schema(self.output_fields)
        if not self.carries_input or self.context.input_schema is None:
            return own
        kept = [f for f in self.context.input_schema if f.name not in own.names and not f.name.startswith("__")]
        return pa.schema(kept + list(own))

    def read_input(self) -> ray.data.Dataset:
        """A source stage's input rows; each must have a stable, unique `id`."""
        raise NotImplementedError(f"stage {self.name} is a source and must implement read_input()")

    def setup_on_driver(self) -> None:
        """Once per attempt on the driver, before any work is submitted and only when there is
        input: check the input schema, build what travels to the workers with the stage."""

    def expand_input(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        """BATCHES only. Turn input rows into work rows before committed ones are skipped (e.g.
        one row per answer sample, each with its own id), so a resume skips exactly the committed work."""
        return dataset

    def prepare(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        """BATCHES only. Dataset-level work before `transform` (e.g. an LLM processor); must keep the `id` column."""
        return dataset

    def next_round(self) -> str | None:
        """BATCHES only. On the driver, once every unit of a pass over the input is committed:
        None when the stage is done, or a line for the log saying what another pass over the same
        input (expand_input, prepare, transform; committed work rows skipped as always) will do.
        The stage plans that pass from its own committed units, so a resumed attempt plans the
        same. Default: one pass."""
        return None

    def plan_file_tasks(self, files: list[Path], slots: int) -> list[list[Path]]:
        """FILE_TASKS only: the input part files of each task. `slots` is how many tasks the
        cluster runs at once. Default: one task per file."""
        return [[path] for path in files]

    def commit_files(self, files: list[Path], *, task_index: int, done_ids: pa.Array | None) -> pa.Table:
        """FILE_TASKS only. One task, in a worker, on a set-up stage: commit the files' rows not
        in `done_ids` as units; one counts row per unit. Default: slices of `batch_size` rows."""
        return commit_in_slices(self, files, done_ids)

    def setup(self) -> None:
        """Load per-worker state once per process and attempt (models, indexes), before the first batch."""

    def teardown(self) -> None:
        """Release what `setup` loaded; called in the worker when its process lets go of the attempt's stage."""

    def transform(self, batch: pa.Table) -> pa.Table:
        """Map input rows to output rows; a rejected row has `reject_reason` set, never disappears."""
        raise NotImplementedError(f"stage {self.name} must implement transform(batch)")

    def finalize(self, stage_dir: StageDir) -> dict[str, Any]:
        """On the driver, after every unit is committed: whole-stage work in `stage_dir` (its own
        folder) and in the paths `publishes()` names, nowhere else. Returns manifest extras."""
        return {}


class GlobalStage(Stage):
    """A stage that needs every row at once; recomputed whole when interrupted."""

    is_base: ClassVar[bool] = True
    resumable: ClassVar[bool] = False
    execution: ClassVar[Execution] = Execution.GLOBAL

    def run(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        """All rows in, all rows out, rejects marked with `reject_reason`."""
        raise NotImplementedError(f"stage {self.name} must implement run(dataset)")

    def transform(self, batch: pa.Table) -> pa.Table:
        return batch


# Hooks that only one execution calls: overriding one under another would silently do nothing.
_HOOKS_OF = {
    "expand_input": Execution.BATCHES,
    "prepare": Execution.BATCHES,
    "next_round": Execution.BATCHES,
    "plan_file_tasks": Execution.FILE_TASKS,
    "commit_files": Execution.FILE_TASKS,
}


def _check_execution_declaration(cls: type[Stage]) -> None:
    """Misdeclared stages fail when their class is defined, saying what to write instead."""
    execution = cls.execution
    if not isinstance(execution, Execution):
        raise TypeError(f"stage {cls.name}: `execution` must be an Execution, not {execution!r}")
    if (execution is Execution.GLOBAL) != issubclass(cls, GlobalStage):
        raise TypeError(f"stage {cls.name}: a stage that needs every row at once subclasses GlobalStage, whose execution is GLOBAL")
    if cls.is_source and execution is not Execution.BATCHES:
        raise TypeError(f"stage {cls.name}: a source stage reads its rows with read_input() into a Ray Data plan; declare `execution = Execution.BATCHES`")
    for hook, needs in _HOOKS_OF.items():
        if execution is not needs and getattr(cls, hook) is not getattr(Stage, hook):
            raise TypeError(
                f"stage {cls.name} overrides {hook}(), which only {needs.value} execution calls, but declares "
                f"`execution = Execution.{execution.name}`; declare Execution.{needs.name}, or move driver-side work to setup_on_driver()"
            )
