"""The run directory: atomic part files, per-unit commit markers, stage manifests.

    <run>/job.yaml                        resolved config snapshot
    <run>/run.json                        where the job file's relative paths are rooted
    <run>/<stage>/part-<unit>.parquet     accepted rows of one committed unit
    <run>/<stage>/rejects/part-<unit>.parquet
    <run>/<stage>/_units/<unit>.json      commit marker: counts of that unit (written last)
    <run>/<stage>/_units/<unit>.ids.parquet   the input ids the unit covered (resume skips them)
    <run>/<stage>/_progress.json          fingerprint of the attempt under way
    <run>/<stage>/_manifest.json          written last: the stage is complete

Every file is written under a temporary name and renamed, so a reader never sees half a file;
on an object store (`s3://` run directories, `synthmix.pipeline.storage`) an object becomes visible
only once its upload completes, which gives the same guarantee without a rename.
A unit is committed when its marker exists; files of a unit without a marker are leftovers
of a killed attempt and are removed before the stage resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synthmix.pipeline.storage import RemotePath, as_path, parquet_bytes, read_parquet, remove_tree, write_bytes_atomic

RUN_INFO = "run.json"
MANIFEST = "_manifest.json"
PROGRESS = "_progress.json"
UNITS = "_units"
REJECTS = "rejects"
PARQUET_COMPRESSION = "zstd"
BY_DOMAIN = "by_domain"  # the key of an LLM entry's per-domain counts in units and manifests


def write_atomic_bytes(path: Path | RemotePath, data: bytes) -> None:
    write_bytes_atomic(path, data)


def write_atomic_json(path: Path, data: Any) -> None:
    write_atomic_bytes(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode())


def write_atomic_parquet(path: Path | RemotePath, table: pa.Table, metadata: dict[str, str] | None = None) -> None:
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({key.encode(): value.encode() for key, value in metadata.items()})
        table = table.replace_schema_metadata(merged)
    if isinstance(path, RemotePath):
        path.write_bytes(parquet_bytes(table, PARQUET_COMPRESSION))  # one PUT: whole or absent
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path | RemotePath) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sibling_path(target: Path, kind: str) -> Path:
    """A hidden, unique name beside `target` for a folder being built ("tmp") or set aside ("trash")."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{time.time_ns()}")


def remove_siblings(target: Path, kind: str) -> None:
    """Folders of `kind` that a killed attempt left beside `target`."""
    if isinstance(target, RemotePath):
        return  # an object store has no renames, hence no folders set aside
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{target.name}.{kind}-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def swap_dir(ready: Path | None, target: Path) -> None:
    """Put the folder `ready` in place of `target` (`ready` None: only remove `target`).

    The old folder is renamed aside before anything is deleted, so a reader or a crash finds
    the old folder or the new one under `target`, never half of either. On an object store,
    where a rename is a copy, `target` is removed and `ready` (a local folder) uploaded."""
    if isinstance(target, RemotePath):
        _replace_remote_dir(ready, target)
        return
    aside = None
    if target.exists():
        aside = sibling_path(target, "trash")
        os.replace(target, aside)
    if ready is not None:
        os.replace(ready, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _replace_remote_dir(ready: Path | None, target: RemotePath) -> None:
    from synthmix.pipeline.storage import upload_file

    remove_tree(target)
    if ready is not None:
        for path in sorted(Path(ready).rglob("*")):
            if path.is_file():
                upload_file(path, target / str(path.relative_to(ready)))
        shutil.rmtree(ready, ignore_errors=True)


@dataclass
class UnitCounts:
    """What one committed unit did; units add up to the stage's manifest counts."""

    rows_in: int = 0
    rows_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    # per model name: requests, prompt_tokens, generated_tokens
    llm: dict[str, Counter] = field(default_factory=dict)
    # per model name, then per `domain` of the rows the calls were made for: the same counts
    # (the manifest's llm.<model>.by_domain)
    llm_by_domain: dict[str, dict[str, Counter]] = field(default_factory=dict)

    def add(self, other: UnitCounts) -> None:
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.rejected.update(other.rejected)
        for model, counts in other.llm.items():
            self.llm.setdefault(model, Counter()).update(counts)
        for model, domains in other.llm_by_domain.items():
            for domain, counts in domains.items():
                self.llm_by_domain.setdefault(model, {}).setdefault(domain, Counter()).update(counts)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_rejected": self.rows_rejected,
            "rejected": dict(sorted(self.rejected.items())),
            "llm": {model: self._llm_json(model, counts) for model, counts in sorted(self.llm.items())},
        }

    def _llm_json(self, model: str, counts: Counter) -> dict[str, Any]:
        entry: dict[str, Any] = dict(sorted(counts.items()))
        if model in self.llm_by_domain:
            entry[BY_DOMAIN] = {domain: dict(sorted(values.items())) for domain, values in sorted(self.llm_by_domain[model].items())}
        return entry

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitCounts:
        llm = data.get("llm", {})
        return cls(
            rows_in=data["rows_in"],
            rows_out=data["rows_out"],
            rejected=Counter(data.get("rejected", {})),
            llm={model: Counter({key: value for key, value in counts.items() if key != BY_DOMAIN}) for model, counts in llm.items()},
            llm_by_domain={
                model: {domain: Counter(values) for domain, values in counts[BY_DOMAIN].items()} for model, counts in llm.items() if BY_DOMAIN in counts
            },
        )


class StageState(StrEnum):
    FRESH = "fresh"  # complete, and its fingerprint matches the job
    STALE = "stale"  # complete, but the job (or an upstream stage) changed since
    MISSING = "missing"  # never run
    INTERRUPTED = "interrupted"  # started, not complete: a rerun resumes it


class StageDir:
    """One stage's folder in the run directory."""

    def __init__(self, run_dir: Path, name: str) -> None:
        self.path = as_path(run_dir) / name
        self.name = name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def rejects_path(self) -> Path:
        return self.path / REJECTS

    @property
    def units_path(self) -> Path:
        return self.path / UNITS

    def part_path(self, unit: str) -> Path:
        return self.path / f"part-{unit}.parquet"

    def reject_path(self, unit: str) -> Path:
        return self.rejects_path / f"part-{unit}.parquet"

    def manifest(self) -> dict[str, Any] | None:
        return read_json(self.manifest_path) if self.manifest_path.exists() else None

    def progress(self) -> dict[str, Any] | None:
        path = self.path / PROGRESS
        return read_json(path) if path.exists() else None

    def state(self, expected_fingerprint: str) -> StageState:
        manifest = self.manifest()
        if manifest is not None:
            return StageState.FRESH if manifest["fingerprint"] == expected_fingerprint else StageState.STALE
        if self.progress() is not None:
            return StageState.INTERRUPTED
        return StageState.MISSING

    def part_files(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def reject_files(self) -> list[Path]:
        return sorted(self.rejects_path.glob("part-*.parquet"))

    def committed_units(self) -> list[str]:
        return sorted(path.name.removesuffix(".json") for path in self.units_path.glob("*.json"))

    # --- lifecycle ------------------------------------------------------------------------
    def begin(self, fingerprint: str, resumable: bool) -> bool:
        """Prepare the folder for an attempt. Returns True when committed units are kept (a resume)."""
        progress = self.progress()
        resuming = resumable and self.manifest() is None and progress is not None and progress.get("fingerprint") == fingerprint
        if resuming:
            self._remove_uncommitted_files()
        else:
            self.clear()
        write_atomic_json(self.path / PROGRESS, {"fingerprint": fingerprint, "started_at": time.time()})
        return resuming

    def clear(self) -> None:
        """Remove a previous attempt whole; renamed first so a crash never leaves a half-deleted stage."""
        if isinstance(self.path, RemotePath):
            # No renames on an object store: the objects that make a stage complete or resumable
            # go first, so a crash part-way leaves a stage that reads as missing, cleared again.
            for marker in (self.manifest_path, self.path / PROGRESS, *self.units_path.glob("*.json")):
                marker.unlink(missing_ok=True)
            remove_tree(self.path)
            return
        remove_siblings(self.path, "trash")
        swap_dir(None, self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def _remove_uncommitted_files(self) -> None:
        committed = set(self.committed_units())
        leftovers = [*self.part_files(), *self.reject_files(), *self.units_path.glob("*.ids.parquet")]
        for path in leftovers:
            unit = path.name.removeprefix("part-").removesuffix(".parquet").removesuffix(".ids")
            if unit not in committed:
                path.unlink(missing_ok=True)
        for tmp in self.path.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def commit_unit(self, unit: str, accepted: pa.Table | None, rejected: pa.Table, input_ids: pa.Array, counts: UnitCounts) -> None:
        """Write one unit's files; the marker goes last, so the unit exists only once all of it does.
        `accepted` None: the caller already put `part_path(unit)` in place (a file it streamed)."""
        if rejected.num_rows:
            write_atomic_parquet(self.reject_path(unit), rejected)
        if accepted is not None and accepted.num_rows:
            write_atomic_parquet(self.part_path(unit), accepted)
        write_atomic_parquet(self.units_path / f"{unit}.ids.parquet", pa.table({"id": input_ids}))
        write_atomic_json(self.units_path / f"{unit}.json", counts.to_json())

    def committed_input_ids(self) -> pa.Array:
        files = sorted(self.units_path.glob("*.ids.parquet"))
        committed = set(self.committed_units())
        tables = [read_parquet(f) for f in files if f.name.removesuffix(".ids.parquet") in committed]
        if not tables:
            return pa.array([], pa.string())
        return pa.concat_tables(tables)["id"].combine_chunks()

    def unit_counts(self) -> UnitCounts:
        total = UnitCounts()
        for unit in self.committed_units():
            total.add(UnitCounts.from_json(read_json(self.units_path / f"{unit}.json")))
        return total

    def commit(self, manifest: dict[str, Any]) -> None:
        write_atomic_json(self.manifest_path, manifest)
        (self.path / PROGRESS).unlink(missing_ok=True)
