"""Committing one batch of a stage: transform, check lineage, split rejects, write atomically.

This runs inside Ray workers, as a `map_batches` task or a file task. A worker process keeps
the stage instance it set up (models, indexes) for later batches of the same stage attempt,
so `setup()` runs once per process rather than once per batch, without an actor pool (an
actor pool that takes every CPU can stall the plan on small machines). A job runs its stage
attempts one after another, so a process holds one attempt's stage at most: the first batch
of the next attempt tears the previous stage down (`teardown()`) and drops it, and the driver
releases what it holds when an attempt ends (`release_worker_stages`).

Nothing here needs Ray, so the invariants (nothing lost, in = out + rejected, atomic units)
are unit-tested on plain tables (tests/pipeline/test_invariants.py).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import Lineage, LineageError, with_reject_columns
from synthmix.pipeline.storage import read_parquet
from synthmix.pipeline.store import StageDir, UnitCounts


class CommittedStage(Protocol):
    """What committing needs of a stage; `synthmix.pipeline.stage.Stage` provides it (no import back)."""

    name: str
    lineage: Lineage
    resumable: bool
    context: Any  # a StageContext: run_dir and stage_name locate the StageDir
    resources: Any  # a Resources: batch_size slices a file task's rows

    def setup(self) -> None: ...

    def teardown(self) -> None: ...

    def transform(self, batch: pa.Table) -> pa.Table: ...

    def output_schema(self) -> pa.Schema: ...


_WORKER_STAGES: dict[str, CommittedStage] = {}


def unit_name(input_ids: pa.Array) -> str:
    """Name a unit by its input ids, so a redone unit lands on the same file names."""
    digest = hashlib.sha256()
    for value in sorted(input_ids.to_pylist()):
        digest.update(value.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


@dataclass
class ProcessedBatch:
    """One transformed batch, split and counted, not yet written."""

    input_ids: pa.Array
    accepted: pa.Table
    rejected: pa.Table
    counts: UnitCounts


def worker_stage(stage: CommittedStage, attempt_key: str) -> CommittedStage:
    """The stage instance this process set up for this attempt (set up on first use). A batch of
    a new attempt means the previous attempt has ended: its stage is released first."""
    instance = _WORKER_STAGES.get(attempt_key)
    if instance is None:
        release_worker_stages()
        stage.setup()
        instance = _WORKER_STAGES[attempt_key] = stage
    return instance


def release_worker_stages(attempt_key: str | None = None) -> None:
    """Tear down and drop the stages this process set up: for one attempt, or every one."""
    for key in [key for key in _WORKER_STAGES if attempt_key in (None, key)]:
        _WORKER_STAGES.pop(key).teardown()


def process_batch(stage: CommittedStage, batch: pa.Table) -> ProcessedBatch:
    """Transform a batch with a set-up stage, check its lineage, split accepted from rejected rows."""
    input_ids = batch[contracts.ID].combine_chunks()
    output = stage.transform(batch)
    if stage.resumable:
        # A global stage's batches are its output, already regrouped: its run() owns lineage.
        check_lineage(stage, input_ids, output)
    accepted, rejected = split_rejects(output, stage.output_schema())
    counts = UnitCounts(
        rows_in=batch.num_rows,
        rows_out=accepted.num_rows,
        rejected=Counter(rejected[contracts.REJECT_REASON].to_pylist()),
        llm=count_llm_usage(batch),
        llm_by_domain=count_llm_usage_by_domain(batch),
    )
    return ProcessedBatch(input_ids, accepted, rejected, counts)


def counts_row(unit: str, counts: UnitCounts) -> pa.Table:
    """What a committed unit reports to the driver's progress line."""
    return pa.table({"unit": [unit], "rows_in": [counts.rows_in], "rows_out": [counts.rows_out], "rows_rejected": [counts.rows_rejected]})


def concat_counts(rows: list[pa.Table]) -> pa.Table:
    """The counts rows of a task's units as one table (no rows when it committed none)."""
    return pa.concat_tables(rows) if rows else counts_row("", UnitCounts()).slice(0, 0)


def drop_committed_rows(table: pa.Table, done_ids: pa.Array | None) -> pa.Table:
    """`table` less the rows whose ids a committed unit already covers (what a resume skips)."""
    if done_ids is None or not len(done_ids):
        return table
    return table.filter(pc.invert(pc.is_in(table[contracts.ID], value_set=done_ids)))


def pending_slices(files: Sequence[Path], done_ids: pa.Array | None, batch_size: int) -> Iterator[pa.Table]:
    """Each file's rows not yet committed, in file order, in slices of `batch_size` rows."""
    for path in files:
        table = drop_committed_rows(read_parquet(path), done_ids)
        for offset in range(0, table.num_rows, batch_size):
            yield table.slice(offset, batch_size)


def commit_as_unit(stage: CommittedStage, batch: pa.Table) -> pa.Table:
    """Transform one batch with a set-up stage and commit it as a unit; one row of counts for progress."""
    done = process_batch(stage, batch)
    unit = unit_name(done.input_ids)
    StageDir(stage.context.run_dir, stage.context.stage_name).commit_unit(unit, done.accepted, done.rejected, done.input_ids, done.counts)
    return counts_row(unit, done.counts)


def commit_batch(batch: pa.Table, *, stage: CommittedStage, attempt_key: str) -> pa.Table:
    """A Ray Data batch: committed as a unit by this process's set-up stage of the attempt."""
    return commit_as_unit(worker_stage(stage, attempt_key), batch)


def commit_in_slices(stage: CommittedStage, files: Sequence[Path], done_ids: pa.Array | None) -> pa.Table:
    """A file task's default work: every slice of pending rows committed as a unit by the set-up stage."""
    return concat_counts([commit_as_unit(stage, batch) for batch in pending_slices(files, done_ids, stage.resources.batch_size)])


def check_lineage(stage: CommittedStage, input_ids: pa.Array, output: pa.Table) -> None:
    """Nothing is lost silently: every input row must show up as an output or a reject row."""
    if stage.lineage is Lineage.SAME_ROW:
        in_ids = input_ids.to_pylist()
        out_ids = output[contracts.ID].to_pylist()
        if len(out_ids) != len(in_ids) or set(out_ids) != set(in_ids):
            lost = sorted(set(in_ids) - set(out_ids))[:5]
            raise LineageError(
                f"stage '{stage.name}' returned {len(out_ids)} rows for {len(in_ids)} input rows with lineage same_row "
                f"(ids missing: {lost}). Return every input row with its id, reject_reason set on rejects; "
                f"a stage that makes new rows declares Lineage.CHILDREN."
            )
        return
    parents = set(output[contracts.PARENT_ID].to_pylist()) if contracts.PARENT_ID in output.column_names else set()
    orphans = [value for value in input_ids.to_pylist() if value not in parents][:5]
    if orphans:
        raise LineageError(
            f"stage '{stage.name}' produced no output or reject row for input ids {orphans}; "
            f"emit a reject row (parent_id = the input id) for an input that yields nothing"
        )


def split_rejects(output: pa.Table, schema: pa.Schema) -> tuple[pa.Table, pa.Table]:
    """Accepted rows cast to the stage schema; rejected rows keep the schema plus reason and detail."""
    if contracts.REJECT_REASON not in output.column_names:
        output = output.append_column(contracts.REJECT_REASON, pa.nulls(output.num_rows, pa.string()))
    if contracts.REJECT_DETAIL not in output.column_names:
        output = output.append_column(contracts.REJECT_DETAIL, pa.nulls(output.num_rows, pa.string()))
    accepted, rejected = _split(output, pc.is_valid(output[contracts.REJECT_REASON]))
    missing = [name for name in schema.names if name not in output.column_names]
    if missing:
        raise KeyError(f"stage output lacks declared column(s) {missing}; return them (null where unknown)")
    accepted = accepted.select(schema.names).cast(schema)
    reject_schema = with_reject_columns(schema)
    rejected = rejected.select(reject_schema.names)
    rejected = rejected.set_column(
        rejected.schema.get_field_index(contracts.REJECT_REASON),
        contracts.REJECT_REASON,
        pc.cast(rejected[contracts.REJECT_REASON], pa.string()),
    ).cast(reject_schema)
    return accepted, rejected


def _split(table: pa.Table, is_rejected: pa.ChunkedArray) -> tuple[pa.Table, pa.Table]:
    """Rows where `is_rejected` is false, and where it is true. A filter copies every column
    (token ids included); when one side is empty, slices avoid the copy."""
    rejected_rows = pc.sum(is_rejected).as_py() or 0
    if rejected_rows == 0:
        return table, table.slice(0, 0)
    if rejected_rows == table.num_rows:
        return table.slice(0, 0), table
    return table.filter(pc.invert(is_rejected)), table.filter(is_rejected)


def count_llm_usage(batch: pa.Table) -> dict[str, Counter]:
    """Requests and tokens per model, from the columns the LLM layer adds to each generated row."""
    usage: dict[str, Counter] = {}
    for model, _, prompt_tokens, generated_tokens, requests in _llm_rows(batch):
        _count_call(usage.setdefault(model, Counter()), prompt_tokens, generated_tokens, requests)
    return usage


def count_llm_usage_by_domain(batch: pa.Table) -> dict[str, dict[str, Counter]]:
    """The same per model and `domain` of the rows, for batches that carry a domain (the cost of
    a kept pair per domain, synthmix.pipeline.inspection.generation_cost)."""
    if contracts.DOMAIN not in batch.column_names:
        return {}
    usage: dict[str, dict[str, Counter]] = {}
    for model, domain, prompt_tokens, generated_tokens, requests in _llm_rows(batch):
        _count_call(usage.setdefault(model, {}).setdefault(domain or "", Counter()), prompt_tokens, generated_tokens, requests)
    return usage


def _llm_rows(batch: pa.Table) -> Iterator[tuple[str, str | None, int | None, int | None, int]]:
    """(model, domain, prompt tokens, generated tokens, requests) of every row a model generated:
    one request, or `llm_requests` where a stage asked several for the row (critique)."""
    if contracts.LLM_MODEL not in batch.column_names:
        return
    models = batch[contracts.LLM_MODEL].to_pylist()
    blank = [None] * len(models)
    domains = batch[contracts.DOMAIN].to_pylist() if contracts.DOMAIN in batch.column_names else blank
    prompt = batch[contracts.PROMPT_TOKENS].to_pylist() if contracts.PROMPT_TOKENS in batch.column_names else blank
    generated = batch[contracts.GENERATED_TOKENS].to_pylist() if contracts.GENERATED_TOKENS in batch.column_names else blank
    requests = batch[contracts.LLM_REQUESTS].to_pylist() if contracts.LLM_REQUESTS in batch.column_names else blank
    for model, domain, prompt_tokens, generated_tokens, count in zip(models, domains, prompt, generated, requests, strict=True):
        if model is not None:
            yield model, domain, prompt_tokens, generated_tokens, 1 if count is None else count


def _count_call(counts: Counter, prompt_tokens: int | None, generated_tokens: int | None, requests: int) -> None:
    counts["requests"] += requests
    counts["prompt_tokens"] += prompt_tokens or 0
    counts["generated_tokens"] += generated_tokens or 0
