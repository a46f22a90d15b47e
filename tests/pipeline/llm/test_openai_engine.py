"""apply_llm with `engine: openai` against vLLM's own OpenAI-compatible server on 127.0.0.1.

The server (the embedded model, ~40 s to start) is shared by the module's tests. One test kills it
mid-run; the next test to ask for the server gets a fresh one, so the tests pass in any order (in
random order, seed 4, the kill ran first and the other test read a dead server's row errors).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from synthmix.pipeline.llm import processors as llm
from synthmix.pipeline.llm.cpu_features import embedded_dtype
from synthmix.pipeline.llm.embedded_model import prepare_embedded_model
from synthmix.pipeline.llm.engines.openai import OpenAIModel
from synthmix.pipeline.llm.engines.vllm_runtime import KV_CACHE_ENV
from synthmix.pipeline.llm.llm_output import parse_llm_json

pytestmark = pytest.mark.engine

SERVER_START_TIMEOUT_S = 300
FRUIT = {"type": "object", "properties": {"fruit": {"type": "string", "maxLength": 20}}, "required": ["fruit"], "additionalProperties": False}
# The server runs the embedded model in the dtype a job would choose on this processor.
DTYPE = embedded_dtype("auto").dtype


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder) -> tuple[str, subprocess.Popen]:
    """A vLLM OpenAI server serving the embedded model as 'smol', once it answers: (base_url, process)."""
    port = free_port()
    log = (folder / f"server-{port}.log").open("w")
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(prepare_embedded_model(dtype=DTYPE)), "--dtype", DTYPE, "--served-model-name", "smol",
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "2048", "--enforce-eager", "--gpu-memory-utilization", "0.1",
    ]  # fmt: skip
    env = {**os.environ, KV_CACHE_ENV: os.environ.get(KV_CACHE_ENV, "1")}
    with log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=2)
            return base_url, process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_server(process)
                pytest.fail(f"vLLM server did not start within {SERVER_START_TIMEOUT_S} s; see {log.name}")
            time.sleep(1)


def stop_server(process: subprocess.Popen) -> None:
    """The server and its engine processes (its own process group) gone; killed if a SIGTERM
    is not enough within 60 s (a server still starting on a loaded machine)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The module's servers: a callable giving the running one, started on first use and again
    after a test killed it."""
    folder = tmp_path_factory.mktemp("server")
    started: list[tuple[str, subprocess.Popen]] = []

    def running() -> tuple[str, subprocess.Popen]:
        if not started or started[-1][1].poll() is not None:
            started.append(start_server(folder))
        return started[-1]

    yield running
    for _, process in started:
        stop_server(process)


@pytest.fixture
def server(servers):
    """A live vLLM OpenAI server serving the embedded model as 'smol': (base_url, process)."""
    return servers()


def spec(base_url, **overrides):
    return OpenAIModel(engine="openai", base_url=base_url, model="smol", max_retries=2, backoff_s=0.2, timeout_s=60, **overrides)


def test_generation_structured_output_and_row_errors_through_the_server(ray_session, server):
    import ray.data

    base_url, _ = server
    rows = [
        {"id": "plain", "messages": [{"role": "user", "content": "Say hello."}], "json_schema": None},
        {"id": "json", "messages": [{"role": "user", "content": "Name a fruit as JSON."}], "json_schema": json.dumps(FRUIT)},
        {"id": "too_long", "messages": [{"role": "user", "content": "word " * 3000}], "json_schema": None},
    ]
    out = {
        row["id"]: row
        for row in llm.apply_llm(ray.data.from_items(rows), model=spec(base_url), model_name="smol", sampling={"temperature": 0.0, "max_tokens": 64}).take_all()
    }
    assert sorted(out) == ["json", "plain", "too_long"]
    assert out["plain"]["generated_text"] and out["plain"]["num_generated_tokens"] > 0
    assert parse_llm_json(out["json"]["generated_text"], FRUIT)[1] is None
    assert out["too_long"]["generated_text"] is None
    assert out["too_long"]["llm_error"].startswith("HTTP 400")


def stop_server_at_marker(batch, *, pid, port):
    """Upstream of apply_llm: kill the server when the marker row passes, before its request is sent."""
    if "stop-here" in batch["id"].to_pylist():
        os.killpg(pid, signal.SIGKILL)
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.1)
    return batch


def test_server_stopped_mid_run_gives_row_errors_after_retries_and_loses_nothing(ray_session, server):
    import ray.data

    base_url, process = server
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    ids = [f"row-{i}" for i in range(4)] + ["stop-here"] + [f"row-{i}" for i in range(4, 8)]
    rows = [{"id": row_id, "messages": [{"role": "user", "content": f"Count to {i}."}]} for i, row_id in enumerate(ids)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        stop_server_at_marker, batch_format="pyarrow", fn_kwargs={"pid": process.pid, "port": port}
    )
    out = llm.apply_llm(dataset, model=spec(base_url, batch_size=2), model_name="smol", sampling={"temperature": 0.0, "max_tokens": 8}).take_all()
    assert sorted(row["id"] for row in out) == sorted(ids)
    for row in out:
        assert (row["generated_text"] is None) != (row["llm_error"] is None)
    failed = {row["id"]: row["llm_error"] for row in out if row["llm_error"]}
    assert "stop-here" in failed
    assert "gave up after 3 tries" in failed["stop-here"] and "ClientConnectorError" in failed["stop-here"]
