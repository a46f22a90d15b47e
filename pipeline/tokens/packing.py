"""Fixed-length packed training sequences streamed from a mix, sources sampled by phase weights.

`PackedSequenceReader` fills sequences of `seq_len` tokens with whole documents (shard rows) in
order, cutting the last one at the sequence end and continuing it at the start of the next.
Boundaries are always marked:

- every document ends with the tokenizer's end-of-document id (appended if a shard row lacks it);
- `segment_ids` number the document pieces of a sequence 1, 2, ...; attention should not
  cross a change of segment id;
- `position_ids` count positions within the document, so a piece that continues a document
  cut at the previous sequence's end starts above 0 (and `continues_document` says so).

For next-token training each sequence also carries `labels` (the token that follows each
position in the stream, the last one included: it is the first token of the next sequence) and
`label_mask` (1 where that label is a training target: its loss mask is 1 and it belongs to the
same document as the position). A trainer that weights its loss by `label_mask` trains on every
unmasked token of the documents except their first, which nothing precedes, and on no token
twice: a cut at a sequence end loses no target.

Sources are drawn per document with probability proportional to weight / mean document length,
so in expectation each source supplies its phase weight as a fraction of tokens. Within a
source, each epoch visits its shards and row groups in a seeded order and each row group's rows
in a seeded permutation. The stream is a pure function of (mix, phase, seq_len, seed); the
`state_dict()` after n sequences resumes it exactly at sequence n + 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthmix.pipeline import contracts
from synthmix.pipeline.storage import as_path, parquet_file
from synthmix.pipeline.tokens.mixture import Mix, Phase, read_mix, resolve_shard_path
from synthmix.pipeline.tokens.shards import INPUT_IDS, LOSS_MASK


@dataclass(frozen=True)
class PackedSequence:
    """One training sequence; all arrays have length `seq_len`."""

    input_ids: np.ndarray  # int32
    loss_mask: np.ndarray  # uint8: 1 where the token is a training target
    position_ids: np.ndarray  # int32: position within its document
    segment_ids: np.ndarray  # int32: 1-based document piece within this sequence
    labels: np.ndarray  # int32: the next token of the stream after each position
    label_mask: np.ndarray  # uint8: 1 where labels[i] is a target (unmasked, same document as position i)
    sources: tuple[str, ...]  # source of each segment: sources[segment_id - 1]
    continues_document: bool  # segment 1 continues a document cut by the previous sequence


class _SourceStream:
    """The documents of one source, epoch after epoch, with a cursor that survives a restart."""

    def __init__(self, source: str, source_index: int, shards: list[Path], seed: int, eos_id: int) -> None:
        self.source = source
        self._source_index = source_index
        self._shards = shards
        self._seed = seed
        self._eos_id = eos_id
        self._files: dict[Path, pq.ParquetFile] = {}
        # cursor: epoch, position in the epoch's shard order, row group, row within it, token offset
        self.epoch = self.shard_position = self.row_group = self.row = self.offset = 0
        self._loaded: tuple[int, int, int] | None = None
        self._ids = self._masks = self._offsets = np.empty(0)
        self._order = np.empty(0, dtype=np.int64)

    @property
    def cursor(self) -> list[int]:
        return [self.epoch, self.shard_position, self.row_group, self.row, self.offset]

    @cursor.setter
    def cursor(self, value: list[int]) -> None:
        self.epoch, self.shard_position, self.row_group, self.row, self.offset = (int(v) for v in value)
        self._loaded = None

    def document(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids and loss mask of the document under the cursor (whole, offset not applied)."""
        self._load()
        row = int(self._order[self.row])
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        ids, mask = self._ids[start:end], self._masks[start:end]
        if end == start or ids[-1] != self._eos_id:
            ids = np.append(ids, np.int32(self._eos_id))
            mask = np.append(mask, np.uint8(1))
        return ids, mask

    def advance(self) -> None:
        """Move to the next document."""
        self.row += 1
        self.offset = 0

    def _load(self) -> None:
        """Make the cursor point at a document, reading its row group if not yet in memory."""
        while True:
            order = self._shard_order(self.epoch)
            if self.shard_position >= len(order):
                self.epoch, self.shard_position, self.row_group, self.row = self.epoch + 1, 0, 0, 0
                continue
            shard = self._shards[order[self.shard_position]]
            groups = self._file(shard).num_row_groups
            if self.row_group >= groups:
                self.shard_position, self.row_group, self.row = self.shard_position + 1, 0, 0
                continue
            key = (self.epoch, self.shard_position, self.row_group)
            if self._loaded != key:
                self._read_group(shard, key)
            if self.row < len(self._order):
                return
            self.row_group, self.row = self.row_group + 1, 0

    def _read_group(self, shard: Path, key: tuple[int, int, int]) -> None:
        table = self._file(shard).read_row_group(self.row_group, columns=[INPUT_IDS, LOSS_MASK, contracts.SOURCE])
        table = table.filter(pc.equal(table.column(contracts.SOURCE), self.source))
        ids = table.column(INPUT_IDS).combine_chunks()
        self._offsets = ids.offsets.to_numpy() - ids.offsets[0].as_py()
        self._ids = ids.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        # A null mask means every token is a target; flatten() skips null rows, so scatter the
        # values of the rows that have a mask onto their tokens.
        masks = table.column(LOSS_MASK).combine_chunks()
        self._masks = np.ones(len(self._ids), dtype=np.uint8)
        if masks.null_count < len(masks):
            has_mask = np.repeat(masks.is_valid().to_numpy(zero_copy_only=False), np.diff(self._offsets))
            self._masks[has_mask] = masks.flatten().to_numpy(zero_copy_only=False)
        rng = np.random.default_rng([self._seed, self._source_index, *key])
        self._order = rng.permutation(table.num_rows)
        self._loaded = key

    def _shard_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self._seed, self._source_index, epoch, 1 << 30]).permutation(len(self._shards))

    def _file(self, path: Path) -> pq.ParquetFile:
        if path not in self._files:
            self._files[path] = parquet_file(path)  # local, or an s3:// shard read by ranges
        return self._files[path]


class PackedSequenceReader:
    """Iterate `PackedSequence`s of a mix phase, forever (sources cycle through epochs)."""

    def __init__(self, mix_path: Path, *, phase: Phase = "main", seq_len: int, seed: int, state: dict[str, Any] | None = None) -> None:
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        mix_path = as_path(mix_path)  # a mix.json on disk or in a bucket (s3://...)
        mix = read_mix(mix_path)
        weights = {source: w for source, w in mix.phases[phase].items() if w > 0}
        if not weights:
            raise ValueError(f"mix phase {phase!r} of {mix_path} gives no source a positive weight")
        empty = [source for source in weights if mix.rows_by_source.get(source, 0) == 0]
        if empty:
            raise ValueError(f"mix phase {phase!r} weights sources {empty} that have no rows in {mix_path}")
        self.sources = sorted(weights)
        mean_length = np.array([mix.tokens_by_source[s] / mix.rows_by_source[s] for s in self.sources])
        per_document = np.array([weights[s] for s in self.sources]) / mean_length
        self._cumulative = np.cumsum(per_document / per_document.sum())
        eos_id = int(mix.tokenizer["eos_id"])
        self._streams = {
            source: _SourceStream(
                source,
                index,
                [resolve_shard_path(mix_path, shard) for shard in mix.shards if shard.rows_by_source.get(source)],
                seed,
                eos_id,
            )
            for index, source in enumerate(self.sources)
        }
        self._identity = {"mix_sha256": _mix_identity(mix), "phase": phase, "seq_len": seq_len, "seed": seed}
        self._seq_len = seq_len
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._active: str | None = None
        self.sequences = 0
        if state is not None:
            self.load_state_dict(state)

    def __iter__(self) -> Iterator[PackedSequence]:
        while True:
            yield self.next_sequence()

    def next_sequence(self) -> PackedSequence:
        """The next packed sequence of the stream."""
        n = self._seq_len
        ids = np.empty(n, dtype=np.int32)
        mask = np.empty(n, dtype=np.uint8)
        positions = np.empty(n, dtype=np.int32)
        segments = np.empty(n, dtype=np.int32)
        sources: list[str] = []
        continues = self._active is not None and self._streams[self._active].offset > 0
        filled = 0
        while filled < n:
            if self._active is None:
                self._active = self._draw_source()
            stream = self._streams[self._active]
            document_ids, document_mask = stream.document()
            start = stream.offset
            take = min(n - filled, len(document_ids) - start)
            ids[filled : filled + take] = document_ids[start : start + take]
            mask[filled : filled + take] = document_mask[start : start + take]
            positions[filled : filled + take] = np.arange(start, start + take)
            sources.append(self._active)
            segments[filled : filled + take] = len(sources)
            filled += take
            if start + take == len(document_ids):
                stream.advance()
                self._active = None
            else:
                stream.offset = start + take
        next_id, next_is_target = self._peek()
        labels = np.append(ids[1:], np.int32(next_id))
        label_mask = np.append(mask[1:] * (segments[1:] == segments[:-1]), np.uint8(next_is_target)).astype(np.uint8)
        self.sequences += 1
        return PackedSequence(ids, mask, positions, segments, labels, label_mask, tuple(sources), continues)

    def _peek(self) -> tuple[int, bool]:
        """The stream's next token and whether it is a target of the current sequence's last position.

        When the last document ended exactly here, the next document's source is drawn now (the
        draw the next sequence would make first, so the stream is unchanged); its first token
        starts another document and is no target.
        """
        if self._active is None:
            self._active = self._draw_source()
        stream = self._streams[self._active]
        document_ids, document_mask = stream.document()
        return int(document_ids[stream.offset]), stream.offset > 0 and bool(document_mask[stream.offset])

    def state_dict(self) -> dict[str, Any]:
        """JSON-able position of the stream: pass it as `state` to resume right after here."""
        return {
            **self._identity,
            "sequences": self.sequences,
            "rng": self._rng.bit_generator.state,
            "active": self._active,
            "cursors": {source: stream.cursor for source, stream in self._streams.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a `state_dict()` taken on the same mix, phase, seq_len and seed."""
        for key, value in self._identity.items():
            if state.get(key) != value:
                raise ValueError(
                    f"reader state was taken with {key}={state.get(key)!r}, this reader has {value!r}; "
                    "resume with the same mix, phase, seq_len and seed, or start without state"
                )
        self.sequences = int(state["sequences"])
        self._rng.bit_generator.state = state["rng"]
        self._active = state["active"]
        for source, cursor in state["cursors"].items():
            self._streams[source].cursor = cursor

    def _draw_source(self) -> str:
        index = int(np.searchsorted(self._cumulative, self._rng.random(), side="right"))
        return self.sources[min(index, len(self.sources) - 1)]


def make_torch_dataset(mix_path: Path, *, phase: Phase = "main", seq_len: int, seed: int) -> Any:
    """A `torch.utils.data.IterableDataset` of dicts of tensors: input_ids, loss_mask, position_ids,
    segment_ids, labels, label_mask.

    With DataLoader workers, worker k of n keeps sequences k, k+n, ... of the one stream, so the
    workers together yield the single-process stream without overlap.
    """
    try:
        import torch
        from torch.utils.data import IterableDataset, get_worker_info
    except ImportError as error:
        raise ImportError(f"make_torch_dataset needs torch ({error}); install torch, or iterate PackedSequenceReader directly") from error

    class PackedTorchDataset(IterableDataset):  # type: ignore[type-arg]
        def __iter__(self) -> Iterator[dict[str, Any]]:
            worker = get_worker_info()
            stride, keep = (worker.num_workers, worker.id) if worker is not None else (1, 0)
            reader = PackedSequenceReader(mix_path, phase=phase, seq_len=seq_len, seed=seed)
            for index, sequence in enumerate(reader):
                if index % stride == keep:
                    yield {
                        "input_ids": torch.from_numpy(sequence.input_ids.astype(np.int64)),
                        "loss_mask": torch.from_numpy(sequence.loss_mask),
                        "position_ids": torch.from_numpy(sequence.position_ids.astype(np.int64)),
                        "segment_ids": torch.from_numpy(sequence.segment_ids),
                        "labels": torch.from_numpy(sequence.labels.astype(np.int64)),
                        "label_mask": torch.from_numpy(sequence.label_mask),
                    }

    return PackedTorchDataset()


def _mix_identity(mix: Mix) -> str:
    """The shard hashes in order: a resumed stream must read the very same files."""
    return hashlib.sha256("".join(shard.sha256 for shard in mix.shards).encode()).hexdigest()
