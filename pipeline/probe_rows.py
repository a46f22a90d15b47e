"""What the stages that add measured rows to a run share: probes (stages/probes.py) and judged
responses (stages/judged_responses.py).

Both kinds add rows that are measured by `synthmix eval` and must never be trained on. Each has
a way in that carries its input unchanged and adds the drawn rows as one more committed unit
(`finalize`), and a source form for a job with nothing else; `probe_exit` sets them all aside
after the last filter. Before a row is written, the run's job (`job.yaml`) is checked: a job in
which a `decontaminate`, `tokenize` or `mix` stage reads such rows with no `probe_exit` between
is refused. The row marker is the `probe` column (JSON: set, key, and what judges the row).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError, JobConfig, parse_job
from synthmix.pipeline.file_digest import user_file_stamp
from synthmix.pipeline.stage import with_columns
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.unit_commit import commit_as_unit, unit_name

PROBE_FIELDS = (pa.field(contracts.PROBE, pa.string()), pa.field(contracts.TESTS, pa.string()))
EXIT_KIND = "probe_exit"
# Stages whose rows become training data: a probe must leave before any of them reads it.
TRAINING_KINDS = ("decontaminate", "tokenize", "mix")
# Kinds that read files, not the stage listed before them (the graph knows by class; the job
# snapshot only by kind).
SOURCE_KINDS = ("seeds", "probe_source", "judged_source")


class MeasuredRows:
    """Mixed into a stage that writes measured rows: its params have `files` (each with `name` and
    `path`); it implements `measured_rows()`, the rows as dicts of contract columns."""

    params: Any
    context: Any

    def measured_rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def file_path(self, entry: Any) -> Path:
        path = Path(entry.path)
        return path if path.is_absolute() else self.context.job_dir / path

    def fingerprint_extra(self) -> dict:
        """User files by size and mtime: an edited file makes the stage stale."""
        files = {}
        for entry in self.params.files:
            files[entry.name] = user_file_stamp(self.file_path(entry), f"file {entry.name!r} of stage '{self.context.stage_name}'")
        return {"probe_files": files}

    def check_probes_leave(self) -> None:
        """Refuse a job whose training stages would read this stage's rows (see the module doc)."""
        snapshot = Path(self.context.run_dir) / "job.yaml"
        if not snapshot.exists():
            raise ConfigError(f"stage '{self.context.stage_name}' checks the run's job.yaml, which {snapshot.parent} lacks; run it with `synthmix run`")
        job = parse_job(yaml.safe_load(snapshot.read_text(encoding="utf-8")), source=str(snapshot))
        leaks = find_probe_leaks(job, self.context.stage_name)
        if leaks:
            raise ConfigError(
                f"{job.source}: stage(s) {', '.join(leaks)} would read the probes of '{self.context.stage_name}' and ship them as "
                f"training data; list `- {EXIT_KIND}` after the last filter (e.g. after dedup_samples) and before them"
            )

    def measured_table(self, schema: pa.Schema) -> pa.Table:
        """The drawn rows as rows of `schema`: their columns filled, every other column null. Drawn
        once per stage instance (a draw may run code in the sandbox)."""
        if getattr(self, "_measured", None) is None:
            self._measured = self.measured_rows()
        rows = self._measured
        return pa.table({name: pa.array([row.get(name) for row in rows], schema.field(name).type) for name in schema.names}, schema=schema)

    def commit_measured_rows(self, stage_dir: StageDir, schema: pa.Schema) -> dict:
        """The drawn rows, committed as one unit beside the input's (once: a resume finds it committed)."""
        self.check_probes_leave()
        table = self.measured_table(schema)
        if unit_name(table[contracts.ID].combine_chunks()) not in stage_dir.committed_units():
            commit_as_unit(self, table)
        return {"probes": describe_sets(table)}


class JoinsMeasuredRows(MeasuredRows):
    """The way in: input rows pass unchanged (a probe column they lack added, null: they are not
    measured rows), and the drawn rows are committed beside them as one unit in `finalize`.
    `alone_fields`: the row contract when the stage has no input."""

    alone_fields: tuple[pa.Field, ...]

    def output_schema(self) -> pa.Schema:
        if self.context.input_schema is None:
            return pa.schema([*self.alone_fields, *PROBE_FIELDS])
        return super().output_schema()  # type: ignore[misc]  # the Stage's, next in the subclass's MRO

    def transform(self, batch: pa.Table) -> pa.Table:
        missing = {field.name: pa.nulls(batch.num_rows, field.type) for field in PROBE_FIELDS if field.name not in batch.column_names}
        return with_columns(batch, missing)

    def finalize(self, stage_dir: StageDir) -> dict:
        return self.commit_measured_rows(stage_dir, self.output_schema())


class ServesMeasuredRows(MeasuredRows):
    """The source form, for a job with nothing else: the drawn rows are the stage's input."""

    carries_input = False
    is_source = True

    def setup_on_driver(self) -> None:
        self.check_probes_leave()

    def read_input(self) -> Any:
        import ray.data

        return ray.data.from_arrow(self.measured_table(self.output_schema()))  # type: ignore[attr-defined]

    def transform(self, batch: pa.Table) -> pa.Table:
        return batch

    def finalize(self, stage_dir: StageDir) -> dict:
        return {"probes": describe_sets(self.measured_table(self.output_schema()))}  # type: ignore[attr-defined]


def find_probe_leaks(job: JobConfig, probes_stage: str) -> list[str]:
    """Stages of a training kind that read `probes_stage`'s rows, directly or through other
    stages, with no `probe_exit` between. A stage reads its `input`, else the stage listed
    before it (sources read files)."""
    carrying = {probes_stage}
    leaks = []
    previous = None
    for entry in job.stages:
        reads = entry.input if entry.input is not None else None if entry.stage_kind in SOURCE_KINDS else previous
        if reads in carrying and entry.stage_kind != EXIT_KIND:
            carrying.add(entry.name)
            if entry.stage_kind in TRAINING_KINDS:
                leaks.append(entry.name)
        previous = entry.name
    return leaks


def describe_sets(table: pa.Table) -> dict[str, int]:
    """Rows per set, for the manifest."""
    counts: dict[str, int] = {}
    for marker in table[contracts.PROBE].to_pylist():
        name = json.loads(marker)["set"]
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
