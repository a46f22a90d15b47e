"""difficulty: a "harder" rewrite that its answers show no harder than its parent is rejected.

Evolution's difficulty operations (add_constraints, deepen, concretize, reasoning) ask the model
for a harder instruction; nothing before this stage checks that it got one. Both the rewrite
and its parent (kept by evolve's `keep_parents`) were answered in the same run, so their
answers can be set side by side (quality/difficulty.py): agreement of the sampled answers
(objective instructions), the critique's accuracy score, and answer length.

Where it runs: after `critique` (it reads the judge's scores) and before the filters that only
look at text. A rewrite's parent may have been rejected along the way (an inconsistent vote, a
low critique), so its measures are read on the driver from the run itself, never from the
rows that reach this stage: the samples from the nearest `gather_samples` stage upstream (every
answered instruction), the accuracy score from the nearest `critique` stage's kept and rejected
rows. Both are upstream of this stage, so their fingerprints are already part of its own.
A row's parent is the instruction its last evolve step names (`meta.steps[].evolved_from`).

Reads pairs (`parent_id` = the instruction, `evolution_op`, `meta`); writes `meta.difficulty`
(the two instructions' measures, the change, the verdict) on every rewrite of a listed
operation. Rejects: not_harder (no measure says harder). Rows of other operations, and
rewrites with no measure in common with their parent (`harder: null`), pass.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError, JobConfig, parse_job
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams, with_columns
from synthmix.pipeline.storage import RemotePath, as_path, parquet_schema, read_parquet
from synthmix.pipeline.store import StageDir
from synthmix.quality.difficulty import Measures, compare_difficulty, mean_interval, measure_answers

HARDER_OPERATIONS = ("add_constraints", "deepen", "concretize", "reasoning")
SAMPLES_KIND = "gather_samples"
JUDGE_KIND = "critique"
# Kinds that read files, not the stage listed before them.
SOURCE_KINDS = ("seeds", "probe_source")
EVOLVED_FROM = "evolved_from"
DIFFICULTY = "difficulty"


class DifficultyParams(StageParams):
    operations: list[str] = Field(default_factory=lambda: list(HARDER_OPERATIONS), description="evolution operations whose rewrites must be harder")
    min_length_gain: float = Field(default=0.2, ge=0, description="answers this much longer than the parent's (0.2: 20%) count as harder")


class Difficulty(Stage):
    name = DIFFICULTY
    input_columns = (contracts.ID, contracts.PARENT_ID, contracts.EVOLUTION_OP, contracts.META)
    output_fields = (pa.field(contracts.META, pa.string()),)
    params = DifficultyParams
    resources = Resources(num_cpus=0.25, batch_size=1024)
    execution = Execution.FILE_TASKS

    def __init__(self, params: DifficultyParams, context) -> None:
        super().__init__(params, context)
        # Instruction id -> its measures; read on the driver (setup_on_driver).
        self.measures: dict[str, Measures] = {}

    def setup_on_driver(self) -> None:
        """The measures of every rewrite in the input and of its parent, read from the run."""
        run_dir = as_path(self.context.run_dir)
        job = _recorded_job(run_dir, self.context.stage_name)
        upstream = upstream_stages(job, self.context.stage_name)
        samples_stage = next((name for name, kind in upstream if kind == SAMPLES_KIND), None)
        if samples_stage is None:
            raise ConfigError(
                f"{job.source}: stage '{self.context.stage_name}' compares the sampled answers of rewrites and their parents, "
                f"but no '{SAMPLES_KIND}' stage is upstream of it; list it after answer, gather_samples, consistency and critique"
            )
        judge_stage = next((name for name, kind in upstream if kind == JUDGE_KIND), None)
        rows = [row for files in self.context.upstream_dirs.values() for row in _read(sorted(files.glob("part-*.parquet")), self.input_columns)]
        needed = set()
        for row in rows:
            parent = evolved_from(row[contracts.META])
            if row[contracts.EVOLUTION_OP] in self.params.operations and parent:
                needed.update((row[contracts.PARENT_ID], parent))
        self.measures = read_measures(run_dir, samples_stage, judge_stage, needed)

    def transform(self, batch: pa.Table) -> pa.Table:
        metas, reasons, details = [], [], []
        for row in batch.select([contracts.PARENT_ID, contracts.EVOLUTION_OP, contracts.META]).to_pylist():
            meta, reason, detail = row[contracts.META], None, None
            parent = evolved_from(meta)
            if row[contracts.EVOLUTION_OP] in self.params.operations and parent:
                record = self.judge(row[contracts.PARENT_ID], parent, row[contracts.EVOLUTION_OP])
                data = json.loads(meta) if meta else {}
                data[DIFFICULTY] = record
                meta = json.dumps(data, ensure_ascii=False, sort_keys=True)
                if record["harder"] is False:
                    reason, detail = RejectReason.NOT_HARDER.value, json.dumps(record, ensure_ascii=False, sort_keys=True)
            metas.append(meta)
            reasons.append(reason)
            details.append(detail)
        return with_columns(
            batch,
            {
                contracts.META: pa.array(metas, pa.string()),
                contracts.REJECT_REASON: pa.array(reasons, pa.string()),
                contracts.REJECT_DETAIL: pa.array(details, pa.string()),
            },
        )

    def judge(self, instruction_id: str, parent_id: str, operation: str) -> dict[str, Any]:
        """The record `meta.difficulty` holds: both instructions' measures, the change, the verdict."""
        child, parent = self.measures.get(instruction_id), self.measures.get(parent_id)
        record: dict[str, Any] = {"operation": operation, "parent": parent_id}
        if child is None or parent is None:
            return {**record, "harder": None, "why": "unanswered" if child is None else "parent unanswered"}
        change = compare_difficulty(child, parent, min_length_gain=self.params.min_length_gain)
        return {
            **record,
            "measures": dataclasses.asdict(child),
            "parent_measures": dataclasses.asdict(parent),
            "change": {"agreement": change.agreement, "judged_accuracy": change.judged_accuracy, "answer_ratio": change.answer_ratio},
            "harder": change.harder,
            "evidence": list(change.evidence),
        }

    def finalize(self, stage_dir: StageDir) -> dict:
        """Per operation: rewrites checked, harder, not harder, unmeasured, and the mean change of
        every measure with its 95% interval, over all rewrites checked and over those kept."""
        records = [
            (json.loads(meta)[DIFFICULTY], kept)
            for files, kept in ((stage_dir.part_files(), True), (stage_dir.reject_files(), False))
            for meta in (row[contracts.META] for row in _read(files, (contracts.META,)))
            if meta and DIFFICULTY in json.loads(meta)
        ]
        return {DIFFICULTY: summarize_changes(records)}


def summarize_changes(records: list[tuple[dict[str, Any], bool]]) -> dict[str, Any]:
    """Per operation (and `all`): counts by verdict and the mean change of each measure, with its
    95% interval, over the rewrites checked and over those kept."""
    by_operation: dict[str, list[tuple[dict[str, Any], bool]]] = defaultdict(list)
    for record, kept in records:
        by_operation[record["operation"]].append((record, kept))
        by_operation["all"].append((record, kept))
    summary = {}
    for operation, entries in sorted(by_operation.items()):
        verdicts = [record["harder"] for record, _ in entries]
        summary[operation] = {
            "checked": len(entries),
            "harder": verdicts.count(True),
            "not_harder": verdicts.count(False),
            "unmeasured": verdicts.count(None),
            "change_all": _mean_changes([record for record, _ in entries]),
            "change_kept": _mean_changes([record for record, kept in entries if kept]),
        }
    return summary


def _mean_changes(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The mean change of agreement and judged accuracy, and the geometric mean of the answer
    length ratio (a mean of logarithms, so its interval stays above zero), with 95% intervals."""
    changes = {}
    for measure in ("agreement", "judged_accuracy", "answer_ratio"):
        values = [record["change"][measure] for record in records if record.get("change", {}).get(measure) is not None]
        ratio = measure == "answer_ratio"
        interval = dataclasses.asdict(mean_interval([math.log(value) for value in values if value > 0] if ratio else values))
        if ratio:
            interval = {key: None if value is None else math.exp(value) for key, value in interval.items()}
        changes[measure] = {"n": len(values), **{key: None if value is None else round(value, 4) for key, value in interval.items()}}
    return changes


def evolved_from(meta: str | None) -> str | None:
    """The instruction the row's last evolve step rewrote (None for an instruction never evolved)."""
    steps = json.loads(meta).get("steps", []) if meta else []
    return next((step[EVOLVED_FROM] for step in reversed(steps) if step.get(EVOLVED_FROM)), None)


def read_measures(run_dir: Path | RemotePath, samples_stage: str, judge_stage: str | None, needed: set[str]) -> dict[str, Measures]:
    """Measures of the `needed` instruction ids: samples from `samples_stage`, accuracy scores
    from `judge_stage`'s kept and rejected rows."""
    if not needed:
        return {}
    accuracy: dict[str, float] = {}
    if judge_stage is not None:
        judged = StageDir(run_dir, judge_stage)
        # The critique's own score, the judge's P(yes) on [0, 1] (stages/critique.py); a pair a
        # check rejected before the judge has none. (This read the 1-10 rubric's accuracy until the
        # critique moved to probabilities, and then found nothing.)
        for row in _read([*judged.part_files(), *judged.reject_files()], (contracts.PARENT_ID, contracts.CRITIQUE_SCORE), needed):
            if row[contracts.CRITIQUE_SCORE] is not None:
                accuracy[row[contracts.PARENT_ID]] = float(row[contracts.CRITIQUE_SCORE])
    measures = {}
    for row in _read(StageDir(run_dir, samples_stage).part_files(), (contracts.PARENT_ID, contracts.OBJECTIVE, contracts.SAMPLES), needed):
        instruction = row[contracts.PARENT_ID]
        measures[instruction] = measure_answers(row[contracts.SAMPLES], objective=bool(row[contracts.OBJECTIVE]), judged_accuracy=accuracy.get(instruction))
    return measures


def upstream_stages(job: JobConfig, stage_name: str) -> list[tuple[str, str]]:
    """(name, kind) of the stages `stage_name` reads from, directly or through others, nearest
    first. A stage reads its `input`, else the stage listed before it (sources read files)."""
    entries = {entry.name: (index, entry) for index, entry in enumerate(job.stages)}
    chain = []
    index, entry = entries[stage_name]
    while True:
        reads = entry.input if entry.input is not None else None if entry.stage_kind in SOURCE_KINDS or index == 0 else job.stages[index - 1].name
        if reads is None:
            return chain
        index, entry = entries[reads]
        chain.append((entry.name, entry.stage_kind))


def _recorded_job(run_dir: Path | RemotePath, stage_name: str) -> JobConfig:
    snapshot = run_dir / "job.yaml"
    if not snapshot.exists():
        raise ConfigError(f"stage '{stage_name}' reads the run's job.yaml to find its upstream stages, which {run_dir} lacks; run it with `synthmix run`")
    return parse_job(yaml.safe_load(snapshot.read_text(encoding="utf-8")), source=str(snapshot))


def _read(files: list[Path | RemotePath], names: tuple[str, ...], only: set[str] | None = None) -> list[dict]:
    """Rows of these files, the named columns (null where a file lacks one), optionally only
    those whose `parent_id` is in `only`."""
    rows = []
    for path in files:
        present = [name for name in names if name in parquet_schema(path).names]
        table = read_parquet(path, columns=present)
        if only is not None and contracts.PARENT_ID in present:
            table = table.filter(pc.is_in(table[contracts.PARENT_ID], value_set=pa.array(sorted(only), pa.string())))
        rows.extend({name: row.get(name) for name in names} for row in table.to_pylist())
    return rows
