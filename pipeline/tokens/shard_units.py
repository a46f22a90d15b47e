"""The tokenize stage writes every row once: each shard it closes is committed as a unit.

Merging small unit files into shards afterwards wrote every token twice and ran on one core
at the end (on 2 CPUs the stage reached a third of the bare tokenizer's speed). Instead, a
task streams its input files, slice by slice, through the stage into a ShardWriter, and each
shard the writer closes becomes a unit at once: `part-<task>-<seq>-<ids hash>.parquet`, with
the rejects seen since the previous shard and the ids both cover. `finalize` then only links
the parts into the shard folder in name order.

Input files are split into one task per CPU slot, balanced by bytes, so every core tokenizes
from the start; each task ends with one shard under the budget. A task's units are a prefix
of its stream (the marker is written last), so a resumed task skips the committed rows, starts
a fresh shard, and writes the same shards an uninterrupted task would have written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synthmix.pipeline import contracts
from synthmix.pipeline.file_digest import sha256_file
from synthmix.pipeline.stage import Stage
from synthmix.pipeline.storage import RemotePath, read_parquet, upload_file
from synthmix.pipeline.store import StageDir, UnitCounts, remove_siblings, sibling_path, swap_dir
from synthmix.pipeline.tokens.shards import NUM_TOKENS, ShardInfo, ShardWriter
from synthmix.pipeline.unit_commit import concat_counts, counts_row, pending_slices, process_batch, unit_name

SCRATCH = "_scratch"
SHARD_PREFIX = "shard"


def balanced_groups(files: Sequence[Path], groups: int) -> list[list[Path]]:
    """Consecutive runs of `files` (kept in order) into at most `groups` lists of similar bytes."""
    sizes = [path.stat().st_size for path in files]
    total, groups = sum(sizes), max(1, min(groups, len(files)))
    planned: list[list[Path]] = [[]]
    seen = 0
    for path, size in zip(files, sizes):
        if planned[-1] and len(planned) < groups and seen >= total * len(planned) / groups:
            planned.append([])
        planned[-1].append(path)
        seen += size
    return [group for group in planned if group]


class _ShardUnitCommitter:
    """Turns the shards a ShardWriter closes into committed units of one task."""

    def __init__(self, stage: Stage, task_index: int) -> None:
        self.stage_dir = StageDir(stage.context.run_dir, stage.context.stage_name)
        self.prefix = f"{task_index:05d}"
        # A resumed task continues its numbering after the units it committed before.
        self.sequence = sum(1 for unit in self.stage_dir.committed_units() if unit.startswith(self.prefix + "-"))
        self.accepted_ids: list[pa.Array] = []
        self.rejects: list[pa.Table] = []
        self.counts = UnitCounts()
        self.reported: list[pa.Table] = []

    def add(self, accepted_ids: pa.Array, rejected: pa.Table, counts: UnitCounts) -> None:
        self.accepted_ids.append(accepted_ids)
        if rejected.num_rows:
            self.rejects.append(rejected)
            self.counts.rejected.update(counts.rejected)
            self.counts.rows_in += rejected.num_rows

    def commit(self, shard: ShardInfo | None) -> None:
        """Commit the next unit: `shard`'s rows (None: rejects only) and the rejects seen so far."""
        rows = shard.rows if shard is not None else 0
        if rows == 0 and not self.rejects:
            return
        pending = pa.chunked_array(self.accepted_ids, pa.string())
        rejected = pa.concat_tables(self.rejects) if self.rejects else pa.table({})
        id_chunks = [*pending.slice(0, rows).chunks, *(rejected[contracts.ID].chunks if self.rejects else [])]
        input_ids = pa.concat_arrays(id_chunks) if id_chunks else pa.array([], pa.string())
        unit = f"{self.prefix}-{self.sequence:05d}-{unit_name(input_ids)}"
        counts = UnitCounts(rows_in=self.counts.rows_in + rows, rows_out=rows, rejected=self.counts.rejected)
        if shard is not None:
            upload_file(shard.path, self.stage_dir.part_path(unit))  # a rename, or one upload
        self.stage_dir.commit_unit(unit, None, rejected, input_ids, counts)
        self.reported.append(counts_row(unit, counts))
        self.sequence += 1
        self.accepted_ids = list(pending.slice(rows).chunks)
        self.rejects, self.counts = [], UnitCounts()


def commit_files_as_shards(
    stage: Stage,
    files: Sequence[Path],
    *,
    task_index: int,
    done_ids: pa.Array | None,
    tokenizer: Mapping[str, Any],
    shard_tokens: int,
    row_group_tokens: int,
) -> pa.Table:
    """One task: stream `files` through the (set-up) stage into shards, each committed as a unit."""
    committer = _ShardUnitCommitter(stage, task_index)
    scratch = committer.stage_dir.path / SCRATCH / f"task-{task_index:05d}-{os.getpid()}-{time.time_ns()}"
    if isinstance(scratch, RemotePath):
        # Shards are streamed to a local file and uploaded whole once closed.
        scratch = Path(tempfile.mkdtemp(prefix=f"synthmix-shards-{task_index:05d}-"))
    writer = ShardWriter(scratch, prefix=SHARD_PREFIX, tokenizer=tokenizer, shard_tokens=shard_tokens, row_group_tokens=row_group_tokens)
    closed = 0
    try:
        for batch in pending_slices(files, done_ids, stage.resources.batch_size):
            done = process_batch(stage, batch)
            committer.add(done.accepted[contracts.ID].combine_chunks(), done.rejected, done.counts)
            writer.write(done.accepted)
            for shard in writer.committed[closed:]:
                committer.commit(shard)
                closed += 1
        for shard in writer.close()[closed:]:
            committer.commit(shard)
        committer.commit(None)  # rejects after the last shard
    except BaseException:
        writer.abort()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return concat_counts(committer.reported)


def publish_shards(parts: Sequence[Path], shard_dir: Path) -> list[ShardInfo]:
    """Replace the shards in `shard_dir` with `shard-NNNNN.parquet` links to `parts`, in their order.

    Hard links cost no copy; where the file system refuses them the part is copied. The folder
    is built beside the old one and swapped in, so a reader sees the old shards or the new,
    never a mix. Files of the old folder that are not shards belong to other stages (the mix
    stage's `mix.json`) and are carried over untouched: this stage publishes only its shards.
    """
    if isinstance(shard_dir, RemotePath):
        return _publish_remote_shards(parts, shard_dir)
    for kind in ("tmp", "trash"):
        remove_siblings(shard_dir, kind)  # what a killed publish left
    ready = sibling_path(shard_dir, "tmp")
    ready.mkdir(parents=True)
    try:
        shards = []
        for index, part in enumerate(parts):
            target = ready / f"{SHARD_PREFIX}-{index:05d}.parquet"
            try:
                os.link(part, target)
            except OSError:
                shutil.copy2(part, target)
            tokens = read_parquet(target, columns=[NUM_TOKENS]).column(NUM_TOKENS)
            shards.append(ShardInfo(path=shard_dir / target.name, rows=len(tokens), tokens=int(pc.sum(tokens).as_py() or 0), sha256=sha256_file(target)))
        for other in sorted(shard_dir.iterdir()) if shard_dir.is_dir() else []:
            if other.is_dir():
                shutil.copytree(other, ready / other.name)
            elif not is_shard_file(other):
                shutil.copy2(other, ready / other.name)
        swap_dir(ready, shard_dir)
    except BaseException:
        shutil.rmtree(ready, ignore_errors=True)
        raise
    return shards


def _publish_remote_shards(parts: Sequence[RemotePath], shard_dir: RemotePath) -> list[ShardInfo]:
    """On an object store: server-side copies of the parts under their shard names, then the
    shards of an earlier publish beyond the new count removed. There is no folder swap, so a
    reader during the publish may see old and new shards together; `mix.json` (which the runner
    withdraws before this) lists the consistent set, and the manifest is written after."""
    shards = []
    for index, part in enumerate(parts):
        target = shard_dir / f"{SHARD_PREFIX}-{index:05d}.parquet"
        try:
            part.fs.copy_file(part.key, target.key)
        except OSError as error:
            from synthmix.pipeline.storage import storage_error

            raise storage_error(target, error) from None
        tokens = read_parquet(target, columns=[NUM_TOKENS]).column(NUM_TOKENS)
        shards.append(ShardInfo(path=target, rows=len(tokens), tokens=int(pc.sum(tokens).as_py() or 0), sha256=sha256_file(target)))
    published = {info.path.name for info in shards}
    for other in shard_dir.iterdir():
        if is_shard_file(other) and other.name not in published:
            other.unlink(missing_ok=True)
    return shards


def is_shard_file(path: Path) -> bool:
    """A shard this stage published: `shard-NNNNN.parquet`."""
    return path.name.startswith(f"{SHARD_PREFIX}-") and path.suffix == ".parquet"
