"""Export a mix to Megatron-LM's indexed datasets (`.bin` + `.idx`, the MMIDIDX format), and read them back.

One streaming pass over the mix's shards, row group by row group, writes one indexed dataset
per source (one sequence and one document per shard row), so a phase's weights become
Megatron's `--data-path w1 prefix1 w2 prefix2 ...` blend. Each phase's blend is also written as
`data-args-<phase>.txt`, the file Megatron-LM's `--data-args-path` reads in place of
`--data-path`; `MegatronBlend.config_blend()` is the same blend for Megatron-Core's
`BlendedMegatronDatasetConfig(blend=...)`. The weights are the mix's fractions of tokens:
Megatron draws fixed-length samples, so a share of samples is a share of tokens. Loss masks are
not exported: the format has no place for them and Megatron's GPT dataset trains on every token.

Index layout (little-endian): magic `MMIDIDX\\x00\\x00`, u64 version 1, u8 dtype code,
u64 sequence count, u64 document count, i32 sequence lengths, i64 byte offsets of the
sequences in `.bin`, i64 document index (sequence index where each document starts, plus
the end).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthmix.pipeline import contracts
from synthmix.pipeline.tokens.mixture import PHASES, read_mix, resolve_shard_path
from synthmix.pipeline.tokens.shards import INPUT_IDS

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# Megatron's numeric codes for token dtypes.
DTYPE_CODES: dict[np.dtype, int] = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
# Megatron stores ids as uint16 below this vocabulary size, int32 above.
UINT16_VOCAB_LIMIT = 65500


@dataclass(frozen=True)
class MegatronDataset:
    """One exported indexed dataset: `prefix` + `.bin`/`.idx`."""

    prefix: Path
    sequences: int
    tokens: int


@dataclass(frozen=True)
class MegatronBlend:
    """One phase's blend: dataset prefixes (absolute) and their weights, fractions of tokens summing to 1."""

    prefixes: tuple[str, ...]
    weights: tuple[float, ...]

    @property
    def data_path(self) -> list[str]:
        """Megatron-LM's `--data-path` values: weight, prefix, weight, prefix, ..."""
        return [part for weight, prefix in zip(self.weights, self.prefixes, strict=True) for part in (f"{weight:.6g}", prefix)]

    def config_blend(self) -> tuple[list[str], list[float]]:
        """`BlendedMegatronDatasetConfig.blend`: (prefixes, weights)."""
        return list(self.prefixes), list(self.weights)


@dataclass(frozen=True)
class MegatronExport:
    """All datasets of a mix export and, per phase that weights any source, its blend and `--data-args-path` file.

    A phase whose weights name no exported source (mix.json's `missing_sources`) has no blend:
    Megatron would read an empty `--data-path` as no data at all.
    """

    datasets: dict[str, MegatronDataset]
    blends: dict[str, MegatronBlend] = field(default_factory=dict)
    data_args_files: dict[str, Path] = field(default_factory=dict)
    vocab_size: int = 0

    @property
    def data_paths(self) -> dict[str, list[str]]:
        """Per phase, the `--data-path` values."""
        return {phase: blend.data_path for phase, blend in self.blends.items()}


class _IndexedDatasetWriter:
    """Appends sequences to `prefix.bin` and writes `prefix.idx` on `finish`; temporary names until then."""

    def __init__(self, prefix: Path, dtype: np.dtype) -> None:
        self.prefix = prefix
        self._dtype = dtype
        self._bin_temporary = prefix.with_name(f".{prefix.name}.bin.tmp")
        self._bin: BinaryIO = self._bin_temporary.open("wb")
        self._lengths: list[np.ndarray] = []

    def add(self, values: np.ndarray, lengths: np.ndarray) -> None:
        """Append sequences given as their concatenated ids and each one's length."""
        self._bin.write(values.astype(self._dtype, copy=False).tobytes())
        self._lengths.append(lengths.astype(np.int32, copy=False))

    def finish(self) -> MegatronDataset:
        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.empty(0, dtype=np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * self._dtype.itemsize, out=pointers[1:])
        documents = np.arange(len(lengths) + 1, dtype=np.int64)  # one document per sequence
        index_temporary = self.prefix.with_name(f".{self.prefix.name}.idx.tmp")
        with index_temporary.open("wb") as index:
            index.write(INDEX_MAGIC)
            index.write(struct.pack("<Q", INDEX_VERSION))
            index.write(struct.pack("<B", DTYPE_CODES[self._dtype]))
            index.write(struct.pack("<Q", len(lengths)))
            index.write(struct.pack("<Q", len(documents)))
            index.write(lengths.tobytes())
            index.write(pointers.tobytes())
            index.write(documents.tobytes())
        # The index names the data, so the data lands first: a reader never finds an index without it.
        os.replace(self._bin_temporary, _with_extension(self.prefix, ".bin"))
        os.replace(index_temporary, _with_extension(self.prefix, ".idx"))
        return MegatronDataset(prefix=self.prefix, sequences=len(lengths), tokens=int(lengths.sum()))

    def discard(self) -> None:
        self._bin.close()
        self._bin_temporary.unlink(missing_ok=True)


def export_megatron(mix_path: Path, out_dir: Path) -> MegatronExport:
    """Write `<out_dir>/<source>_text_document.{bin,idx}` for every source of the mix, then
    `<out_dir>/data-args-<phase>.txt` (one `weight prefix` line per source) for every phase with a blend."""
    mix = read_mix(mix_path)
    vocab_size = int(mix.tokenizer["vocab_size"])
    dtype = np.dtype(np.uint16) if vocab_size < UINT16_VOCAB_LIMIT else np.dtype(np.int32)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefixes = {source: out_dir / f"{_file_safe(source)}_text_document" for source in mix.tokens_by_source}
    if len(set(prefixes.values())) < len(prefixes):
        raise ValueError(f"sources {sorted(prefixes)} collide once made file-safe; rename sources to differ in letters/digits")
    writers = {source: _IndexedDatasetWriter(prefix, dtype) for source, prefix in prefixes.items()}
    try:
        for shard in mix.shards:
            _export_shard(resolve_shard_path(mix_path, shard), writers)
        datasets = {source: writer.finish() for source, writer in writers.items()}
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    blends = {}
    for phase in PHASES:
        weighted = [(source, weight) for source, weight in mix.phases[phase].items() if weight > 0]
        if weighted:
            blends[phase] = MegatronBlend(
                prefixes=tuple(str(datasets[source].prefix.resolve()) for source, _ in weighted),
                weights=tuple(weight for _, weight in weighted),
            )
    # Written after the datasets they name, so a data-args file never names a dataset not yet there.
    files = {phase: _write_data_args(out_dir / f"data-args-{phase}.txt", blend) for phase, blend in blends.items()}
    for phase in set(PHASES) - set(blends):  # an earlier export's blend for the phase no longer holds
        (out_dir / f"data-args-{phase}.txt").unlink(missing_ok=True)
    return MegatronExport(datasets=datasets, blends=blends, data_args_files=files, vocab_size=vocab_size)


def _write_data_args(path: Path, blend: MegatronBlend) -> Path:
    temporary = path.with_name(f".{path.name}.tmp")
    values = blend.data_path
    temporary.write_text("".join(f"{weight} {prefix}\n" for weight, prefix in zip(values[::2], values[1::2], strict=True)), encoding="utf-8")
    os.replace(temporary, path)
    return path


def describe_export(export: MegatronExport) -> str:
    """What `synthmix megatron` prints: the datasets, then per phase the arguments a Megatron-LM job takes."""
    lines = [f"{len(export.datasets)} indexed datasets (vocabulary {export.vocab_size}):"]
    for source, dataset in export.datasets.items():
        lines.append(f"  {source}: {dataset.sequences} documents, {dataset.tokens} tokens  {dataset.prefix}")
    for phase, blend in export.blends.items():
        lines.append(f"phase {phase}: --data-args-path {export.data_args_files[phase]}")
        lines.append(f"  (or --data-path {' '.join(blend.data_path)})")
    return "\n".join(lines)


def _export_shard(path: Path, writers: dict[str, _IndexedDatasetWriter]) -> None:
    shard = pq.ParquetFile(path)
    for group in range(shard.num_row_groups):
        table = shard.read_row_group(group, columns=[INPUT_IDS, contracts.SOURCE])
        for source in pc.unique(table.column(contracts.SOURCE)).to_pylist():
            rows = table.filter(pc.equal(table.column(contracts.SOURCE), source))
            ids = rows.column(INPUT_IDS).combine_chunks()
            writers[source].add(ids.flatten().to_numpy(zero_copy_only=False), pc.list_value_length(ids).to_numpy(zero_copy_only=False))


@dataclass(frozen=True)
class MegatronIndex:
    """A parsed `.idx` file."""

    dtype: np.dtype
    lengths: np.ndarray  # int32, one per sequence
    pointers: np.ndarray  # int64 byte offsets into .bin
    documents: np.ndarray  # int64 sequence index of each document start, plus the end


def read_megatron_index(prefix: Path) -> MegatronIndex:
    """Parse `prefix.idx`, checking magic and version."""
    data = _with_extension(prefix, ".idx").read_bytes()
    if data[: len(INDEX_MAGIC)] != INDEX_MAGIC:
        raise ValueError(f"{prefix}.idx starts {data[:9]!r}, not {INDEX_MAGIC!r}: not a Megatron MMIDIDX index")
    position = len(INDEX_MAGIC)
    version, code, sequences, documents = struct.unpack_from("<QBQQ", data, position)
    if version != INDEX_VERSION:
        raise ValueError(f"{prefix}.idx has index version {version}; this reader knows {INDEX_VERSION}")
    position += struct.calcsize("<QBQQ")
    dtype = {code: dtype for dtype, code in DTYPE_CODES.items()}[code]
    lengths = np.frombuffer(data, dtype=np.int32, count=sequences, offset=position)
    position += lengths.nbytes
    pointers = np.frombuffer(data, dtype=np.int64, count=sequences, offset=position)
    position += pointers.nbytes
    document_index = np.frombuffer(data, dtype=np.int64, count=documents, offset=position)
    return MegatronIndex(dtype=dtype, lengths=lengths, pointers=pointers, documents=document_index)


def read_megatron_sequences(prefix: Path) -> list[np.ndarray]:
    """Every sequence of `prefix.bin`, as its index locates them (memory-mapped)."""
    index = read_megatron_index(prefix)
    if len(index.lengths) == 0:
        return []  # numpy cannot memory-map an empty file
    data = np.memmap(_with_extension(prefix, ".bin"), dtype=np.uint8, mode="r")
    return [
        np.frombuffer(data, dtype=index.dtype, count=int(length), offset=int(pointer)) for length, pointer in zip(index.lengths, index.pointers, strict=True)
    ]


def _file_safe(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", source)


def _with_extension(prefix: Path, extension: str) -> Path:
    # Not with_suffix: a source name with a dot would lose its tail.
    return prefix.with_name(prefix.name + extension)
