"""Reading seed records from files, one record per line/row, bad ones kept as error records.

A read item is a whole JSONL file, one Parquet row group, or one Arrow file of a dataset saved
with `datasets.save_to_disk`. Reading an item yields record tables with a locator `id`
(`file:line` or `file#row`), the text, and — for a record that cannot be read — an error
reason and detail instead of text, so the stage turns it into a reject rather than losing it.

Each record also keeps its identity: `source_id`, the record's own id (the `id_field`, as the
user wrote it, stringified), and `origin`, JSON naming the file, the line (JSONL) or row
(Parquet: the row in the file; saved datasets: the row in the Arrow file), and the values of
the `keep_fields` (null where a record lacks one, JSON text where a value is not a scalar).
"""

from __future__ import annotations

import glob
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.storage import RemotePath, as_path, glob_remote, is_remote, parquet_file, parquet_schema

RECORD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("domain", pa.string()),
        ("kind", pa.string()),
        ("lang", pa.string()),
        ("error_reason", pa.string()),
        ("error_detail", pa.string()),
        ("source_id", pa.string()),
        ("origin", pa.string()),
    ]
)
DEFAULT_ID_FIELD = "id"
RECORDS_PER_TABLE = 4096
FORMATS = ("jsonl", "parquet", "hf")


class SeedInputError(ValueError):
    """A seed path that names nothing readable."""


@dataclass(frozen=True)
class RecordIdentity:
    """Which fields identify and describe a record: the job's `seeds.id_field` and `keep_fields`.

    `id_field` None means `id` where the records have one; a named field that a whole file lacks
    is an error naming the file and its fields (a typo would otherwise lose every id silently).
    """

    id_field: str | None = None
    keep_fields: tuple[str, ...] = ()

    def fields(self) -> tuple[str, ...]:
        return (self.id_field or DEFAULT_ID_FIELD, *self.keep_fields)

    def check_file(self, path: Path, file_format: str) -> None:
        """Before any stage starts: a named `id_field` must be a field of the file (of its schema
        for Parquet and saved datasets, of its first record for JSONL)."""
        if self.id_field is None:
            return
        fields = _file_fields(path, file_format)
        if fields is not None and self.id_field not in fields:
            raise SeedInputError(
                f"seeds.id_field {self.id_field!r} names no field of {path} (its fields: {', '.join(sorted(fields))[:300]}); "
                "fix seeds.id_field, or remove it to use `id` where records have one"
            )

    def of(self, value: dict, position: dict) -> dict:
        """`source_id` and `origin` of a record read at `position` (file and line or row)."""
        own_id = value.get(self.id_field or DEFAULT_ID_FIELD)
        origin = {**position, "fields": {name: _json_value(value.get(name)) for name in self.keep_fields}} if self.keep_fields else position
        return {"source_id": _as_text(own_id), "origin": _origin_json(origin)}


def _file_fields(path: Path, file_format: str) -> set[str] | None:
    """The field names of a file's records; None when that cannot be told (no record, unreadable:
    the readers report those as rejects)."""
    try:
        if file_format == "parquet":
            return set(parquet_schema(path).names)
        if file_format == "hf":
            arrow_files = sorted(path.glob("*.arrow"))
            if not arrow_files:
                return None
            with arrow_files[0].open("rb") if isinstance(path, RemotePath) else pa.memory_map(str(arrow_files[0])) as source:
                return set(pa.ipc.open_stream(source).schema.names)
        with _open_lines(path) as handle:
            for raw in handle:
                if raw.strip():
                    value = json.loads(raw)
                    return set(value) if isinstance(value, dict) else None
    except (OSError, EOFError, ValueError, pa.ArrowInvalid):
        return None
    return None


def _json_value(value):
    """Scalars as they are; lists, objects and other values as JSON text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _as_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _origin_json(origin: dict) -> str:
    return json.dumps(origin, ensure_ascii=False, default=str)


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists():
            return "hf"
        raise SeedInputError(f"{path} is a folder but not a dataset saved with datasets.save_to_disk; name its files instead (e.g. {path}/*.jsonl)")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise SeedInputError(f"cannot tell the format of {path}; use .jsonl, .jsonl.gz or .parquet, or set seeds.format")


def expand_paths(pattern: str, base: Path) -> list[Path]:
    """A file, a folder saved by `datasets`, or a glob, relative to the job file's folder
    (or an `s3://bucket/...` glob, listed under its fixed prefix)."""
    if is_remote(pattern):
        remote = glob_remote(pattern)
        if not remote:
            raise SeedInputError(f"seeds path {pattern!r} matches no object; check the bucket, the prefix and the pattern")
        return remote
    full = pattern if Path(pattern).is_absolute() else str(base / pattern)
    matches = sorted(Path(p) for p in glob.glob(full, recursive=True))
    if not matches:
        raise SeedInputError(f"seeds path {pattern!r} matches no file (looked in {full}); check the path or --set seeds.path=...")
    return matches


def list_read_items(path: Path, file_format: str, *, name: str | None = None) -> list[dict]:
    """Split a file into read items; each item is read by one task and committed as one unit.

    `name` is how records' `origin` names the file (default: its path); Parquet items carry the
    row their group starts at, so `origin.row` is the row in the file.
    """
    name = name or str(path)
    if file_format == "jsonl":
        return [{"path": str(path), "name": name, "format": "jsonl", "part": 0, "first_row": 0}]
    if file_format == "parquet":
        metadata = parquet_file(path).metadata
        starts = [0]
        for group in range(metadata.num_row_groups):
            starts.append(starts[-1] + metadata.row_group(group).num_rows)
        return [{"path": str(path), "name": name, "format": "parquet", "part": group, "first_row": starts[group]}
                for group in range(max(metadata.num_row_groups, 1))]  # fmt: skip
    if file_format == "hf":
        arrow_files = sorted(path.glob("*.arrow"))
        if not arrow_files:
            raise SeedInputError(f"{path} has no .arrow files; is it a dataset saved with datasets.save_to_disk?")
        return [{"path": str(f), "name": f"{name}/{f.name}", "format": "hf", "part": 0, "first_row": 0} for f in arrow_files]
    raise SeedInputError(f"unknown seeds format {file_format!r}; use one of {', '.join(FORMATS)}")


def read_item(
    item: dict, *, text_field: str, source: str, domain: str, kind: str, lang: str | None, identity: RecordIdentity = RecordIdentity()
) -> Iterator[pa.Table]:
    defaults = {"source": source, "domain": domain, "kind": kind, "lang": lang}
    readers = {"jsonl": _read_jsonl, "parquet": _read_parquet_group, "hf": _read_arrow_file}
    rows: list[dict] = []
    for row in readers[item["format"]](item, text_field, identity):
        rows.append({**defaults, **{k: v for k, v in row.items() if v is not None}})
        if len(rows) >= RECORDS_PER_TABLE:
            yield pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
            rows = []
    if rows:
        yield pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def _record(locator: str, value, text_field: str, identity: RecordIdentity, position: dict) -> dict:
    if not isinstance(value, dict):
        return _error(locator, RejectReason.PARSE_ERROR, f"expected a JSON object, got {type(value).__name__}", position)
    record = {"id": locator, **identity.of(value, position)}
    if text_field not in value:
        return {
            **record,
            **_error(
                locator, RejectReason.MISSING_FIELD, f"no field {text_field!r} (fields: {', '.join(sorted(value))[:200]}); set seeds.text_field", position
            ),
        }
    text = value[text_field]
    if text is not None and not isinstance(text, str):
        return {**record, **_error(locator, RejectReason.PARSE_ERROR, f"field {text_field!r} is {type(text).__name__}, not a string", position)}
    record["text"] = text or ""
    for key in ("source", "domain", "kind", "lang"):
        if isinstance(value.get(key), str):
            record[key] = value[key]
    return record


def _error(locator: str, reason: RejectReason, detail: str, position: dict) -> dict:
    return {"id": locator, "text": None, "error_reason": reason.value, "error_detail": detail, "origin": _origin_json(position)}


def _open_lines(path: Path | RemotePath):
    compressed = path.name.endswith(".gz")
    if isinstance(path, RemotePath):
        raw = path.open("rb")
        return gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115 - closed by the caller's with


def _read_jsonl(item: dict, text_field: str, identity: RecordIdentity) -> Iterator[dict]:
    path = as_path(item["path"])
    try:
        with _open_lines(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                locator = f"{path.name}:{line_number}"
                position = {"file": item["name"], "line": line_number}
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield _error(
                        locator,
                        RejectReason.NOT_UTF8,
                        f"line {line_number}: byte {error.start} is not valid UTF-8 ({raw[error.start : error.start + 4]!r})",
                        position,
                    )
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as error:
                    yield _error(locator, RejectReason.PARSE_ERROR, f"line {line_number}: {error.msg} at column {error.colno}", position)
                    continue
                yield _record(locator, value, text_field, identity, position)
    except (OSError, EOFError) as error:
        # A truncated .gz keeps the lines read before the damage; the damage itself is a reject.
        yield _error(f"{path.name}:eof", RejectReason.PARSE_ERROR, f"file ends badly: {error}", {"file": item["name"], "line": None})


def _read_parquet_group(item: dict, text_field: str, identity: RecordIdentity) -> Iterator[dict]:
    path = as_path(item["path"])
    try:
        parquet = parquet_file(path)
        if parquet.num_row_groups == 0:
            return
        table = parquet.read_row_group(item["part"])
    except (OSError, pa.ArrowInvalid) as error:
        yield _error(
            f"{path.name}#rg{item['part']}", RejectReason.PARSE_ERROR, f"unreadable Parquet: {error}", {"file": item["name"], "row_group": item["part"]}
        )
        return
    yield from _table_records(table, item, text_field, identity)


def _read_arrow_file(item: dict, text_field: str, identity: RecordIdentity) -> Iterator[dict]:
    path = as_path(item["path"])
    try:
        with path.open("rb") if isinstance(path, RemotePath) else pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowInvalid) as error:
        yield _error(path.name, RejectReason.PARSE_ERROR, f"unreadable Arrow file: {error}", {"file": item["name"]})
        return
    yield from _table_records(table, item, text_field, identity)


def _table_records(table: pa.Table, item: dict, text_field: str, identity: RecordIdentity) -> Iterator[dict]:
    path = as_path(item["path"])
    if text_field not in table.column_names:
        yield _error(
            path.name,
            RejectReason.MISSING_FIELD,
            f"no column {text_field!r} (columns: {', '.join(table.column_names)}); set seeds.text_field",
            {"file": item["name"]},
        )
        return
    wanted = [name for name in (text_field, "source", "domain", "kind", "lang", *identity.fields()) if name in table.column_names]
    wanted = list(dict.fromkeys(wanted))
    suffix = "#" if item["format"] == "parquet" else ":"
    for offset, row in enumerate(table.select(wanted).to_pylist()):
        row_number = item["first_row"] + offset
        yield _record(f"{path.name}{suffix}{row_number}", row, text_field, identity, {"file": item["name"], "row": row_number})
