"""Content digests of files, as shards and `mix.json` record them to detect changed or torn files."""

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB blocks so shard size does not matter
    (a `pipeline.storage.RemotePath` opens the same way: the object is streamed)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
