"""The run's funnel: rows in, kept and rejected by reason, LLM tokens and wall time per stage.

Read from stage manifests only (no Parquet), so it answers instantly on any run size. States
(fresh/stale/missing/interrupted) come from the caller, who knows the job's current
fingerprints (`synthmix.pipeline.inspection.run_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synthmix.pipeline.inspection.run_contents import SHARDS, shard_files, stage_manifest, stage_names


def run_funnel(run_dir: Path, states: Mapping[str, str], notes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One entry per stage, in run order: counts, rejects by reason, tokens per model, wall time, state.

    `states` maps stage name to its state; stages present on disk but not in `states` get
    'unlisted' (not in the job any more), and stages of the job with no folder keep their state.
    `notes` maps a stage to why its state is what it is (an undecided one: the missing input);
    entries with a note carry it as `why`.
    """
    names = list(states)
    names += [name for name in stage_names(run_dir) if name not in states]
    rows = []
    for name in names:
        if name == SHARDS:
            rows.append(_shards_entry(run_dir))
            continue
        manifest = stage_manifest(run_dir, name) or {}
        rows.append(
            {
                "stage": name,
                "state": states.get(name, "unlisted"),
                "rows_in": manifest.get("rows_in"),
                "rows_out": manifest.get("rows_out"),
                "rows_rejected": manifest.get("rows_rejected"),
                "rejected": manifest.get("rejected", {}),
                "llm": manifest.get("llm", {}),
                "wall_s": manifest.get("wall_s"),
                **({"why": notes[name]} if notes and name in notes else {}),
            }
        )
    return rows


def group_by_reason(notes: Mapping[str, str]) -> list[tuple[list[str], str]]:
    """Stages sharing a reason, together, in stage order: every stage downstream of a missing
    input gives the same one, and a reader wants it once."""
    grouped: dict[str, list[str]] = {}
    for stage, reason in notes.items():
        grouped.setdefault(reason, []).append(stage)
    return [(stages, reason) for reason, stages in grouped.items()]


def _shards_entry(run_dir: Path) -> dict[str, Any]:
    # Shard footers hold the row counts; no data pages are read.
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in shard_files(run_dir))
    return {
        "stage": SHARDS,
        "state": "present",
        "rows_in": None,
        "rows_out": rows,
        "rows_rejected": None,
        "rejected": {},
        "llm": {},
        "wall_s": None,
    }
