"""seeds: read seed documents, normalise, chunk, tag and give them stable ids.

Reads Parquet, JSONL (plain or .gz), datasets saved with `datasets.save_to_disk`, or — with
no path — a built-in source present on every machine: Python's documentation topics
(`pydoc_data.topics`) and standard-library modules.
Writes one row per chunk: `id` = hash of the chunk text (so exact duplicates share it),
`seed_id` = `id`, `parent_id` = the record's locator (`file:line`, `file#row`), and the record's
identity, which every later stage carries to the shard rows: `source_id` (the record's own id,
`seeds.id_field`, as the user gave it) and `origin` (JSON: file, line or row, chunk index and the
`seeds.keep_fields`). Chunks of one record share its `source_id`.
Rejects: empty, not_utf8, too_large, parse_error, missing_field, exact_duplicate, and not_drawn:
with `max_chunks` (what `synthmix run --pilot N` sets), only that many chunks go on, the ones with
the smallest ids. Ids are content hashes, so the draw is a spread-out sample that depends neither
on Ray's batching nor on file order, and a slice of N is inside a slice of 3N: a pilot's chunks are
the first ones a larger run takes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import Lineage, RejectReason, content_id, with_reject_columns
from synthmix.pipeline.inputs.seed_files import (
    RECORD_SCHEMA,
    RecordIdentity,
    SeedInputError,
    detect_format,
    expand_paths,
    list_read_items,
    read_item,
)
from synthmix.pipeline.stage import Resources, Stage, StageParams
from synthmix.pipeline.storage import current_endpoint, read_parquet, use_endpoint
from synthmix.pipeline.store import StageDir, UnitCounts, read_json, write_atomic_parquet
from synthmix.quality.chunking import chunk_document, normalize_document

SeedKind = Literal["web", "qa", "code", "book"]


class BuiltinSource(StageParams):
    """Real text and code on every machine: pydoc topics and standard-library modules."""

    pydoc_topics: int = Field(default=24, ge=0, description="how many documentation topics (0: none)")
    stdlib_modules: int = Field(default=8, ge=0, description="how many standard-library modules (0: none)")


class SeedsParams(StageParams):
    path: str | list[str] | None = Field(default=None, description="file, glob or saved-dataset folder; none: the built-in source")
    format: Literal["auto", "jsonl", "parquet", "hf"] = "auto"
    text_field: str = "text"
    id_field: str | None = Field(default=None, description="the records' own id, kept as source_id; none: `id` where records have one")
    keep_fields: list[str] = Field(default_factory=list, description="record fields kept in every row's origin, down to the shards")
    source: str | None = Field(default=None, description="source tag; default: the file name")
    domain: str = "general"
    kind: SeedKind = "web"
    lang: str | None = None
    builtin: BuiltinSource = BuiltinSource()
    # None: the built-in source when no path is given; true reads it beside the files.
    use_builtin: bool | None = None
    chunk_chars: int = Field(default=3000, ge=200)
    max_doc_chars: int = Field(default=2_000_000, ge=1, description="longer documents are rejected as too_large")
    max_chunks: int | None = Field(default=None, ge=1, description="keep only this many chunks (the smallest ids), reject the rest as not_drawn; none: all")

    @model_validator(mode="after")
    def _paths_as_list(self):
        if isinstance(self.path, str):
            self.path = [self.path]
        return self


class Seeds(Stage):
    name = "seeds"
    is_source = True
    lineage = Lineage.CHILDREN
    carries_input = False
    params = SeedsParams
    resources = Resources(num_cpus=0.5, batch_size=2048)
    output_fields = (
        pa.field(contracts.ID, pa.string()),
        pa.field(contracts.SEED_ID, pa.string()),
        pa.field(contracts.PARENT_ID, pa.string()),
        pa.field(contracts.SOURCE, pa.string()),
        pa.field(contracts.DOMAIN, pa.string()),
        pa.field(contracts.KIND, pa.string()),
        pa.field(contracts.LANG, pa.string()),
        pa.field(contracts.TEXT, pa.string()),
        pa.field("chunk_index", pa.int32()),
        pa.field(contracts.SYNTHETIC, pa.bool_()),
        pa.field(contracts.SOURCE_ID, pa.string()),
        pa.field(contracts.ORIGIN, pa.string()),
    )

    # --- what to read ------------------------------------------------------------------------
    def _files(self) -> list[tuple[Path, str]]:
        files = []
        for pattern in self.params.path or []:
            for path in expand_paths(pattern, self.context.job_dir):
                files.append((path, detect_format(path) if self.params.format == "auto" else self.params.format))
        return files

    @property
    def identity(self) -> RecordIdentity:
        return RecordIdentity(id_field=self.params.id_field, keep_fields=tuple(self.params.keep_fields))

    def _origin_name(self, path: Path) -> str:
        """How `origin` names a file: relative to the job's folder when inside it (stable when a
        project moves), else the absolute path."""
        try:
            return str(path.resolve().relative_to(self.context.job_dir.resolve()))
        except ValueError:
            return str(path.resolve())

    @property
    def reads_builtin(self) -> bool:
        return self.params.use_builtin if self.params.use_builtin is not None else not self.params.path

    def fingerprint_extra(self) -> dict:
        import sys

        extra = {"files": [[str(path), path.stat().st_size if path.is_file() else _dir_size(path), path.stat().st_mtime_ns] for path, _ in self._files()]}
        if self.reads_builtin:
            extra["builtin"] = f"python-{sys.version_info.major}.{sys.version_info.minor}"
        return extra

    def read_input(self):
        import ray.data

        parts = []
        if self.reads_builtin:
            parts.append(ray.data.from_arrow(builtin_records(self.params.builtin)))
        identity = self.identity
        items = []
        for path, fmt in self._files():
            identity.check_file(path, fmt)
            items += list_read_items(path, fmt, name=self._origin_name(path))
        if items:
            parts.append(self._read_files(items))
        if not parts:
            raise SeedInputError("seeds: use_builtin is false and no path is given; set seeds.path or drop use_builtin")
        return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]

    def _read_files(self, items: list[dict]):
        import ray.data

        settings = {
            "text_field": self.params.text_field,
            "source": self.params.source,
            "domain": self.params.domain,
            "kind": self.params.kind,
            "lang": self.params.lang,
            "identity": self.identity,
            "endpoint": current_endpoint(),  # s3:// seed paths resolve the same way in the workers
        }
        return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _read_items, fn_kwargs={"settings": settings}, batch_size=1, batch_format="pyarrow", num_cpus=0.5
        )

    # --- per batch ---------------------------------------------------------------------------
    def transform(self, batch: pa.Table) -> pa.Table:
        rows = []
        seen: dict[str, tuple[str, str | None]] = {}
        keep_indent = {"code"}
        for record in batch.to_pylist():
            locator = record["id"]
            base = {
                contracts.PARENT_ID: locator,
                contracts.SOURCE_ID: record["source_id"],
                contracts.ORIGIN: record["origin"],
                contracts.SOURCE: record["source"],
                contracts.DOMAIN: record["domain"],
                contracts.KIND: record["kind"],
                contracts.LANG: record["lang"],
                contracts.SYNTHETIC: False,
            }
            if record["error_reason"]:
                rows.append(_reject(base, locator, record["error_reason"], record["error_detail"]))
                continue
            text = record["text"]
            if len(text) > self.params.max_doc_chars:
                rows.append(_reject(base, locator, RejectReason.TOO_LARGE, f"{len(text)} characters > max_doc_chars {self.params.max_doc_chars}"))
                continue
            text = normalize_document(text, keep_indentation=record["kind"] in keep_indent)
            if not text:
                rows.append(_reject(base, locator, RejectReason.EMPTY, "no text after normalisation"))
                continue
            origin = json.loads(record["origin"]) if record["origin"] else {}
            for index, chunk in enumerate(chunk_document(text, max_chars=self.params.chunk_chars)):
                chunk_id = content_id(chunk)
                row = {**base, contracts.ID: chunk_id, contracts.SEED_ID: chunk_id, contracts.TEXT: chunk, "chunk_index": index,
                       contracts.ORIGIN: json.dumps({**origin, "chunk": index}, ensure_ascii=False)}  # fmt: skip
                if chunk_id in seen:
                    kept_from, kept_source_id = seen[chunk_id]
                    row[contracts.REJECT_REASON] = RejectReason.EXACT_DUPLICATE.value
                    row[contracts.REJECT_DETAIL] = json.dumps({"kept": chunk_id, "kept_from": kept_from, "kept_source_id": kept_source_id})
                else:
                    seen[chunk_id] = (locator, record["source_id"])
                rows.append(row)
        return pa.Table.from_pylist(rows, schema=with_reject_columns(self.output_schema()))

    def finalize(self, stage_dir: StageDir) -> dict:
        """Exact duplicates across batches: keep the copy in the first part file, reject the rest;
        then, with `max_chunks`, reject the chunks past the cap as not_drawn."""
        moved = drop_cross_unit_duplicates(stage_dir, self.output_schema())
        extras = {"exact_duplicates_across_units": moved}
        if self.params.max_chunks is not None:
            extras["not_drawn"] = cap_chunks(stage_dir, self.output_schema(), self.params.max_chunks)
        return extras


DUPLICATES_UNIT = "exact-duplicates"
CAP_UNIT = "max-chunks"


def drop_cross_unit_duplicates(stage_dir: StageDir, schema: pa.Schema) -> int:
    """Move rows whose id already appears in an earlier part file into rejects."""
    return _move_to_rejects(stage_dir, schema, DUPLICATES_UNIT, RejectReason.EXACT_DUPLICATE, lambda: _find_cross_unit_duplicates(stage_dir, schema))


def cap_chunks(stage_dir: StageDir, schema: pa.Schema, max_chunks: int) -> int:
    """Keep the `max_chunks` chunks with the smallest ids; move the rest into rejects as not_drawn."""
    return _move_to_rejects(stage_dir, schema, CAP_UNIT, RejectReason.NOT_DRAWN, lambda: _find_chunks_past_cap(stage_dir, schema, max_chunks))


def _move_to_rejects(stage_dir: StageDir, schema: pa.Schema, unit: str, reason: RejectReason, find) -> int:
    """Move the rows `find` returns (reject columns set, detail naming `dropped_from`) out of their parts.

    The rejects file and its counts marker are written first, then the parts are rewritten;
    a crash in between is repaired by the next attempt, which applies the same marker again.
    """
    marker = stage_dir.units_path / f"{unit}.json"
    if marker.exists():
        moved = read_parquet(stage_dir.reject_path(unit)) if read_json(marker)["rows_rejected"] else None
    else:
        moved = find()
        counts = UnitCounts(rows_out=-(moved.num_rows if moved is not None else 0))
        if moved is not None:
            counts.rejected[reason.value] = moved.num_rows
        stage_dir.commit_unit(unit, schema.empty_table(), moved if moved is not None else schema.empty_table(), pa.array([], pa.string()), counts)
    if moved is None or not moved.num_rows:
        return 0
    drops: dict[str, set[str]] = {}
    for detail, row_id in zip(moved[contracts.REJECT_DETAIL].to_pylist(), moved[contracts.ID].to_pylist()):
        drops.setdefault(json.loads(detail)["dropped_from"], set()).add(row_id)
    for part_name, ids in drops.items():
        part = stage_dir.path / part_name
        if part.exists():
            table = read_parquet(part)
            kept = table.filter(pc.invert(pc.is_in(table[contracts.ID], value_set=pa.array(sorted(ids)))))
            if kept.num_rows != table.num_rows:
                if kept.num_rows:
                    write_atomic_parquet(part, kept)
                else:
                    part.unlink()
    return moved.num_rows


def _find_chunks_past_cap(stage_dir: StageDir, schema: pa.Schema, max_chunks: int) -> pa.Table | None:
    ids_by_part = {part.name: read_parquet(part, columns=[contracts.ID])[contracts.ID].to_pylist() for part in stage_dir.part_files()}
    ranked = sorted(row_id for ids in ids_by_part.values() for row_id in ids)
    if len(ranked) <= max_chunks:
        return None
    past = set(ranked[max_chunks:])
    tables = []
    for part_name, ids in ids_by_part.items():
        dropped = [row_id for row_id in ids if row_id in past]
        if not dropped:
            continue
        table = read_parquet(stage_dir.path / part_name)
        table = table.filter(pc.is_in(table[contracts.ID], value_set=pa.array(dropped)))
        detail = json.dumps({"max_chunks": max_chunks, "chunks": len(ranked), "dropped_from": part_name})
        table = table.append_column(contracts.REJECT_REASON, pa.array([RejectReason.NOT_DRAWN.value] * table.num_rows, pa.string()))
        tables.append(table.append_column(contracts.REJECT_DETAIL, pa.array([detail] * table.num_rows, pa.string())))
    return pa.concat_tables(tables)


def _find_cross_unit_duplicates(stage_dir: StageDir, schema: pa.Schema) -> pa.Table | None:
    first_part: dict[str, tuple[str, str | None]] = {}  # id -> (part file, source_id) of the kept copy
    duplicate_parts: dict[str, list[str]] = {}
    for part in stage_dir.part_files():
        ids = read_parquet(part, columns=[contracts.ID, contracts.SOURCE_ID])
        for row_id, source_id in zip(ids[contracts.ID].to_pylist(), ids[contracts.SOURCE_ID].to_pylist()):
            if row_id in first_part:
                duplicate_parts.setdefault(part.name, []).append(row_id)
            else:
                first_part[row_id] = (part.name, source_id)
    if not duplicate_parts:
        return None
    tables = []
    for part_name, ids in duplicate_parts.items():
        table = read_parquet(stage_dir.path / part_name)
        table = table.filter(pc.is_in(table[contracts.ID], value_set=pa.array(ids)))
        details = [
            json.dumps({"kept": row_id, "kept_in": first_part[row_id][0], "kept_source_id": first_part[row_id][1], "dropped_from": part_name})
            for row_id in table[contracts.ID].to_pylist()
        ]
        table = table.append_column(contracts.REJECT_REASON, pa.array([RejectReason.EXACT_DUPLICATE.value] * table.num_rows, pa.string()))
        tables.append(table.append_column(contracts.REJECT_DETAIL, pa.array(details, pa.string())))
    return pa.concat_tables(tables)


def _reject(base: dict, locator: str, reason: str, detail: str) -> dict:
    return {**base, contracts.ID: locator, contracts.SEED_ID: locator, contracts.REJECT_REASON: str(reason), contracts.REJECT_DETAIL: detail}


def _read_items(items: pa.Table, settings: dict):
    settings = dict(settings)
    use_endpoint(settings.pop("endpoint"))
    for item in items.to_pylist():
        source = settings["source"] or Path(item["path"]).name
        yield from read_item(item, **{**settings, "source": source})


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def builtin_records(builtin: BuiltinSource) -> pa.Table:
    """Documentation topics and stdlib modules, spread over the alphabet, in a fixed order."""
    from pydoc_data.topics import topics

    rows = []
    names = sorted(topics)
    for name in _spread(names, builtin.pydoc_topics):
        rows.append({"id": f"pydoc_topics:{name}", "text": topics[name], "source": "pydoc_topics", "domain": "code", "kind": "web", "lang": "en",
                     "source_id": f"pydoc_topics:{name}", "origin": json.dumps({"builtin": "pydoc_data.topics", "topic": name})})  # fmt: skip
    stdlib = Path(os.__file__).parent
    modules = sorted(p for p in stdlib.glob("*.py") if not p.name.startswith("_") and p.stat().st_size < 60_000)
    for path in _spread(modules, builtin.stdlib_modules):
        rows.append({"id": f"stdlib:{path.name}", "text": path.read_text(encoding="utf-8", errors="replace"), "source": "stdlib", "domain": "code", "kind": "code", "lang": "en",
                     "source_id": f"stdlib:{path.name}", "origin": json.dumps({"builtin": "stdlib", "module": path.name})})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def _spread(items: list, count: int) -> list:
    if count >= len(items):
        return items
    if count <= 0:
        return []
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
