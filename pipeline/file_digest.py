"""Content digests of files, as shards and `mix.json` record them to detect changed or torn files,
and the cheaper stamps a stage fingerprint takes of the user files it reads."""

import hashlib
from pathlib import Path

from synthmix.pipeline.contracts import ConfigError


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB blocks so shard size does not matter
    (a `synthmix.pipeline.storage.RemotePath` opens the same way: the object is streamed)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def user_file_stamp(path: Path, what: str) -> list:
    """[path, size, mtime] of a user file a stage reads, for its fingerprint: an edited file makes
    the stage stale. `what` names the file in the error when there is none."""
    if not path.is_file():
        raise ConfigError(f"{what}: no file at {path}; fix `path` (relative paths start at the job file's folder)")
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]
