"""Tokenized Parquet shards: the schema of DESIGN.md, an atomic rolling writer, and shard summaries.

One row per sample (not pre-packed). A shard is zstd Parquet with row groups of a few million
tokens and the tokenizer's description in the file's key-value metadata, so a shard found on
its own still says which vocabulary its ids belong to. A reader never sees a half-written
shard: each is written under a hidden temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthmix.pipeline import contracts
from synthmix.pipeline.file_digest import sha256_file
from synthmix.pipeline.storage import parquet_schema, read_parquet

# Shard-only columns (the lineage and mix-key columns come from synthmix.pipeline.contracts).
INPUT_IDS = "input_ids"
LOSS_MASK = "loss_mask"
NUM_TOKENS = "num_tokens"

TOKENIZER_METADATA_KEY = b"synthmix.tokenizer"

SHARD_SCHEMA = pa.schema(
    [
        pa.field(INPUT_IDS, pa.list_(pa.int32()), nullable=False),
        pa.field(LOSS_MASK, pa.list_(pa.uint8()), nullable=True),  # null: every token is a target
        pa.field(NUM_TOKENS, pa.int32(), nullable=False),
        pa.field(contracts.ID, pa.string(), nullable=False),
        pa.field(contracts.SEED_ID, pa.string(), nullable=False),
        pa.field(contracts.SOURCE, pa.string(), nullable=False),
        pa.field(contracts.DOMAIN, pa.string(), nullable=False),
        pa.field(contracts.SYNTHETIC, pa.bool_(), nullable=False),
        pa.field(contracts.META, pa.string(), nullable=False),  # JSON
        # The seed record's identity (stages/seeds.py): its own id and where it came from (JSON).
        pa.field(contracts.SOURCE_ID, pa.string(), nullable=True),
        pa.field(contracts.ORIGIN, pa.string(), nullable=True),
    ]
)

DEFAULT_SHARD_TOKENS = 256 * 1024 * 1024
DEFAULT_ROW_GROUP_TOKENS = 4 * 1024 * 1024


@dataclass(frozen=True)
class ShardInfo:
    """A committed shard: where it is and what it holds."""

    path: Path
    rows: int
    tokens: int
    sha256: str


@dataclass(frozen=True)
class ShardSummary:
    """A shard's contents counted from the file itself, for the mix and its validation."""

    path: Path
    rows: int
    tokens: int
    sha256: str
    tokenizer: dict[str, Any]
    rows_by_source: dict[str, int] = field(default_factory=dict)
    tokens_by_source: dict[str, int] = field(default_factory=dict)
    tokens_by_domain: dict[str, int] = field(default_factory=dict)
    synthetic_rows: int = 0


class ShardWriter:
    """Writes shard-schema tables as `<prefix>-NNNNN.parquet` files of about `shard_tokens` tokens.

    Rows stay whole: a shard closes before the row that would take it over budget, and a single
    row bigger than a row group or a shard gets one of its own. `close()` (or leaving the `with`
    block) commits the last shard and returns every shard written; leaving on an exception
    deletes the shard in progress and keeps committed ones. Writers of parallel workers must
    use distinct prefixes.
    """

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str,
        tokenizer: Mapping[str, Any],
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
        row_group_tokens: int = DEFAULT_ROW_GROUP_TOKENS,
        compression_level: int | None = None,
    ) -> None:
        if shard_tokens <= 0 or row_group_tokens <= 0:
            raise ValueError(f"shard_tokens ({shard_tokens}) and row_group_tokens ({row_group_tokens}) must be positive")
        self._directory = directory
        self._prefix = prefix
        self._schema = SHARD_SCHEMA.with_metadata({TOKENIZER_METADATA_KEY: json.dumps(dict(tokenizer), sort_keys=True).encode()})
        self._shard_tokens = shard_tokens
        self._row_group_tokens = row_group_tokens
        self._compression_level = compression_level
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_tokens = 0
        self._writer: pq.ParquetWriter | None = None
        self._temporary: Path | None = None
        self._shard_rows = 0
        self._shard_written = 0
        self._committed: list[ShardInfo] = []
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        """Buffer `table` (shard schema, as `render_table` makes it) into row groups and shards."""
        table = conform_to_shard_schema(table)
        tokens = table.column(NUM_TOKENS).to_numpy()
        offset = 0
        while offset < table.num_rows:
            group_room = self._row_group_tokens - self._pending_tokens
            shard_room = self._shard_tokens - self._shard_written - self._pending_tokens
            cumulative = np.cumsum(tokens[offset:], dtype=np.int64)
            take = int(np.searchsorted(cumulative, min(group_room, shard_room), side="right"))
            if take == 0:
                next_row = int(tokens[offset])
                if next_row > shard_room and self._shard_written + self._pending_tokens > 0:
                    self._commit_shard()
                    continue
                if next_row > group_room and self._pending_tokens > 0:
                    self._flush_row_group()
                    continue
                take = 1  # one row bigger than a whole row group or shard stands alone
            self._pending.append(table.slice(offset, take))
            self._pending_rows += take
            self._pending_tokens += int(cumulative[take - 1])
            offset += take
            if self._pending_tokens >= self._row_group_tokens:
                self._flush_row_group()
            if self._shard_written + self._pending_tokens >= self._shard_tokens:
                self._commit_shard()

    @property
    def committed(self) -> tuple[ShardInfo, ...]:
        """Shards closed so far, in order (a caller may move each away once it appears)."""
        return tuple(self._committed)

    def close(self) -> list[ShardInfo]:
        """Commit the shard in progress; return all shards this writer committed, in order."""
        self._commit_shard()
        return list(self._committed)

    def abort(self) -> None:
        """Drop the shard in progress (its temporary file); committed shards stay."""
        self._pending.clear()
        self._pending_rows = self._pending_tokens = 0
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _flush_row_group(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            name = f"{self._prefix}-{len(self._committed):05d}.parquet"
            self._temporary = self._directory / f".{name}.tmp"
            self._writer = pq.ParquetWriter(
                self._temporary,
                self._schema,
                compression="zstd",
                compression_level=self._compression_level,
                # Token ids do not dictionary-encode usefully; the repeated mix keys do.
                use_dictionary=[contracts.SOURCE, contracts.DOMAIN, contracts.SYNTHETIC],
            )
        group = pa.concat_tables(self._pending).combine_chunks()
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._shard_rows += self._pending_rows
        self._shard_written += self._pending_tokens
        self._pending.clear()
        self._pending_rows = self._pending_tokens = 0

    def _commit_shard(self) -> None:
        self._flush_row_group()
        if self._writer is None or self._temporary is None:
            return
        self._writer.close()
        final = self._temporary.with_name(self._temporary.name[1 : -len(".tmp")])
        os.replace(self._temporary, final)
        self._committed.append(ShardInfo(path=final, rows=self._shard_rows, tokens=self._shard_written, sha256=sha256_file(final)))
        self._writer = None
        self._temporary = None
        self._shard_rows = self._shard_written = 0


def conform_to_shard_schema(table: pa.Table) -> pa.Table:
    """`table` with exactly the shard columns in schema order and types; errors name what is wrong."""
    missing = [name for name in SHARD_SCHEMA.names if name not in table.column_names]
    if missing:
        raise ValueError(f"shard rows lack columns {missing} (have {table.column_names}); build them with rendering.render_table")
    table = table.select(SHARD_SCHEMA.names)
    for schema_field in SHARD_SCHEMA:
        if not schema_field.nullable and table.column(schema_field.name).null_count:
            raise ValueError(
                f"shard column {schema_field.name!r} has {table.column(schema_field.name).null_count} "
                "nulls; every row needs it (lineage and mix keys are required)"
            )
    try:
        return table.cast(SHARD_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValueError(f"shard rows do not cast to the shard schema: {error}") from error


def read_shard_tokenizer(path: Path) -> dict[str, Any]:
    """The tokenizer description stored in a shard's key-value metadata."""
    metadata = parquet_schema(path).metadata or {}
    if TOKENIZER_METADATA_KEY not in metadata:
        raise ValueError(
            f"{path} carries no tokenizer description ({TOKENIZER_METADATA_KEY.decode()} metadata); "
            "it was not written by ShardWriter: rewrite it through the tokenize stage"
        )
    return json.loads(metadata[TOKENIZER_METADATA_KEY])


def summarize_shard(path: Path) -> ShardSummary:
    """Count a shard's rows and tokens, by source and domain, from the file itself."""
    table = read_parquet(path, columns=[NUM_TOKENS, contracts.SOURCE, contracts.DOMAIN, contracts.SYNTHETIC])
    tokens = table.column(NUM_TOKENS)
    return ShardSummary(
        path=path,
        rows=table.num_rows,
        tokens=int(pc.sum(tokens).as_py() or 0),
        sha256=sha256_file(path),
        tokenizer=read_shard_tokenizer(path),
        rows_by_source=_count_by(table, contracts.SOURCE, None),
        tokens_by_source=_count_by(table, contracts.SOURCE, NUM_TOKENS),
        tokens_by_domain=_count_by(table, contracts.DOMAIN, NUM_TOKENS),
        synthetic_rows=int(pc.sum(table.column(contracts.SYNTHETIC).cast(pa.int64())).as_py() or 0),
    )


def _count_by(table: pa.Table, key: str, summed: str | None) -> dict[str, int]:
    if summed is None:
        grouped = table.group_by(key).aggregate([([], "count_all")])
        values = grouped.column("count_all")
    else:
        grouped = table.group_by(key).aggregate([(summed, "sum")])
        values = grouped.column(f"{summed}_sum")
    return dict(sorted(zip(grouped.column(key).to_pylist(), values.to_pylist(), strict=True)))
