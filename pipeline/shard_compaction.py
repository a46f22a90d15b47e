"""Compacting a stage's part files into budget-sized shards, in id order, with bounded memory.

The tokenize stage commits one part file per batch, and batches depend on how Ray cut the
input: a resumed run cuts the rest differently from an uninterrupted one. Shards are written
in `id` order instead, so the same rows always make byte-identical shards however they were
batched. Each part file must be sorted by `id` (the stage sorts every batch); the parts are
merged k ways, a few thousand rows per part in memory at a time. More parts than `fan_in`
are first merged in groups into sorted scratch runs, so open files stay bounded too.

The shard folder is replaced whole: shards are written into a hidden sibling folder, which
is renamed into place once complete, so a reader sees the old shards or the new, never a mix.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import columns
from pipeline.shards import DEFAULT_ROW_GROUP_TOKENS, DEFAULT_SHARD_TOKENS, ShardInfo, ShardWriter

SHARD_PREFIX = "shard"
DEFAULT_FAN_IN = 64
DEFAULT_CHUNK_ROWS = 512


class UnsortedRunError(ValueError):
    """A part file given to the merge is not sorted by id."""


class _SortedRun:
    """Rows of one id-sorted Parquet file, read a chunk at a time; `pending` holds rows not yet merged."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path = path
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        self.pending: pa.Table | None = None
        self.read_all = False
        self._last_id: str | None = None

    def refill(self) -> None:
        """Read chunks until some rows are pending or the file is done."""
        while not self.read_all and (self.pending is None or self.pending.num_rows == 0):
            try:
                batch = next(self._batches)
            except StopIteration:
                self.read_all = True
                return
            chunk = pa.Table.from_batches([batch])
            self._check_sorted(chunk)
            self.pending = chunk if self.pending is None else pa.concat_tables([self.pending, chunk])

    def last_pending_id(self) -> str:
        assert self.pending is not None and self.pending.num_rows
        return self.pending.column(columns.ID)[-1].as_py()

    def take_up_to(self, bound: str | None) -> pa.Table | None:
        """Remove and return the pending rows with id <= bound (all of them for None)."""
        if self.pending is None or self.pending.num_rows == 0:
            return None
        ids = self.pending.column(columns.ID)
        count = self.pending.num_rows if bound is None else int(pc.sum(pc.less_equal(ids, bound)).as_py() or 0)
        taken = self.pending.slice(0, count)
        self.pending = self.pending.slice(count)
        return taken if count else None

    def _check_sorted(self, chunk: pa.Table) -> None:
        ids = chunk.column(columns.ID)
        if chunk.num_rows == 0:
            return
        ordered = chunk.num_rows < 2 or pc.all(pc.less_equal(ids.slice(0, chunk.num_rows - 1), ids.slice(1))).as_py()
        first = ids[0].as_py()
        if not ordered or (self._last_id is not None and first < self._last_id):
            raise UnsortedRunError(
                f"{self.path} is not sorted by {columns.ID!r}; the merge needs each part sorted "
                "(the tokenize stage sorts every batch: was this file written by another stage?)"
            )
        self._last_id = ids[-1].as_py()


def merge_sorted_runs(paths: Sequence[Path], *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]:
    """Rows of id-sorted Parquet files in one id order, as tables of a few chunks each.

    Each round emits every pending row that cannot be preceded by a row still unread: ids up
    to the smallest last pending id among files not yet fully read. Equal ids keep file order.
    """
    runs = [_SortedRun(path, chunk_rows) for path in paths]
    while True:
        for run in runs:
            run.refill()
        unread = [run for run in runs if not run.read_all]
        if not unread and all(run.pending is None or run.pending.num_rows == 0 for run in runs):
            return
        bound = min(run.last_pending_id() for run in unread) if unread else None
        pieces = [piece for run in runs if (piece := run.take_up_to(bound)) is not None]
        merged = pa.concat_tables(pieces)
        yield merged.take(pc.sort_indices(merged, sort_keys=[(columns.ID, "ascending")]))


def compact_into_shards(
    part_files: Sequence[Path],
    shard_dir: Path,
    *,
    tokenizer: Mapping[str, Any],
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    row_group_tokens: int = DEFAULT_ROW_GROUP_TOKENS,
    fan_in: int = DEFAULT_FAN_IN,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep: Sequence[str] = (),
) -> list[ShardInfo]:
    """Replace `shard_dir` with `shard-NNNNN.parquet` files holding every row of `part_files`, in id order.

    Rerunning on the same rows gives byte-identical shards; a crash leaves the previous
    folder (or none) plus a hidden scratch folder that the next call removes. Files of the old
    folder named in `keep` are copied into the new one (the caller checks they still hold).
    """
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2 (files merged at once), got {fan_in}")
    _remove_scratch_folders(shard_dir)
    scratch = shard_dir.with_name(f".{shard_dir.name}.tmp-{os.getpid()}-{time.time_ns()}")
    scratch.mkdir(parents=True)
    try:
        runs = _merge_down_to(list(part_files), fan_in, scratch / "_runs", chunk_rows)
        writer = ShardWriter(
            scratch, prefix=SHARD_PREFIX, tokenizer=tokenizer, shard_tokens=shard_tokens, row_group_tokens=row_group_tokens
        )
        with writer:
            for table in merge_sorted_runs(runs, chunk_rows=chunk_rows):
                writer.write(table)
        shards = writer.close()
        shutil.rmtree(scratch / "_runs", ignore_errors=True)
        for name in keep:
            if (shard_dir / name).is_file():
                shutil.copy2(shard_dir / name, scratch / name)
        _swap_into_place(scratch, shard_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return [ShardInfo(path=shard_dir / info.path.name, rows=info.rows, tokens=info.tokens, sha256=info.sha256) for info in shards]


def _merge_down_to(paths: list[Path], fan_in: int, scratch: Path, chunk_rows: int) -> list[Path]:
    """Merge groups of `fan_in` files into sorted scratch runs until at most `fan_in` remain."""
    level = 0
    while len(paths) > fan_in:
        scratch.mkdir(parents=True, exist_ok=True)
        merged_paths = []
        for group_index, start in enumerate(range(0, len(paths), fan_in)):
            group = paths[start : start + fan_in]
            target = scratch / f"run-{level}-{group_index:06d}.parquet"
            with pq.ParquetWriter(target, pq.read_schema(group[0]), compression="zstd") as writer:
                for table in merge_sorted_runs(group, chunk_rows=chunk_rows):
                    writer.write_table(table)
            merged_paths.append(target)
        if level:
            for path in paths:
                path.unlink()
        paths, level = merged_paths, level + 1
    return paths


def _swap_into_place(ready: Path, target: Path) -> None:
    if target.exists():
        trash = target.with_name(f".{target.name}.trash-{os.getpid()}-{time.time_ns()}")
        os.replace(target, trash)
        os.replace(ready, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(ready, target)


def _remove_scratch_folders(shard_dir: Path) -> None:
    """Leftovers of a killed compaction (scratch or trash folders beside the shard folder)."""
    if not shard_dir.parent.is_dir():
        return
    for pattern in (f".{shard_dir.name}.tmp-*", f".{shard_dir.name}.trash-*"):
        for leftover in shard_dir.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)
