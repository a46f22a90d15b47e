"""One S3-compatible server (moto's server mode) on loopback for the whole test session.

The pipeline talks to it through the same pyarrow S3FileSystem as to a real bucket: only the
endpoint differs (SYNTHMIX_S3_ENDPOINT), so nothing in the client is patched.
"""

import os
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from pyarrow.fs import S3FileSystem

from synthmix.pipeline import storage
from synthmix.pipeline.inspection.run_copy import CACHE_ENV
from tests.pipeline.loopback_cluster import free_ports

# moto accepts any key; these keep pyarrow's credential chain from looking for instance roles.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "synthmix-test",
    "AWS_SECRET_ACCESS_KEY": "synthmix-test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


# Set at collection, before any test starts Ray: workers inherit the driver's environment then.
for _key, _value in CREDENTIALS.items():
    os.environ.setdefault(_key, _value)


def start_moto_server(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A moto S3 server bound to 127.0.0.1 on a free port, once it answers: (process, endpoint URL)."""
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The endpoint URL of the session's moto S3 server, named by SYNTHMIX_S3_ENDPOINT."""
    process, endpoint = start_moto_server()
    saved = {key: os.environ.get(key) for key in (storage.ENDPOINT_ENV, storage.REGION_ENV, CACHE_ENV)}
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("s3-cache"))  # inspection's local copies, not ~/.cache
    os.environ[storage.ENDPOINT_ENV] = endpoint
    os.environ[storage.REGION_ENV] = "us-east-1"
    yield endpoint
    process.terminate()
    process.wait(timeout=10)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_bucket(endpoint: str) -> str:
    """A fresh bucket, `s3://<name>`, made as an administrator would, outside synthmix
    (synthmix itself never creates buckets)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    admin = S3FileSystem(endpoint_override=endpoint.removeprefix("http://"), scheme="http", region="us-east-1", allow_bucket_creation=True)
    admin.create_dir(name)
    return f"s3://{name}"


@pytest.fixture
def bucket(s3_server) -> str:
    return make_bucket(s3_server)
