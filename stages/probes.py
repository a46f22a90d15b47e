"""probes: problems with known answers go through the filters like any instruction, to measure them.

A probe row is an instruction row (`pipeline.contracts.INSTRUCTION_FIELDS`) with a `probe`
marker (JSON: set, key, reference answer) and, for code, `tests`. It is answered by the domain's
model, sampled and voted on when objective, critiqued, quality-checked and deduplicated like any
other row, so every filter's rejects hold the probes it rejected. `synthmix eval` then compares
what each filter kept and rejected with the known answers (pipeline/inspection/evaluation.py).

Three stage kinds make the way in and the way out:
- `probes`, between the last instruction stage and `answer`: carries its input unchanged (probe
  and tests null) and adds the drawn probes as one more committed unit, written by `finalize`.
  Every unit keeps "in = out + rejected" (the probe unit counts its probes in and out), and the
  probes are added even when the input is empty. `rows_in` counts instructions plus probes.
- `probe_source`: the probes alone, a source for a benchmark job without seeds (jobs/eval.yaml).
- `probe_exit`, after the last filter: rejects every probe row with reason `probe`, so its
  rejects are the probes that survived every filter, and no probe reaches `decontaminate`,
  `tokenize` or the shards. Before a probe row is written, `probes` and `probe_source` check the
  run's job (its `job.yaml`) and refuse one in which a `decontaminate`, `tokenize` or `mix` stage
  reads their rows without a `probe_exit` between.

Section `probes:` says how many of each set to draw (`gsm8k`, `humaneval`, `arithmetic_zh`,
`files`), drawn by `seed` (quality/probe_sets.py): the same job draws the same probes, whose ids
hash set, key and question, so they are stable across runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import Field, model_validator

from pipeline import columns
from pipeline.config import ConfigError, JobConfig, parse_job
from pipeline.contracts import INSTRUCTION_FIELDS, RejectReason
from pipeline.stage import Execution, Resources, Stage, StageParams, with_columns
from pipeline.store import StageDir
from pipeline.unit_commit import commit_as_unit, unit_name
from quality.probe_sets import (
    BUILT_IN_SETS,
    Probe,
    arithmetic_zh_probes,
    draw_probes,
    gsm8k_probes,
    humaneval_probes,
    read_probe_file,
)

PROBE_FIELDS = (pa.field(columns.PROBE, pa.string()), pa.field(columns.TESTS, pa.string()))
EXIT_KIND = "probe_exit"
# Stages whose rows become training data: a probe must leave before any of them reads it.
TRAINING_KINDS = ("decontaminate", "tokenize", "mix")
# Kinds that read files, not the stage listed before them (the graph knows by class; the job
# snapshot only by kind).
SOURCE_KINDS = ("seeds", "probe_source")


class ProbeFile(StageParams):
    """A user's probes: JSON Lines, one question per line with an answer, tests, or both."""

    name: str = Field(description="the set's name in `synthmix eval`")
    path: str = Field(description="a .jsonl or .jsonl.gz file, relative to the job file")
    count: int | None = Field(default=None, ge=1, description="probes drawn from the file; none: every line")
    question_field: str = "question"
    answer_field: str = "answer"
    tests_field: str = "tests"
    domain: str | None = Field(default=None, description="default: code for lines with tests, else general")
    lang: str | None = Field(default=None, description="default: zh or en by the question's script")


class ProbeParams(StageParams):
    seed: int = Field(default=0, description="which probes are drawn; the same seed draws the same ones")
    gsm8k: int = Field(default=0, ge=0, le=1319, description="GSM8K test problems (English math, 1,319 in all)")
    humaneval: int = Field(default=0, ge=0, le=164, description="HumanEval problems (Python, judged by their tests)")
    arithmetic_zh: int = Field(default=0, ge=0, le=100_000, description="generated Chinese multi-step arithmetic word problems")
    files: list[ProbeFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _asks_for_probes(self):
        names = [probe_file.name for probe_file in self.files]
        clashing = sorted({name for name in names if names.count(name) > 1 or name in BUILT_IN_SETS})
        if clashing:
            raise ValueError(f"probe file names {clashing} repeat or reuse a built-in set's name ({', '.join(BUILT_IN_SETS)}); name each file once")
        if not (self.gsm8k or self.humaneval or self.arithmetic_zh or self.files):
            raise ValueError("no probes asked for; set gsm8k, humaneval, arithmetic_zh (counts) or files")
        return self


class ProbeRows:
    """What the probe-writing kinds share: the drawn probes as instruction rows, and the exit check."""

    params: ProbeParams
    context: Any

    def file_path(self, probe_file: ProbeFile) -> Path:
        path = Path(probe_file.path)
        return path if path.is_absolute() else self.context.job_dir / path

    def fingerprint_extra(self) -> dict:
        """User probe files by size and mtime: an edited file makes the stage stale."""
        files = {}
        for probe_file in self.params.files:
            path = self.file_path(probe_file)
            if not path.is_file():
                raise ConfigError(f"probe file {probe_file.name!r}: no file at {path}; fix `path` (relative paths start at the job file's folder)")
            stat = path.stat()
            files[probe_file.name] = [str(path), stat.st_size, stat.st_mtime_ns]
        return {"probe_files": files}

    def draw(self) -> list[Probe]:
        params = self.params
        drawn = []
        if params.gsm8k:
            drawn += draw_probes(gsm8k_probes(), params.gsm8k, seed=params.seed)
        if params.humaneval:
            drawn += draw_probes(humaneval_probes(), params.humaneval, seed=params.seed)
        if params.arithmetic_zh:
            drawn += arithmetic_zh_probes(params.arithmetic_zh, seed=params.seed)
        for probe_file in params.files:
            probes = read_probe_file(self.file_path(probe_file), **probe_file.model_dump(exclude={"path", "count"}))
            drawn += draw_probes(probes, probe_file.count, seed=params.seed) if probe_file.count else probes
        return drawn

    def check_probes_leave(self) -> None:
        """Refuse a job whose training stages would read this stage's probes (see the module doc)."""
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

    def probe_table(self, schema: pa.Schema) -> pa.Table:
        """The drawn probes as rows of `schema`: instruction columns filled, every other column null."""
        rows = [probe_row(probe) for probe in self.draw()]
        return pa.table({name: pa.array([row.get(name) for row in rows], schema.field(name).type) for name in schema.names}, schema=schema)


def probe_row(probe: Probe) -> dict[str, Any]:
    """One probe as an instruction row; it is its own seed, and its origin names file and line or template."""
    marker = {"set": probe.set_name, "key": probe.key, "reference": probe.reference, "judged_by": "reference" if probe.reference is not None else "tests"}
    return {
        columns.ID: probe.id,
        columns.SEED_ID: probe.id,
        columns.PARENT_ID: f"probe:{probe.set_name}:{probe.key}",
        columns.SOURCE: f"probe/{probe.set_name}",
        columns.DOMAIN: probe.domain,
        columns.LANG: probe.lang,
        columns.INSTRUCTION: probe.question,
        columns.TASK_TYPE: "probe",
        columns.OBJECTIVE: probe.objective,
        columns.EVOLUTION_OP: "",
        columns.EVOLUTION_DEPTH: 0,
        columns.SOURCE_ID: probe.key,
        columns.ORIGIN: json.dumps({"probe_set": probe.set_name, **probe.origin}, ensure_ascii=False, sort_keys=True),
        columns.PROBE: json.dumps(marker, ensure_ascii=False, sort_keys=True),
        columns.TESTS: probe.tests,
    }


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


class Probes(ProbeRows, Stage):
    name = "probes"
    input_columns = (columns.ID, columns.INSTRUCTION)
    output_fields = PROBE_FIELDS
    params = ProbeParams
    resources = Resources(num_cpus=0.25, batch_size=4096)
    execution = Execution.FILE_TASKS

    def output_schema(self) -> pa.Schema:
        """With no input rows (no input schema), the instruction contract plus the probe columns."""
        if self.context.input_schema is None:
            return pa.schema([*INSTRUCTION_FIELDS, *PROBE_FIELDS])
        return super().output_schema()

    def transform(self, batch: pa.Table) -> pa.Table:
        """Input rows unchanged; a column they lack is added, null (they are no probes)."""
        missing = {field.name: pa.nulls(batch.num_rows, field.type) for field in PROBE_FIELDS if field.name not in batch.column_names}
        return with_columns(batch, missing)

    def finalize(self, stage_dir: StageDir) -> dict:
        """The probes, committed as one unit beside the input's (once: a resume finds it committed)."""
        self.check_probes_leave()
        table = self.probe_table(self.output_schema())
        if unit_name(table[columns.ID].combine_chunks()) not in stage_dir.committed_units():
            commit_as_unit(self, table)
        return {"probes": describe_sets(table)}


class ProbeSource(ProbeRows, Stage):
    name = "probe_source"
    output_fields = (*INSTRUCTION_FIELDS, *PROBE_FIELDS)
    carries_input = False
    is_source = True
    params = ProbeParams
    resources = Resources(num_cpus=0.25, batch_size=4096)

    def setup_on_driver(self) -> None:
        self.check_probes_leave()

    def read_input(self):
        import ray.data

        return ray.data.from_arrow(self.probe_table(self.output_schema()))

    def transform(self, batch: pa.Table) -> pa.Table:
        return batch

    def finalize(self, stage_dir: StageDir) -> dict:
        return {"probes": describe_sets(self.probe_table(self.output_schema()))}


class ProbeExit(Stage):
    """Sets the probes aside after the last filter: they are measured (`synthmix eval` reads this
    stage's rejects as the probes every filter kept), never trained on."""

    name = EXIT_KIND
    input_columns = (columns.ID, columns.PROBE)
    resources = Resources(num_cpus=0.25, batch_size=4096)
    execution = Execution.FILE_TASKS

    def transform(self, batch: pa.Table) -> pa.Table:
        reasons = pc.if_else(pc.is_valid(batch[columns.PROBE]), pa.scalar(RejectReason.PROBE.value), pa.scalar(None, pa.string()))
        return with_columns(batch, {columns.REJECT_REASON: reasons, columns.REJECT_DETAIL: pa.nulls(batch.num_rows, pa.string())})


def describe_sets(table: pa.Table) -> dict[str, int]:
    """Probes per set, for the manifest."""
    counts: dict[str, int] = {}
    for marker in table[columns.PROBE].to_pylist():
        name = json.loads(marker)["set"]
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
