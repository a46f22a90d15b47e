"""How varied a run's instructions are, how their task mix compares with the job's, and what
evolution changed: read from a run directory, for `synthmix eval` and the report.

- Per instruction stage (synthesize, evolve, a dedup of instructions) and for the shards (the
  rows of the stage the tokenize stage read, those whose ids reached `shards/`), overall and
  per language and per domain: task types, the most common opening and its share, distinct 1-
  and 2-grams, the compression ratio and the clusters (quality/diversity.py). Probe rows are
  left out: they are not the recipe's instructions.
- The task mix: the job's asked shares, what the seeds allowed (planned) and what synthesize
  kept (its manifest), beside the task types of the shards.
- Evolution per operation: rewrites offered (every row the evolve stage made with that
  operation, kept or rejected), kept by evolve, its reject reasons, and from a `difficulty`
  stage (its manifest): rewrites checked against their parents, harder, not harder,
  unmeasured, and the mean change of agreement, judged accuracy and answer length with 95%
  intervals, over all checked rewrites and over those kept.

Only reads the run: its `job.yaml` (stage kinds and inputs), part and reject files, manifests.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthmix.pipeline import contracts
from synthmix.pipeline.inspection.run_contents import SHARDS, RunInspectionError, recorded_job, shard_files
from synthmix.pipeline.store import StageDir
from synthmix.quality.diversity import measure_diversity
from synthmix.quality.task_mix import shares_of

INSTRUCTION_KINDS = ("synthesize", "evolve", "dedup")
SYNTHESIZE_KIND = "synthesize"
EVOLVE_KIND = "evolve"
DIFFICULTY_KIND = "difficulty"
TOKENIZE_KIND = "tokenize"
SOURCE_KINDS = ("seeds", "probe_source")
GROUP_KEYS = (contracts.LANG, contracts.DOMAIN)
READ = (contracts.ID, contracts.LANG, contracts.DOMAIN, contracts.INSTRUCTION, contracts.PROBE)


def diversity_of_run(run_dir: Path) -> dict[str, Any]:
    """The run's diversity tables, task mix and evolution summary, JSON-ready."""
    run_dir = Path(run_dir)
    stages = _stages(run_dir)
    sets = []
    for name, kind, _ in stages:
        if kind in INSTRUCTION_KINDS:
            rows = _instruction_rows(StageDir(run_dir, name).part_files())
            if rows is not None and rows.num_rows:
                sets.append({"set": name, "groups": _grouped(rows)})
    shards = _shard_rows(run_dir, stages)
    if shards is not None and shards.num_rows:
        sets.append({"set": SHARDS, "groups": _grouped(shards)})
    return {
        "sets": sets,
        "task_mix": _task_mix(run_dir, stages, next((entry for entry in sets if entry["set"] == SHARDS), None)),
        "evolution": _evolution(run_dir, stages),
    }


def _stages(run_dir: Path) -> list[tuple[str, str, str | None]]:
    """(name, kind, the stage it reads) for each stage of the run's recorded job, in job order."""
    job = recorded_job(run_dir)
    if job is None:
        raise RunInspectionError(f"{run_dir} holds no job.yaml; is it a run directory? (run a job first: synthmix run JOB)")
    found, previous = [], None
    for entry in job.stages:
        reads = entry.input if entry.input is not None else None if entry.stage_kind in SOURCE_KINDS else previous
        found.append((entry.name, entry.stage_kind, reads))
        previous = entry.name
    return found


def _instruction_rows(files: list[Path]) -> pa.Table | None:
    """The files' instruction rows that are no probe (lang, domain, instruction); None when the
    rows have no instruction or carry answers (pairs, not instructions)."""
    tables = []
    for path in files:
        names = pq.read_schema(path).names
        if contracts.INSTRUCTION not in names or contracts.ANSWER in names:
            return None
        table = pq.read_table(path, columns=[name for name in READ if name in names])
        if contracts.PROBE in table.column_names:
            table = table.filter(pc.is_null(table[contracts.PROBE]))
        tables.append(_conform(table))
    return pa.concat_tables(tables) if tables else None


def _shard_rows(run_dir: Path, stages: list[tuple[str, str, str | None]]) -> pa.Table | None:
    """The rows of the stage tokenize read whose ids reached the shards (lang, domain, instruction)."""
    files = shard_files(run_dir)
    source = next((reads for _, kind, reads in stages if kind == TOKENIZE_KIND), None)
    if not files or source is None:
        return None
    ids = pa.concat_arrays([pq.read_table(path, columns=[contracts.ID])[contracts.ID].combine_chunks() for path in files])
    tables = []
    for path in StageDir(run_dir, source).part_files():
        names = pq.read_schema(path).names
        if contracts.INSTRUCTION not in names:
            return None
        table = pq.read_table(path, columns=[name for name in READ if name in names])
        tables.append(_conform(table.filter(pc.is_in(table[contracts.ID], value_set=ids))))
    return pa.concat_tables(tables) if tables else None


def _conform(table: pa.Table) -> pa.Table:
    return pa.table({name: table[name] if name in table.column_names else pa.nulls(table.num_rows, pa.string()) for name in READ[1:4]})


def _grouped(rows: pa.Table) -> list[dict[str, Any]]:
    """The measures of all rows, then of each language and each domain with rows."""
    groups = [("all", rows)]
    for key in GROUP_KEYS:
        values = rows[key].to_pylist()
        for value, _ in sorted(Counter(values).items(), key=lambda item: (-item[1], str(item[0]))):
            groups.append((f"{key}={value}", rows.filter(pc.equal(pc.fill_null(rows[key], ""), value or ""))))
    return [{"group": label, **_measured(table[contracts.INSTRUCTION].to_pylist())} for label, table in groups]


def _measured(texts: list[str]) -> dict[str, Any]:
    measures = dataclasses.asdict(measure_diversity(texts))
    measures["openings"] = [list(item) for item in measures["openings"]]
    return measures


def _task_mix(run_dir: Path, stages: list[tuple[str, str, str | None]], shards: dict | None) -> dict[str, Any] | None:
    """Asked, planned and achieved shares from the synthesize manifest, and the shards' shares."""
    name = next((name for name, kind, _ in stages if kind == SYNTHESIZE_KIND), None)
    manifest = StageDir(run_dir, name).manifest() if name else None
    mix = (manifest or {}).get("extra", {}).get("task_mix")
    if not mix:
        return None
    in_shards = shares_of(shards["groups"][0]["task_types"]) if shards else {}
    return {"stage": name, **mix, "shards": in_shards}


def _evolution(run_dir: Path, stages: list[tuple[str, str, str | None]]) -> dict[str, Any] | None:
    """Per operation of the first evolve stage: offered, kept, reasons; with a difficulty stage's summary."""
    name = next((name for name, kind, _ in stages if kind == EVOLVE_KIND), None)
    if name is None or StageDir(run_dir, name).manifest() is None:
        return None
    stage_dir = StageDir(run_dir, name)
    kept = _operations(stage_dir.part_files())
    rejected = _operations(stage_dir.reject_files(), with_reasons=True)
    difficulty_stage = next((stage for stage, kind, _ in stages if kind == DIFFICULTY_KIND), None)
    difficulty = ((StageDir(run_dir, difficulty_stage).manifest() or {}).get("extra", {}).get(DIFFICULTY_KIND, {})) if difficulty_stage else {}
    operations = []
    for operation in sorted(set(kept) | set(rejected)):
        reasons = rejected.get(operation, Counter())
        operations.append(
            {
                "operation": operation,
                "offered": kept.get(operation, 0) + sum(reasons.values()),
                "kept": kept.get(operation, 0),
                "rejected_by_reason": dict(sorted(reasons.items())),
                "difficulty": difficulty.get(operation),
            }
        )
    return {"stage": name, "difficulty_stage": difficulty_stage, "operations": operations, "difficulty_all": difficulty.get("all")}


def _operations(files: list[Path], *, with_reasons: bool = False) -> dict[str, Any]:
    """Rows per evolution operation of the first round (depth 1: the first evolve stage's own
    rewrites, not the parents it kept); with reasons, a Counter of reject reasons per operation."""
    found: dict[str, Any] = {}
    for path in files:
        names = [contracts.EVOLUTION_OP, contracts.EVOLUTION_DEPTH, *([contracts.REJECT_REASON] if with_reasons else [])]
        for row in pq.read_table(path, columns=names).to_pylist():
            operation = row[contracts.EVOLUTION_OP]
            if not operation or row[contracts.EVOLUTION_DEPTH] != 1:
                continue
            if with_reasons:
                found.setdefault(operation, Counter())[row[contracts.REJECT_REASON]] += 1
            else:
                found[operation] = found.get(operation, 0) + 1
    return found
