"""Reading seed records from files, one record per line/row, bad ones kept as error records.

A read item is a whole JSONL file, one Parquet row group, or one Arrow file of a dataset saved
with `datasets.save_to_disk`. Reading an item yields record tables with a locator `id`
(`file:line` or `file#row`), the text, and — for a record that cannot be read — an error
reason and detail instead of text, so the stage turns it into a reject rather than losing it.
"""

from __future__ import annotations

import glob
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.rejects import RejectReason

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
    ]
)
RECORDS_PER_TABLE = 4096
FORMATS = ("jsonl", "parquet", "hf")


class SeedInputError(ValueError):
    """A seed path that names nothing readable."""


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
    """A file, a folder saved by `datasets`, or a glob, relative to the job file's folder."""
    full = pattern if Path(pattern).is_absolute() else str(base / pattern)
    matches = sorted(Path(p) for p in glob.glob(full, recursive=True))
    if not matches:
        raise SeedInputError(f"seeds path {pattern!r} matches no file (looked in {full}); check the path or --set seeds.path=...")
    return matches


def list_read_items(path: Path, file_format: str) -> list[dict]:
    """Split a file into read items; each item is read by one task and committed as one unit."""
    if file_format == "jsonl":
        return [{"path": str(path), "format": "jsonl", "part": 0}]
    if file_format == "parquet":
        groups = pq.ParquetFile(path).num_row_groups
        return [{"path": str(path), "format": "parquet", "part": group} for group in range(max(groups, 1))]
    if file_format == "hf":
        arrow_files = sorted(path.glob("*.arrow"))
        if not arrow_files:
            raise SeedInputError(f"{path} has no .arrow files; is it a dataset saved with datasets.save_to_disk?")
        return [{"path": str(f), "format": "hf", "part": 0} for f in arrow_files]
    raise SeedInputError(f"unknown seeds format {file_format!r}; use one of {', '.join(FORMATS)}")


def read_item(item: dict, *, text_field: str, source: str, domain: str, kind: str, lang: str | None) -> Iterator[pa.Table]:
    defaults = {"source": source, "domain": domain, "kind": kind, "lang": lang}
    readers = {"jsonl": _read_jsonl, "parquet": _read_parquet_group, "hf": _read_arrow_file}
    rows: list[dict] = []
    for row in readers[item["format"]](item, text_field):
        rows.append({**defaults, **{k: v for k, v in row.items() if v is not None}})
        if len(rows) >= RECORDS_PER_TABLE:
            yield pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
            rows = []
    if rows:
        yield pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def _record(locator: str, value, text_field: str) -> dict:
    if not isinstance(value, dict):
        return _error(locator, RejectReason.PARSE_ERROR, f"expected a JSON object, got {type(value).__name__}")
    if text_field not in value:
        return _error(locator, RejectReason.MISSING_FIELD, f"no field {text_field!r} (fields: {', '.join(sorted(value))[:200]}); set seeds.text_field")
    text = value[text_field]
    if text is not None and not isinstance(text, str):
        return _error(locator, RejectReason.PARSE_ERROR, f"field {text_field!r} is {type(text).__name__}, not a string")
    record = {"id": locator, "text": text or ""}
    for key in ("source", "domain", "kind", "lang"):
        if isinstance(value.get(key), str):
            record[key] = value[key]
    return record


def _error(locator: str, reason: RejectReason, detail: str) -> dict:
    return {"id": locator, "text": None, "error_reason": reason.value, "error_detail": detail}


def _read_jsonl(item: dict, text_field: str) -> Iterator[dict]:
    path = Path(item["path"])
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            for line_number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                locator = f"{path.name}:{line_number}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield _error(locator, RejectReason.NOT_UTF8, f"line {line_number}: byte {error.start} is not valid UTF-8 ({raw[error.start:error.start + 4]!r})")
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as error:
                    yield _error(locator, RejectReason.PARSE_ERROR, f"line {line_number}: {error.msg} at column {error.colno}")
                    continue
                yield _record(locator, value, text_field)
    except (OSError, EOFError) as error:
        # A truncated .gz keeps the lines read before the damage; the damage itself is a reject.
        yield _error(f"{path.name}:eof", RejectReason.PARSE_ERROR, f"file ends badly: {error}")


def _read_parquet_group(item: dict, text_field: str) -> Iterator[dict]:
    path = Path(item["path"])
    try:
        parquet = pq.ParquetFile(path)
        if parquet.num_row_groups == 0:
            return
        table = parquet.read_row_group(item["part"])
    except (OSError, pa.ArrowInvalid) as error:
        yield _error(f"{path.name}#rg{item['part']}", RejectReason.PARSE_ERROR, f"unreadable Parquet: {error}")
        return
    yield from _table_records(table, f"{path.name}#rg{item['part']}", text_field)


def _read_arrow_file(item: dict, text_field: str) -> Iterator[dict]:
    path = Path(item["path"])
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowInvalid) as error:
        yield _error(path.name, RejectReason.PARSE_ERROR, f"unreadable Arrow file: {error}")
        return
    yield from _table_records(table, path.name, text_field)


def _table_records(table: pa.Table, locator: str, text_field: str) -> Iterator[dict]:
    if text_field not in table.column_names:
        yield _error(locator, RejectReason.MISSING_FIELD, f"no column {text_field!r} (columns: {', '.join(table.column_names)}); set seeds.text_field")
        return
    wanted = [name for name in (text_field, "source", "domain", "kind", "lang") if name in table.column_names]
    for row_number, row in enumerate(table.select(wanted).to_pylist()):
        yield _record(f"{locator}:{row_number}", row, text_field)
