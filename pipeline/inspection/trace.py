"""One row's whole history across a run: its ancestors up to the seed chunk, and every descendant.

Two passes over the run, each a filtered scan that DuckDB pushes into the Parquet reader:
1. find the row by `id` in any stage (accepted or rejected) to learn its `seed_id`;
2. read every row of that seed's family (`seed_id` equal) from every stage and the shards.
The family is small (one seed's descendants), so the lineage graph is then built in memory:
parents by `parent_id`, upward to the seed; children by `parent_id`, downward to shard rows.
A row id seen in several stages (a stage that keeps its rows, like critique) shows once per
stage, so the history reads seed chunk → instruction → evolved versions → answers → critique
→ shard row. Siblings (other rows from the same seed) are counted, not shown. Every step names
the user's record it comes from, `source_id` and `origin` (file, line or row, chunk), when the
run's rows carry them.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from synthmix.pipeline import contracts
from synthmix.pipeline.inspection.parquet_query import connect, quote_identifier, quote_literal, read_files, run_query
from synthmix.pipeline.inspection.run_contents import SHARDS, TOKEN_COLUMNS, RunInspectionError, data_files, stage_names

# Shown in each step's own keys, not among its columns.
STEP_COLUMNS = (
    contracts.ID,
    contracts.SEED_ID,
    contracts.PARENT_ID,
    contracts.SOURCE_ID,
    contracts.ORIGIN,
    contracts.REJECT_REASON,
    contracts.REJECT_DETAIL,
)


@dataclass
class _Source:
    stage: str
    status: str  # "kept" or "rejected"
    relation: duckdb.DuckDBPyRelation


def trace_row(run_dir: Path, row_id: str) -> dict[str, Any]:
    """The row's history: `steps` from the seed chunk down to shard rows, each with its stage and columns."""
    run_dir = Path(run_dir)
    connection = connect(run_dir)
    sources = _sources(connection, run_dir)
    seed_ids = _find_seed_ids(sources, row_id)
    if seed_ids is None:
        searched = ", ".join(dict.fromkeys(source.stage for source in sources)) or "none"
        raise RunInspectionError(f"id {row_id!r} is in no stage of {run_dir} (searched: {searched}); copy an id from `synthmix inspect`")
    appearances = _read_family(sources, row_id, seed_ids)
    return _history(row_id, appearances)


def _sources(connection: duckdb.DuckDBPyConnection, run_dir: Path) -> list[_Source]:
    sources = []
    for stage in stage_names(run_dir):
        kinds = [("kept", False)] if stage == SHARDS else [("kept", False), ("rejected", True)]
        for status, rejects in kinds:
            files = data_files(run_dir, stage, rejects=rejects)
            if files:
                relation = read_files(connection, files)
                wanted = [name for name in relation.columns if name not in TOKEN_COLUMNS]
                sources.append(_Source(stage, status, relation.project(", ".join(map(quote_identifier, wanted)))))
    return sources


def _find_seed_ids(sources: list[_Source], row_id: str) -> set[str] | None:
    """The seed ids of the row (empty when it has none, e.g. a seed input rejected before chunking); None if absent."""
    condition = f"{quote_identifier(contracts.ID)} = {quote_literal(row_id)}"
    for source in sources:
        if contracts.ID not in source.relation.columns:
            continue
        if contracts.SEED_ID in source.relation.columns:
            found = run_query(source.relation.filter(condition).project(quote_identifier(contracts.SEED_ID)), source.stage, None)
        else:
            found = [(None,)] * len(run_query(source.relation.filter(condition).project(quote_identifier(contracts.ID)), source.stage, None))
        if found:
            return {seed for (seed,) in found if seed is not None}
    return None


def _read_family(sources: list[_Source], row_id: str, seed_ids: set[str]) -> list[dict[str, Any]]:
    """Rows sharing the seed; a source without `seed_id` is matched by id or parent among rows found upstream."""
    known_ids = {row_id}
    appearances = []
    for source in sources:
        names = source.relation.columns
        if contracts.SEED_ID in names and seed_ids:
            values = ", ".join(quote_literal(seed) for seed in sorted(seed_ids))
            condition = f"{quote_identifier(contracts.SEED_ID)} IN ({values}) OR {quote_identifier(contracts.ID)} = {quote_literal(row_id)}"
        else:
            values = ", ".join(quote_literal(value) for value in sorted(known_ids))
            condition = f"{quote_identifier(contracts.ID)} IN ({values})"
            if contracts.PARENT_ID in names:
                condition += f" OR {quote_identifier(contracts.PARENT_ID)} IN ({values})"
        try:
            rows = source.relation.filter(condition).to_arrow_table().to_pylist()
        except duckdb.Error as error:
            raise RunInspectionError(f"reading stage '{source.stage}' for the trace failed: {error}") from None
        for row in rows:
            known_ids.add(row.get(contracts.ID))
            appearances.append({"stage": source.stage, "status": source.status, "row": row})
    return appearances


def _history(row_id: str, appearances: list[dict[str, Any]]) -> dict[str, Any]:
    by_id: dict[str, list[dict]] = defaultdict(list)
    parent_of: dict[str, str] = {}
    children: dict[str, list[str]] = defaultdict(list)
    for appearance in appearances:
        row = appearance["row"]
        identifier = row.get(contracts.ID)
        by_id[identifier].append(appearance)
        parent = row.get(contracts.PARENT_ID)
        if parent is not None and identifier not in parent_of:
            parent_of[identifier] = parent
            children[parent].append(identifier)

    depth = {row_id: 0}
    node = row_id
    # Walk up while the parent is a row of this run (a seed's parent is its source locator).
    while parent_of.get(node) in by_id and parent_of[node] not in depth:
        depth[parent_of[node]] = depth[node] - 1
        node = parent_of[node]
    queue = deque([row_id])
    while queue:
        node = queue.popleft()
        for child in dict.fromkeys(children.get(node, ())):
            if child not in depth:
                depth[child] = depth[node] + 1
                queue.append(child)

    stage_order: dict[str, int] = {}
    for appearance in appearances:
        stage_order.setdefault(appearance["stage"], len(stage_order))
    steps = []
    for identifier, level in sorted(depth.items(), key=lambda item: (item[1], min(stage_order[a["stage"]] for a in by_id[item[0]]), item[0])):
        for appearance in by_id[identifier]:
            row = appearance["row"]
            steps.append(
                {
                    "stage": appearance["stage"],
                    "status": appearance["status"],
                    "relation": "self" if level == 0 else ("ancestor" if level < 0 else "descendant"),
                    "depth": level,
                    "id": identifier,
                    "parent_id": row.get(contracts.PARENT_ID),
                    "seed_id": row.get(contracts.SEED_ID),
                    "reject_reason": row.get(contracts.REJECT_REASON),
                    "reject_detail": row.get(contracts.REJECT_DETAIL),
                    "source_id": row.get(contracts.SOURCE_ID),
                    "origin": row.get(contracts.ORIGIN),
                    "columns": {key: value for key, value in row.items() if key not in STEP_COLUMNS},
                }
            )
    seed_ids = sorted({step["seed_id"] for step in steps if step["seed_id"]})
    return {
        "id": row_id,
        "seed_ids": seed_ids,
        "family_rows": len(by_id),
        "shown_rows": len(depth),
        "steps": steps,
    }
