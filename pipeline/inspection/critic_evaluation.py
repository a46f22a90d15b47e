"""How well each critique stage of a run tells good responses from bad, per signal and per set.

Two kinds of rows carry a known verdict through a critique stage: judged responses
(stages/judged_responses.py: `good` in their marker) and answered probes (stages/probes.py: the
answer's final value against the reference, as `synthmix eval` judges them everywhere). For
each critique stage that saw any, this reads its kept and rejected rows (probe rows only) and
measures, per set and over all of them:

- the AUC of every signal the stage recorded (`critique.signals`: `verdict` P(yes), `score` the
  expected grade, `grounding` as 1 - P(contradicts), `rubric` the aggregate), of
  `critique_score`, and of `stage`: what the stage ranks by, `critique_score` with the pairs its
  checks or a failed reply rejected put last (score -1). AUC with a score-type 95% interval
  (quality/proportions.py), over the rows the signal was read for;
- a threshold table for `critique_score`: for each bar, the share of pairs kept (checks and
  contradictions count as they decided), the precision (good among kept) and the recall (kept
  among good), so a user picks `min_score` from numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from synthmix.pipeline import contracts
from synthmix.pipeline.store import StageDir
from synthmix.quality.probe_sets import judge_answer
from synthmix.quality.proportions import rank_auc, wilson_interval

CRITIQUE_KIND = "critique"
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Rejected before or without a reading of the judge: the stage ranks them last.
NOT_JUDGED_REASONS = frozenset({"wrong_code_language", "code_syntax_error", "wrong_arithmetic", "incomplete", "refusal", "lang", "llm_error", "parse_error"})
_READ = ("id", "probe", "answer", "critique", "critique_score", "reject_reason")


def evaluate_critics(run_dir: Path, stages: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One entry per critique stage that saw rows with a known verdict (see the module doc)."""
    entries = []
    for name, kind in stages:
        if kind != CRITIQUE_KIND:
            continue
        rows = _labelled_rows(run_dir, name)
        if rows:
            entries.append(_critic_entry(name, rows))
    return entries


def _labelled_rows(run_dir: Path, stage: str) -> list[dict[str, Any]]:
    """The stage's rows with a known verdict: kept and rejected, each with `good` and `set`."""
    stage_dir = StageDir(run_dir, stage)
    rows = []
    for path in [*stage_dir.part_files(), *stage_dir.reject_files()]:
        names = pq.read_schema(path).names
        if contracts.PROBE not in names:
            continue
        table = pq.read_table(path, columns=[name for name in _READ if name in names])
        for row in table.to_pylist():
            if row.get(contracts.PROBE) is None:
                continue
            marker = json.loads(row[contracts.PROBE])
            if "good" in marker:
                good = bool(marker["good"])
            elif marker.get("reference") is not None:
                good = judge_answer(row.get(contracts.ANSWER), marker["reference"])
            else:
                continue  # a code probe: its tests judge it, not known here
            rows.append({**row, "good": good, "set": marker["set"]})
    return rows


def _signal_values(row: dict[str, Any]) -> dict[str, float]:
    """Each signal of one row as a number where higher means better."""
    critique = json.loads(row[contracts.CRITIQUE]) if row.get(contracts.CRITIQUE) else {}
    signals = critique.get("signals", {})
    values = {}
    if "verdict" in signals:
        values["verdict"] = signals["verdict"]
    if "score" in signals:
        values["score"] = signals["score"]
    if "grounding" in signals:
        values["grounding"] = 1 - signals["grounding"]["contradicts"]
    if "rubric" in signals:
        values["rubric"] = signals["rubric"]["aggregate"]
    if row.get(contracts.CRITIQUE_SCORE) is not None:
        values["critique_score"] = row[contracts.CRITIQUE_SCORE]
    not_judged = row.get(contracts.REJECT_REASON) in NOT_JUDGED_REASONS
    values["stage"] = -1.0 if not_judged or row.get(contracts.CRITIQUE_SCORE) is None else row[contracts.CRITIQUE_SCORE]
    return values


def _critic_entry(stage: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    values = [_signal_values(row) for row in rows]
    signals = sorted({name for value in values for name in value}, key=lambda name: (name == "stage", name == "critique_score", name))
    sets = sorted({row["set"] for row in rows})
    aucs = {}
    for group in ("all", *sets):
        chosen = [index for index, row in enumerate(rows) if group == "all" or row["set"] == group]
        aucs[group] = {
            "good": sum(rows[i]["good"] for i in chosen),
            "bad": sum(not rows[i]["good"] for i in chosen),
            **{signal: _auc([values[i].get(signal) for i in chosen], [rows[i]["good"] for i in chosen]) for signal in signals},
        }
    return {"stage": stage, "rows": len(rows), "signals": signals, "auc": aucs, "thresholds": _thresholds(rows, values)}


def _auc(scores: list[float | None], good: list[bool]) -> dict[str, Any]:
    pairs = [(score, label) for score, label in zip(scores, good) if score is not None]
    good_scores = np.array([score for score, label in pairs if label], dtype=float)
    bad_scores = np.array([score for score, label in pairs if not label], dtype=float)
    auc = rank_auc(good_scores, bad_scores)
    return {"n": len(pairs), **{key: (round(value, 4) if isinstance(value, float) else value) for key, value in vars(auc).items()}}


def _thresholds(rows: list[dict[str, Any]], values: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Per bar on critique_score: kept share, precision and recall, as the stage would decide."""
    table = []
    good_total = sum(row["good"] for row in rows)
    for threshold in THRESHOLDS:
        kept = [
            row["good"]
            for row, value in zip(rows, values)
            if value["stage"] >= threshold and row.get(contracts.REJECT_REASON) not in (*NOT_JUDGED_REASONS, "contradicts_source")
        ]
        precision = wilson_interval(sum(kept), len(kept))
        recall = wilson_interval(sum(kept), good_total)
        table.append(
            {
                "min_score": threshold,
                "kept": len(kept),
                "kept_share": round(len(kept) / len(rows), 4),
                "precision": {key: (round(v, 4) if isinstance(v, float) else v) for key, v in vars(precision).items()},
                "recall": {key: (round(v, 4) if isinstance(v, float) else v) for key, v in vars(recall).items()},
            }
        )
    return table
