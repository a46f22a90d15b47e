"""DuckDB over a run's Parquet files: bounded memory, reads only the columns and row groups asked for.

A connection may read files under the run directory and nothing else, so a `--where`
expression (user text) cannot reach other files. Expressions are parsed as one SQL expression
by DuckDB's relational API, never pasted into a statement. Nothing is written into the run:
when a query spills, DuckDB's temporary files go to the system temp folder (its default is
`.tmp` in the working directory, which may be the run), so a read-only or copied run inspects
the same as the original.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from synthmix.pipeline.inspection.run_contents import RunInspectionError

MEMORY_LIMIT = "1GB"
THREADS = 2
ERROR_CHARS = 300
# Marks the rows read from a stage's rejects when kept and rejected rows are read together.
REJECTED_FLAG = "__rejected"


def connection_config() -> dict[str, object]:
    """Threads, memory ceiling and a spill folder outside any run (created by DuckDB only if it spills)."""
    spill = Path(tempfile.gettempdir()) / f"synthmix-duckdb-{os.getpid()}"
    return {"threads": THREADS, "memory_limit": MEMORY_LIMIT, "temp_directory": str(spill)}


def connect(run_dir: Path) -> duckdb.DuckDBPyConnection:
    """A connection that may read files under `run_dir` only, with a fixed memory ceiling."""
    connection = duckdb.connect(config=connection_config())
    root = str(Path(run_dir).resolve())
    connection.execute("SET allowed_directories = [?]", [root + "/"])
    connection.execute("SET enable_external_access = false")
    return connection


def read_files(connection: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> duckdb.DuckDBPyRelation:
    """One relation over part files; union by name so a column added in later units reads as null before."""
    return connection.read_parquet([str(Path(f).resolve()) for f in files], union_by_name=True)


def read_kept_and_rejected(connection: duckdb.DuckDBPyConnection, kept: Sequence[Path], rejected: Sequence[Path]) -> duckdb.DuckDBPyRelation:
    """Kept and rejected rows in one relation, matched by column name, with REJECTED_FLAG telling them apart."""
    parts = [
        f"SELECT *, {flag} AS {quote_identifier(REJECTED_FLAG)} FROM read_parquet([{_file_list(files)}], union_by_name = true)"
        for files, flag in ((kept, "false"), (rejected, "true"))
        if files
    ]
    return connection.sql(" UNION ALL BY NAME ".join(parts))


def _file_list(files: Sequence[Path]) -> str:
    return ", ".join(quote_literal(str(Path(f).resolve())) for f in files)


def apply_where(relation: duckdb.DuckDBPyRelation, where: str | None, stage: str) -> duckdb.DuckDBPyRelation:
    """Filter by a SQL expression, checked now: a bad one raises an error naming the stage's columns."""
    if not where:
        return relation
    try:
        filtered = relation.filter(where)
        # Binding and type errors surface only when planned; LIMIT 0 plans without reading rows.
        filtered.limit(0).fetchall()
    except duckdb.Error as error:
        raise RunInspectionError(
            f"--where {where!r} does not apply to stage '{stage}': {short_error(error)}. "
            f"Columns: {', '.join(relation.columns)}; write SQL like \"domain = 'math' and length(text) > 100\""
        ) from None
    return filtered


def short_error(error: Exception) -> str:
    """DuckDB's message, first line only and capped: conversion errors quote whole cell values."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    first = first.rstrip("!.")
    return first if len(first) <= ERROR_CHARS else first[:ERROR_CHARS] + "…"


def run_query(relation: duckdb.DuckDBPyRelation, stage: str, where: str | None) -> list[tuple]:
    """Fetch a relation's rows; a runtime error (a cast in --where that fails on some row) names the cause."""
    try:
        return relation.fetchall()
    except duckdb.Error as error:
        hint = f" (from --where {where!r})" if where else ""
        raise RunInspectionError(f"query on stage '{stage}' failed{hint}: {short_error(error)}") from None


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
