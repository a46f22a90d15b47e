"""A stage's rows copied out of the run for other tools: JSON Lines, or a Hugging Face dataset on disk.

Both stream: DuckDB writes JSON Lines from the part files without loading them whole, and
`datasets` memory-maps Arrow files. Every column goes out as the stage wrote it, the record
identity (`source_id`, `origin`) included. The copy appears only when complete (written under
a temporary name, then renamed), and an existing path is never overwritten. Nothing is written
into the run unless the output path is there: a read-only run exports with `-o` elsewhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import duckdb

from synthmix.pipeline.inspection.parquet_query import connection_config, quote_literal, short_error
from synthmix.pipeline.inspection.run_contents import RunInspectionError, data_files

ExportFormat = Literal["jsonl", "hf"]


def export_stage(run_dir: Path, stage: str, export_format: ExportFormat, out: Path, rejects: bool = False) -> dict[str, Any]:
    """Write the stage's accepted rows (or its rejects) to `out`; returns the path and row count."""
    out = Path(out)
    if out.exists():
        raise RunInspectionError(f"{out} already exists; pass a new path or delete it first")
    files = data_files(run_dir, stage, rejects=rejects)
    if not files:
        which = "rejected" if rejects else "kept"
        raise RunInspectionError(f"stage '{stage}' {which} no rows; there is nothing to export")
    if export_format not in ("jsonl", "hf"):
        raise RunInspectionError(f"export format {export_format!r} is unknown; use jsonl or hf")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = _write_jsonl(files, out) if export_format == "jsonl" else _write_hf_dataset(files, out)
    except (OSError, duckdb.IOException) as error:
        cause = error.strerror if isinstance(error, OSError) and error.strerror else short_error(error)
        raise RunInspectionError(f"cannot write {out} ({cause}); pass -o with a writable path (a run may be read-only)") from None
    return {"stage": stage, "rejects": rejects, "format": export_format, "path": str(out), "rows": rows}


def _write_jsonl(files: list[Path], out: Path) -> int:
    temporary = out.with_name(f".{out.name}.tmp")
    sources = ", ".join(quote_literal(str(path)) for path in files)
    connection = duckdb.connect(config=connection_config())
    try:
        rows = connection.execute(
            f"COPY (SELECT * FROM read_parquet([{sources}], union_by_name = true)) TO {quote_literal(str(temporary))} (FORMAT json)"
        ).fetchone()[0]
        os.replace(temporary, out)
    finally:
        connection.close()
        temporary.unlink(missing_ok=True)
    return rows


def _write_hf_dataset(files: list[Path], out: Path) -> int:
    import datasets

    # The Arrow cache `datasets` builds lives beside the output and goes once the copy is saved,
    # so exports never fill ~/.cache.
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        dataset = datasets.Dataset.from_parquet([str(path) for path in files], cache_dir=str(work / "cache"))
        dataset.save_to_disk(str(work / "dataset"))
        os.replace(work / "dataset", out)
        return dataset.num_rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
