"""What a stage is: declarations the runner checks before Ray starts, and one batch method.

A stage class declares its name, the columns it reads and writes, its parameters (a pydantic
model of its job-file section), its resources and the prompt templates it uses. The runner
does the rest: reading inputs, skipping committed work, splitting accepted rows from rejects,
counting, atomic writes and manifests. A stage never counts by hand and never drops a row: it
returns every row, with `reject_reason` set on the ones it rejects.

Two shapes:
- `Stage` (streaming): `transform(batch)` maps one batch of input rows to output rows. Work
  is committed per batch, so an interrupted stage resumes where it stopped.
- `GlobalStage`: `run(dataset)` needs all rows at once (dedup, mix); it is recomputed whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from pipeline import columns

if TYPE_CHECKING:
    import ray.data

    from pipeline.models import ModelSpec


def with_reject_columns(schema: pa.Schema) -> pa.Schema:
    """`schema` with every field nullable plus `reject_reason` and `reject_detail`: the shape of
    a stage's returned rows and of its rejects files."""
    return pa.schema(
        [field.with_nullable(True) for field in schema]
        + [pa.field(columns.REJECT_REASON, pa.string()), pa.field(columns.REJECT_DETAIL, pa.string())]
    )


def with_columns(table: pa.Table, values: dict[str, pa.Array]) -> pa.Table:
    """`table` with each named column replaced in place, or appended when it is new."""
    for name, array in values.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    return table


class Lineage(StrEnum):
    """How output rows relate to input rows; the runner checks it on every batch."""

    SAME_ROW = "same_row"  # one output row per input row, same `id`
    CHILDREN = "children"  # one or more output rows per input row, each with `parent_id` = the input's `id`


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


@dataclass(frozen=True)
class StageContext:
    """What a stage may know about the job beyond its own section; picklable, sent to workers."""

    run_dir: Path
    stage_name: str
    models: dict[str, ModelSpec] = field(default_factory=dict)
    job_dir: Path = Path(".")  # the job file's folder, for resolving relative paths
    # Schema of the input rows (None for source stages), so carried columns keep their types.
    input_schema: pa.Schema | None = None
    # Rows the stage will read (from the upstream part files' metadata; None for source stages).
    input_rows: int | None = None
    upstream_dirs: dict[str, Path] = field(default_factory=dict)


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("is_base", False):
            return
        if not isinstance(cls.__dict__.get("name", getattr(cls, "name", None)), str):
            raise TypeError(f"stage class {cls.__name__} must declare `name = '<folder name>'`")
        names = [f.name for f in cls.output_fields]
        if len(names) != len(set(names)):
            raise TypeError(f"stage {cls.name}: output_fields repeats a column: {names}")
        for reserved in (columns.REJECT_REASON, columns.REJECT_DETAIL):
            if reserved in names:
                raise TypeError(f"stage {cls.name}: do not declare {reserved}; the runner adds it to rejects")

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

    def expand_input(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        """Turn input rows into work rows before committed ones are skipped (e.g. one row per
        answer sample, each with its own id), so a resume skips exactly the committed work."""
        return dataset

    def prepare(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        """Dataset-level work before `transform` (e.g. an LLM processor); must keep the `id` column."""
        return dataset

    def plan_file_tasks(self, files: list[Path], slots: int) -> list[list[Path]]:
        """Engine-free stages run as plain Ray tasks (pipeline/file_tasks.py): the input part
        files of each task. `slots` is how many tasks the cluster runs at once. Default: one
        task per file."""
        return [[path] for path in files]

    def commit_files(self, files: list[Path], *, task_index: int, attempt_key: str, done_ids: pa.Array | None) -> pa.Table:
        """One such task, in a worker, on a set-up stage: commit the files' rows not in
        `done_ids` as units; one counts row per unit. Default: slices of `batch_size` rows."""
        from pipeline.file_tasks import commit_in_slices

        return commit_in_slices(self, files, attempt_key=attempt_key, done_ids=done_ids)

    def setup(self) -> None:
        """Load per-worker state once (models, indexes), before the first batch."""

    def transform(self, batch: pa.Table) -> pa.Table:
        """Map input rows to output rows; a rejected row has `reject_reason` set, never disappears."""
        raise NotImplementedError(f"stage {self.name} must implement transform(batch)")

    def finalize(self, stage_dir: Path) -> dict[str, Any]:
        """After every batch is committed: whole-stage work (returns manifest extras)."""
        return {}


class GlobalStage(Stage):
    """A stage that needs every row at once; recomputed whole when interrupted."""

    is_base: ClassVar[bool] = True
    resumable: ClassVar[bool] = False

    def run(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        """All rows in, all rows out, rejects marked with `reject_reason`."""
        raise NotImplementedError(f"stage {self.name} must implement run(dataset)")

    def transform(self, batch: pa.Table) -> pa.Table:
        return batch
