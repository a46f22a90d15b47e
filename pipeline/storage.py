"""Where a run lives: a local folder, or a prefix of an S3-compatible bucket (`s3://bucket/prefix`).

Local paths stay `pathlib.Path` and keep their fast code path (temporary file, fsync, rename).
An `s3://` location becomes a `RemotePath`: the few `Path` operations the run store, the stages
and the readers use (`/`, `name`, `parent`, `exists`, `glob`, `open`, `unlink`, ...) mapped onto
`pyarrow.fs.S3FileSystem`. pyarrow rather than fsspec/s3fs: pyarrow is already how every part
file is read and written, its S3 client ships inside the wheel (no boto/aiohttp stack in each
worker), it reads Parquet from S3 with ranged reads of the footer and the wanted columns, and it
pickles cleanly into Ray tasks.

Atomicity on an object store comes from the store itself, not from renames: a PUT (or a
multipart upload) makes the object visible only once it is complete, so a killed writer leaves
no partial object under the final name. Objects are therefore written straight to their final
key; a unit is still committed only once its marker object exists (`synthmix.pipeline.store`).

A `RemotePath` carries its endpoint settings (not credentials) so a copy pickled into a Ray
worker talks to the same store; credentials come from pyarrow's default AWS chain in each
process (environment, `~/.aws` files, instance or pod roles).
"""

from __future__ import annotations

import fnmatch
import io
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEME = "s3://"
# An S3-compatible endpoint (MinIO, Ceph, R2, a test server): http(s)://host:port.
ENDPOINT_ENV = "SYNTHMIX_S3_ENDPOINT"
REGION_ENV = "SYNTHMIX_S3_REGION"


class StorageError(RuntimeError):
    """A location that cannot be read or written: the message names it and what to check."""


@dataclass(frozen=True)
class Endpoint:
    """How to reach the object store; None fields fall back to the AWS defaults."""

    url: str | None = None
    region: str | None = None


_configured = Endpoint()
_filesystems: dict[Endpoint, Any] = {}


def configure(url: str | None = None, region: str | None = None) -> None:
    """Set the endpoint new `s3://` paths in this process use (the job's `storage:` section);
    None leaves `SYNTHMIX_S3_ENDPOINT` / `SYNTHMIX_S3_REGION` or the AWS defaults in charge."""
    global _configured
    _configured = Endpoint(url, region)


@contextmanager
def endpoint_in_effect(url: str | None = None, region: str | None = None) -> Iterator[None]:
    """`configure` for one block (a job run in this process): the setting that was in effect
    before comes back when the block ends, normally or by an exception, so an `s3://` path made
    after a job, or in the next job, does not reach the first job's store."""
    global _configured
    previous = _configured
    configure(url, region)
    try:
        yield
    finally:
        _configured = previous


def current_endpoint() -> Endpoint:
    return Endpoint(_configured.url or os.environ.get(ENDPOINT_ENV) or None, _configured.region or os.environ.get(REGION_ENV) or None)


def filesystem(endpoint: Endpoint):
    """One S3FileSystem per endpoint per process (its client pool is reused by every path)."""
    fs = _filesystems.get(endpoint)
    if fs is None:
        from pyarrow.fs import S3FileSystem

        options: dict[str, Any] = {}
        if endpoint.url:
            scheme, _, host = endpoint.url.rpartition("://")
            options["endpoint_override"] = host or endpoint.url
            options["scheme"] = scheme or "https"
        if endpoint.region:
            options["region"] = endpoint.region
        fs = _filesystems[endpoint] = S3FileSystem(**options)
    return fs


def is_remote(location: Any) -> bool:
    return isinstance(location, RemotePath) or (isinstance(location, str) and location.startswith(SCHEME))


def as_path(location: str | os.PathLike | RemotePath) -> Path | RemotePath:
    """`s3://...` as a RemotePath (with this process's endpoint), anything else as a Path."""
    if isinstance(location, RemotePath):
        return location
    text = str(location)
    if text.startswith(SCHEME):
        return RemotePath(text[len(SCHEME) :].strip("/"), current_endpoint())
    if "://" in text:
        raise StorageError(f"{text}: only local paths and s3:// URIs are supported")
    return Path(location)


@dataclass(frozen=True)
class RemoteStat:
    st_size: int
    st_mtime_ns: int

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9


class RemotePath:
    """An object key (or key prefix, for a "folder") in a bucket, with Path's naming operations."""

    __slots__ = ("key", "endpoint")

    def __init__(self, key: str, endpoint: Endpoint = Endpoint()) -> None:
        self.key = key  # "bucket/prefix/name", no leading or trailing slash
        self.endpoint = endpoint

    # --- naming ------------------------------------------------------------------------------
    def __str__(self) -> str:
        return SCHEME + self.key

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __lt__(self, other: RemotePath) -> bool:
        return self.key < other.key

    def __truediv__(self, name: str | os.PathLike) -> RemotePath:
        return RemotePath(posixpath.normpath(posixpath.join(self.key, str(name))).strip("/"), self.endpoint)

    def __reduce__(self):
        return (RemotePath, (self.key, self.endpoint))

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(posixpath.dirname(self.key) or self.key, self.endpoint)

    @property
    def bucket(self) -> str:
        return self.key.split("/", 1)[0]

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def is_absolute(self) -> bool:
        return True

    def resolve(self) -> RemotePath:
        return self

    def relative_to(self, other: RemotePath) -> Path:
        if not isinstance(other, RemotePath) or not (self.key + "/").startswith(other.key + "/"):
            raise ValueError(f"{self} is not inside {other}")
        return Path(self.key[len(other.key) :].lstrip("/"))

    @property
    def fs(self):
        return filesystem(self.endpoint)

    # --- queries -----------------------------------------------------------------------------
    def _info(self):
        try:
            return self.fs.get_file_info(self.key)
        except OSError as error:
            raise storage_error(self, error) from None

    def exists(self) -> bool:
        from pyarrow.fs import FileType

        return self._info().type is not FileType.NotFound

    def is_file(self) -> bool:
        from pyarrow.fs import FileType

        return self._info().type is FileType.File

    def is_dir(self) -> bool:
        from pyarrow.fs import FileType

        return self._info().type is FileType.Directory

    def stat(self) -> RemoteStat:
        """Size and last-modified time: what fingerprints of input files read from `stat()`."""
        info = self._info()
        return RemoteStat(st_size=info.size or 0, st_mtime_ns=info.mtime_ns or 0)

    def list_objects(self, recursive: bool):
        """One bounded listing: the objects under this prefix (never the whole bucket)."""
        from pyarrow.fs import FileSelector

        try:
            return self.fs.get_file_info(FileSelector(self.key, recursive=recursive, allow_not_found=True))
        except OSError as error:
            raise storage_error(self, error) from None

    def iterdir(self):
        for info in self.list_objects(recursive=False):
            yield RemotePath(info.path.strip("/"), self.endpoint)

    def glob(self, pattern: str):
        """Names directly under this prefix matching `pattern`: one listing of the prefix."""
        if "/" in pattern:
            raise ValueError(f"RemotePath.glob takes a name pattern, not {pattern!r}; use storage.glob_remote for paths")
        for info in self.list_objects(recursive=False):
            if fnmatch.fnmatchcase(posixpath.basename(info.path.rstrip("/")), pattern):
                yield RemotePath(info.path.strip("/"), self.endpoint)

    def rglob(self, pattern: str):
        from pyarrow.fs import FileType

        for info in self.list_objects(recursive=True):
            if info.type is FileType.File and fnmatch.fnmatchcase(posixpath.basename(info.path), pattern):
                yield RemotePath(info.path.strip("/"), self.endpoint)

    # --- reading and writing -----------------------------------------------------------------
    def open(self, mode: str = "rb", encoding: str | None = None):
        try:
            if mode in ("rb", "r"):
                handle = io.BufferedReader(self.fs.open_input_file(self.key))
            elif mode in ("wb", "w"):
                handle = self.fs.open_output_stream(self.key)
            else:
                raise ValueError(f"RemotePath.open: mode {mode!r} is not supported")
        except OSError as error:
            raise storage_error(self, error) from None
        return io.TextIOWrapper(handle, encoding=encoding or "utf-8") if "b" not in mode else handle

    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.key) as handle:
                return handle.read()
        except OSError as error:
            raise storage_error(self, error) from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """One PUT: the object appears whole or not at all."""
        try:
            with self.fs.open_output_stream(self.key) as handle:
                handle.write(data)
        except OSError as error:
            raise storage_error(self, error) from None

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Prefixes need no creating on an object store."""

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except OSError as error:
            if missing_ok and not self.exists():
                return
            raise storage_error(self, error) from None


def storage_error(path: RemotePath, error: Exception) -> StorageError:
    """The store's error in words that name the location and what to check."""
    text = str(error)
    hint = "check the bucket name, the endpoint and your credentials"
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        hint = f"bucket '{path.bucket}' does not exist; create it or fix the name"
    elif "ACCESS_DENIED" in text or "AccessDenied" in text or "403" in text:
        hint = "access denied: the credentials in use may not read/write this prefix"
    elif "INVALID_ACCESS_KEY" in text or "SIGNATURE" in text.upper() or "InvalidAccessKeyId" in text:
        hint = "the access key or secret is wrong (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws/credentials)"
    elif "NETWORK_CONNECTION" in text or "curlCode" in text:
        hint = f"cannot reach the store (endpoint {path.endpoint.url or 'AWS default'}; set {ENDPOINT_ENV} or storage.endpoint)"
    return StorageError(f"{path}: {hint} ({text.splitlines()[0] if text else type(error).__name__})")


# --- helpers that take either kind of path ----------------------------------------------------
def write_bytes_atomic(path: Path | RemotePath, data: bytes) -> None:
    if isinstance(path, RemotePath):
        path.write_bytes(data)
        return
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parquet_bytes(table: pa.Table, compression: str) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression)
    return sink.getvalue().to_pybytes()


def _source(path: Path | RemotePath | str) -> tuple[str, Any]:
    location = as_path(path) if isinstance(path, str) else path
    if isinstance(location, RemotePath):
        return location.key, location.fs
    return str(location), None


def read_parquet(path: Path | RemotePath | str, **options) -> pa.Table:
    source, fs = _source(path)
    try:
        return pq.read_table(source, filesystem=fs, **options)
    except OSError as error:
        if fs is None:
            raise
        raise storage_error(as_path(path), error) from None


def parquet_file(path: Path | RemotePath | str) -> pq.ParquetFile:
    source, fs = _source(path)
    return pq.ParquetFile(fs.open_input_file(source) if fs is not None else source)


def parquet_schema(path: Path | RemotePath | str) -> pa.Schema:
    source, fs = _source(path)
    return pq.read_schema(source, filesystem=fs)


def remove_tree(path: Path | RemotePath) -> None:
    """Delete a folder and everything under it; nothing there is fine."""
    if isinstance(path, RemotePath):
        try:
            path.fs.delete_dir(path.key)
        except FileNotFoundError:
            pass
        except OSError as error:
            if path.exists():
                raise storage_error(path, error) from None
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def upload_file(local: Path, target: Path | RemotePath) -> None:
    """Put a finished local file at `target`: a rename locally, one upload to an object store."""
    if isinstance(target, RemotePath):
        from pyarrow.fs import LocalFileSystem, copy_files

        try:
            copy_files(str(local), target.key, source_filesystem=LocalFileSystem(), destination_filesystem=target.fs)
        except OSError as error:
            raise storage_error(target, error) from None
        local.unlink(missing_ok=True)
        return
    os.replace(local, target)


def check_writable(location: RemotePath) -> None:
    """Write, read back and delete a probe object: the bucket exists, the key is right and the
    credentials may write here. Called before any stage starts."""
    probe = location / f".write-probe-{os.getpid()}"
    probe.write_bytes(b"ok")
    if probe.read_bytes() != b"ok":
        raise StorageError(f"{location}: a probe object read back different bytes; is the endpoint a real S3 API?")
    probe.unlink(missing_ok=True)


def check_readable(location: RemotePath) -> None:
    """The prefix can be listed (bucket there, credentials allowed to read)."""
    from pyarrow.fs import FileSelector

    try:
        location.fs.get_file_info(FileSelector(location.key, recursive=False, allow_not_found=True))
        bucket = location.fs.get_file_info(location.bucket)
    except OSError as error:
        raise storage_error(location, error) from None
    from pyarrow.fs import FileType

    if bucket.type is FileType.NotFound:
        raise StorageError(f"{location}: bucket '{location.bucket}' does not exist; create it or fix the name")


def glob_remote(pattern: str) -> list[RemotePath]:
    """The objects an `s3://bucket/prefix/*.jsonl`-style pattern names: one listing of the
    pattern's fixed prefix (recursive only when the pattern spans folders), matched here."""
    root = as_path(pattern)
    parts = root.key.split("/")
    fixed = next((index for index, part in enumerate(parts) if any(char in part for char in "*?[")), len(parts))
    if fixed == len(parts):
        return [root] if root.exists() else []
    if fixed == 0:
        raise StorageError(f"{pattern}: the bucket name cannot be a pattern")
    prefix = RemotePath("/".join(parts[:fixed]), root.endpoint)
    wanted = "/".join(parts[fixed:])
    from pyarrow.fs import FileType

    matches = []
    for info in prefix.list_objects(recursive="/" in wanted or "**" in wanted):
        relative = info.path.strip("/")[len(prefix.key) + 1 :]
        if info.type is FileType.File and fnmatch.fnmatchcase(relative, wanted.replace("**/", "*")):
            matches.append(RemotePath(info.path.strip("/"), root.endpoint))
    if not matches:
        check_readable(prefix)  # a missing bucket or refused listing says so, not "no match"
    return sorted(matches)


def use_endpoint(endpoint: Endpoint) -> None:
    """In a worker: make `s3://` strings resolve against the driver's endpoint."""
    configure(endpoint.url, endpoint.region)
