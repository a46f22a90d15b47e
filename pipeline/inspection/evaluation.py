"""`synthmix eval`: how often the recipe's answers are right, and whether each filter helps, on probes.

Probes (stages/probes.py) are problems with known answers that went through the recipe like
any instruction. This reads a run directory alone, and only reads it (its `job.yaml` for the
stage kinds, then each stage's part and reject files, probe rows only), and measures:

- per answer model and domain (and per probe set): the accuracy of every sampled answer (the
  answer stage's rows), of what survives every filter (the probes `probe_exit` set aside; without
  one, what the last filter kept), and the lift between the two;
- per filter stage that saw probes (consistency, critique, quality, dedup, verify_code, ...):
  probes in, kept and rejected; the accuracy of kept and of rejected answers; precision (the
  share of rejected answers that were wrong) and recall (the share of wrong answers rejected);
  and a verdict from the interval of kept-minus-rejected accuracy: `helps` when it lies above
  zero, `hurts` below, `unclear` across it;
- how well `critique_score` separates right answers from wrong ones (AUC).

A row is judged by its `answer` as that stage holds it (consistency swaps in the majority
sample for the rows it keeps) against the probe's reference, with the extraction the vote uses
(quality/probe_sets.py `judge_answer`). A code probe is judged by its tests, as the run's
`verify_code` stage ran them: right when it passed, wrong when it was rejected as `no_code`,
`tests_failed`, `timeout`, `crashed` or `sandbox_violation`; without that stage, or where it did
not run them, it is counted but not judged. Since verify_code is then the judge of code probes,
its own row leaves them out. Proportions carry Wilson 95% intervals, differences Newcombe's (quality/proportions.py);
the survivors descend from the samples, so the lift's interval treats as independent what is
not quite, and reads as a guide, not a test.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.inspection.critic_evaluation import evaluate_critics
from synthmix.pipeline.inspection.generation_cost import generation_cost
from synthmix.pipeline.inspection.run_contents import RunInspectionError
from synthmix.pipeline.store import StageDir
from synthmix.quality.probe_sets import judge_answer
from synthmix.quality.proportions import (
    Interval,
    Proportion,
    newcombe_difference,
    rank_auc,
    wilson_interval,
)

ANSWER_KIND = "answer"
EXIT_KIND = "probe_exit"
CRITIQUE_KIND = "critique"
VERIFY_KIND = "verify_code"
# verify_code's rejects that say a code answer fails its tests.
FAILED_CODE = frozenset({"no_code", "tests_failed", "timeout", "crashed", "sandbox_violation"})
# Kinds that hold probe rows without judging them: where probes enter, regroup or leave.
NOT_FILTERS = frozenset({"probes", "probe_source", "gather_samples", EXIT_KIND})
# Where judged responses enter (stages/judged_responses.py), and how their marker says so.
JUDGED_KINDS = frozenset({"judged_responses", "judged_source"})
JUDGED_MARK = '"judged_by": "verdict"'
# What evaluation reads of a stage's rows; a stage without one of them reads as null.
READ_SCHEMA = pa.schema(
    [
        (contracts.ID, pa.string()),
        (contracts.PARENT_ID, pa.string()),
        (contracts.DOMAIN, pa.string()),
        (contracts.ANSWER, pa.string()),
        (contracts.ANSWER_MODEL, pa.string()),
        (contracts.PROBE, pa.string()),
        (contracts.CRITIQUE_SCORE, pa.float64()),
        (contracts.META, pa.string()),
        (contracts.REJECT_REASON, pa.string()),
    ]
)

SET = "set"
CORRECT = "correct"  # bool, null when the probe could not be judged


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """The evaluation of the run's probes, JSON-ready; `probes` is 0 in a run without any. `critics`:
    each critique stage's measures on the rows whose verdict is known (critic_evaluation.py)."""
    run_dir = Path(run_dir)
    stages = _stage_kinds(run_dir)
    measured = {"critics": evaluate_critics(run_dir, stages), "judged_filters": _judged_filters(run_dir, stages)}
    answer_stage = next((name for name, kind in stages if kind == ANSWER_KIND), None)
    if answer_stage is None:
        return {"run_dir": str(run_dir), "answer_stage": None, "probes": 0, **measured}
    after_answer = stages[[name for name, _ in stages].index(answer_stage) + 1 :]
    verify_stage = next((name for name, kind in after_answer if kind == VERIFY_KIND), None)
    code_passed = _code_outcomes(run_dir, verify_stage) if verify_stage else {}
    samples, failed = _probe_rows(run_dir, answer_stage, code_passed), _probe_rows(run_dir, answer_stage, code_passed, rejects=True)
    result: dict[str, Any] = {"run_dir": str(run_dir), "answer_stage": answer_stage, "probes": _count_distinct(samples, failed), **measured}
    if not result["probes"]:
        return result
    filters = []
    for name, kind in after_answer:
        if kind in NOT_FILTERS:
            continue
        judges = {} if kind == VERIFY_KIND else code_passed
        kept, rejected = _probe_rows(run_dir, name, judges), _probe_rows(run_dir, name, judges, rejects=True)
        if kept.num_rows or rejected.num_rows:
            filters.append((name, kind, kept, rejected))
    survivors, survivors_are = _survivors(run_dir, after_answer, filters, code_passed)
    result.update(
        {
            "failed_samples": failed.num_rows,
            "survivors_are": survivors_are,
            "code_judged_by": verify_stage,
            "by_model_domain": _accuracy_groups(samples, survivors, (contracts.ANSWER_MODEL, contracts.DOMAIN)),
            "by_set": _accuracy_groups(samples, survivors, (SET,)),
            "filters": [_filter_entry(name, kind, kept, rejected) for name, kind, kept, rejected in filters],
            "critique_auc": _critique_auc(filters),
            "generation_cost": generation_cost(run_dir),
        }
    )
    return result


# --- reading ----------------------------------------------------------------------------------------
def _stage_kinds(run_dir: Path) -> list[tuple[str, str]]:
    """(name, kind) of each stage of the run's recorded job, in job order."""
    if not run_dir.is_dir():
        raise RunInspectionError(f"run directory {run_dir} does not exist; pass the --run-dir of a `synthmix run`")
    snapshot = run_dir / "job.yaml"
    if not snapshot.exists():
        raise RunInspectionError(f"{run_dir} holds no job.yaml; is it a run directory? (run a job first: synthmix run JOB)")
    try:
        job = parse_job(yaml.safe_load(snapshot.read_text(encoding="utf-8")), source=str(snapshot))
    except (ConfigError, yaml.YAMLError) as error:
        raise RunInspectionError(f"{snapshot} does not parse ({error}); the run directory is damaged") from None
    return [(entry.name, entry.stage_kind) for entry in job.stages]


def _probe_rows(run_dir: Path, stage: str, code_passed: dict[str, bool], *, rejects: bool = False, judged: bool = False) -> pa.Table:
    """The stage's probe rows (parts, or rejects), the columns evaluation reads, each judged:
    answered probes, or with `judged` the judged responses (their verdict is in their marker)."""
    return _judged(_read_probe_rows(run_dir, stage, rejects=rejects, judged=judged), code_passed)


def _read_probe_rows(run_dir: Path, stage: str, *, rejects: bool = False, judged: bool = False) -> pa.Table:
    stage_dir = StageDir(run_dir, stage)
    tables = []
    for path in stage_dir.reject_files() if rejects else stage_dir.part_files():
        names = pq.read_schema(path).names
        if contracts.PROBE not in names:
            continue
        table = pq.read_table(path, columns=[name for name in READ_SCHEMA.names if name in names], filters=pc.field(contracts.PROBE).is_valid())
        # cast: a file whose probe column is all null has the null type, which no string kernel takes
        is_judged = pc.match_substring(table[contracts.PROBE].cast(pa.string()), JUDGED_MARK)
        tables.append(_conform(table.filter(is_judged if judged else pc.invert(is_judged))))
    return pa.concat_tables(tables) if tables else _empty()


def _code_outcomes(run_dir: Path, stage: str) -> dict[str, bool]:
    """Probe instruction id -> whether its code passed its tests, as `stage` (verify_code) ran them."""
    outcomes = {}
    for row in _read_probe_rows(run_dir, stage).to_pylist():
        if json.loads(row[contracts.META] or "{}").get(VERIFY_KIND, {}).get("outcome") == "passed":
            outcomes[row[contracts.PARENT_ID]] = True
    for row in _read_probe_rows(run_dir, stage, rejects=True).to_pylist():
        if row[contracts.REJECT_REASON] in FAILED_CODE:
            outcomes[row[contracts.PARENT_ID]] = False
    return outcomes


def _conform(table: pa.Table) -> pa.Table:
    """Every column evaluation reads, in one schema (null where the stage lacks one)."""
    return pa.table(
        {field.name: table[field.name].cast(field.type) if field.name in table.column_names else pa.nulls(table.num_rows, field.type) for field in READ_SCHEMA},
        schema=READ_SCHEMA,
    )


def _empty() -> pa.Table:
    return READ_SCHEMA.empty_table()


def _judged(table: pa.Table, code_passed: dict[str, bool]) -> pa.Table:
    """Plus the probe's set and whether its answer is right: against the reference, or for probes
    judged by tests, by `code_passed` of its instruction (null where that has no entry)."""
    markers = [json.loads(marker) for marker in table[contracts.PROBE].to_pylist()] if table.num_rows else []
    correct = [
        marker["good"] if "good" in marker else judge_answer(answer, marker["reference"]) if marker.get("reference") is not None else code_passed.get(parent)
        for answer, parent, marker in zip(table[contracts.ANSWER].to_pylist(), table[contracts.PARENT_ID].to_pylist(), markers)
    ]
    return table.append_column(SET, pa.array([marker["set"] for marker in markers], pa.string())).append_column(CORRECT, pa.array(correct, pa.bool_()))


def _count_distinct(*tables: pa.Table) -> int:
    """Probe instructions behind these sample rows (their parent ids)."""
    return len({value for table in tables for value in table[contracts.PARENT_ID].to_pylist()})


def _survivors(run_dir: Path, after_answer: list[tuple[str, str]], filters: list, code_passed: dict[str, bool]) -> tuple[pa.Table, str]:
    """The probes `probe_exit` set aside; without one, the probe rows the last filter kept. With a
    sentence saying which."""
    exit_stage = next((name for name, kind in after_answer if kind == EXIT_KIND), None)
    if exit_stage is not None and StageDir(run_dir, exit_stage).manifest() is not None:
        rows = _probe_rows(run_dir, exit_stage, code_passed, rejects=True)
        return rows.filter(pc.equal(rows[contracts.REJECT_REASON], RejectReason.PROBE.value)), f"the probes '{exit_stage}' set aside"
    if filters:
        name, _, kept, _ = filters[-1]
        return kept, f"the probes the last filter, '{name}', kept (no {EXIT_KIND} has run)"
    return _judged(_empty(), {}), "none: no filter stage holds probes yet"


def _judged_filters(run_dir: Path, stages: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Each filter's effect on the judged responses it saw (a response's `good` is its verdict)."""
    entries = []
    for name, kind in stages:
        if kind in NOT_FILTERS or kind in JUDGED_KINDS:
            continue
        kept, rejected = _probe_rows(run_dir, name, {}, judged=True), _probe_rows(run_dir, name, {}, rejects=True, judged=True)
        if kept.num_rows or rejected.num_rows:
            entries.append(_filter_entry(name, kind, kept, rejected))
    return entries


# --- measuring --------------------------------------------------------------------------------------
def _accuracy(table: pa.Table) -> Proportion:
    judged = [value for value in table[CORRECT].to_pylist() if value is not None]
    return wilson_interval(sum(judged), len(judged))


def _accuracy_groups(samples: pa.Table, survivors: pa.Table, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per group of `keys`: probes, sample accuracy, survivor accuracy, lift, probes not judged."""
    groups = sorted({tuple(row[key] or "" for key in keys) for row in samples.select(list(keys)).to_pylist()})
    entries = []
    for group in groups:
        in_group = _rows_of(samples, keys, group)
        kept = _rows_of(survivors, keys, group)
        sampled, surviving = _accuracy(in_group), _accuracy(kept)
        not_judged = {parent for parent, correct in zip(in_group[contracts.PARENT_ID].to_pylist(), in_group[CORRECT].to_pylist()) if correct is None}
        entries.append(
            {
                **dict(zip(keys, group)),
                "probes": len(set(in_group[contracts.PARENT_ID].to_pylist())),
                "not_judged": len(not_judged),
                "samples": _plain(sampled),
                "survivors": _plain(surviving),
                "lift": _plain(newcombe_difference(surviving, sampled)),
            }
        )
    return entries


def _rows_of(table: pa.Table, keys: tuple[str, ...], group: tuple[str, ...]) -> pa.Table:
    mask = None
    for key, value in zip(keys, group):
        match = pc.equal(pc.fill_null(table[key], ""), value)
        mask = match if mask is None else pc.and_(mask, match)
    return table.filter(mask)


def _filter_entry(name: str, kind: str, kept: pa.Table, rejected: pa.Table) -> dict[str, Any]:
    """One filter's effect on the probes it saw."""
    kept_accuracy, rejected_accuracy = _accuracy(kept), _accuracy(rejected)
    wrong_rejected = rejected_accuracy.n - rejected_accuracy.k
    wrong = wrong_rejected + kept_accuracy.n - kept_accuracy.k
    difference = newcombe_difference(kept_accuracy, rejected_accuracy)
    return {
        "stage": name,
        "kind": kind,
        "in": kept.num_rows + rejected.num_rows,
        "kept": kept.num_rows,
        "rejected": rejected.num_rows,
        "rejected_by_reason": dict(sorted(Counter(rejected[contracts.REJECT_REASON].to_pylist()).items())),
        "kept_accuracy": _plain(kept_accuracy),
        "rejected_accuracy": _plain(rejected_accuracy),
        "precision": _plain(wilson_interval(wrong_rejected, rejected_accuracy.n)),
        "recall": _plain(wilson_interval(wrong_rejected, wrong)),
        "kept_minus_rejected": _plain(difference),
        "verdict": filter_verdict(difference),
    }


def filter_verdict(difference: Interval) -> str:
    """From the interval of kept-minus-rejected accuracy: `helps` above zero, `hurts` below,
    `unclear` across it; `n/a` when the filter kept or rejected no judged probe."""
    if difference.estimate is None:
        return "n/a"
    if difference.low > 0:
        return "helps"
    if difference.high < 0:
        return "hurts"
    return "unclear"


def _critique_auc(filters: list) -> dict[str, Any] | None:
    """AUC of `critique_score` for right against wrong answers, over every probe the critique scored."""
    for name, kind, kept, rejected in filters:
        if kind != CRITIQUE_KIND:
            continue
        rows = pa.concat_tables([kept, rejected])
        rows = rows.filter(pc.and_(pc.is_valid(rows[contracts.CRITIQUE_SCORE]), pc.is_valid(rows[CORRECT])))
        scores = rows[contracts.CRITIQUE_SCORE].to_numpy(zero_copy_only=False)
        right = rows[CORRECT].to_numpy(zero_copy_only=False).astype(bool)
        auc = rank_auc(scores[right], scores[~right])
        return {"stage": name, "right": int(right.sum()), "wrong": int((~right).sum()), **_plain(auc)}
    return None


def _plain(value: Proportion | Interval) -> dict[str, Any]:
    return {key: round(number, 4) if isinstance(number, float) else number for key, number in dataclasses.asdict(value).items()}
