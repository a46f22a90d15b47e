"""A local copy of a run kept in a bucket, so the inspection commands read it like any run.

Inspection queries Parquet with DuckDB, whose S3 support is an extension it downloads at run
time, which a cluster without internet lacks; a copy that follows the bucket keeps one reader
for both kinds of run. The copy is refreshed on every command with one listing of the run's
prefix: only objects whose size or time changed are fetched again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from synthmix.pipeline.storage import RemotePath, StorageError, as_path, check_readable, write_bytes_atomic

CACHE_ENV = "SYNTHMIX_CACHE_DIR"


def local_view(location: str | os.PathLike) -> Path:
    """A folder this machine can read that holds the run at `location`.

    A local path is returned as it is. An `s3://` run is copied into a cache folder
    (`$SYNTHMIX_CACHE_DIR`, default `~/.cache/synthmix/s3/<bucket>/<prefix>`): objects whose
    size and time match the cached copy are not fetched again, and cached files the run no
    longer has are removed.
    """
    remote = as_path(location)
    if not isinstance(remote, RemotePath):
        return remote
    from pyarrow.fs import FileType

    check_readable(remote)
    cache_root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synthmix" / "s3")
    target = cache_root / remote.key
    listing = [info for info in remote.list_objects(recursive=True) if info.type is FileType.File]
    if not listing:
        raise StorageError(f"{remote}: no run there (the prefix holds no objects)")
    record_path = target / ".synthmix-fetched.json"
    fetched = _read_record(record_path)
    present: dict[str, list[int]] = {}
    for info in listing:
        relative = info.path.strip("/")[len(remote.key) + 1 :]
        stamp = [info.size or 0, info.mtime_ns or 0]
        present[relative] = stamp
        local = target / relative
        if fetched.get(relative) != stamp or not local.is_file():
            write_bytes_atomic(local, RemotePath(info.path.strip("/"), remote.endpoint).read_bytes())
    for relative in set(fetched) - set(present):
        (target / relative).unlink(missing_ok=True)
    write_bytes_atomic(record_path, json.dumps(present, sort_keys=True).encode())
    return target


def _read_record(path: Path) -> dict[str, list[int]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
