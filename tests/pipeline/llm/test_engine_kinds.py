"""One code path for a reply, whatever the engine: the same stage on `embedded`, `vllm` and an
OpenAI-compatible server keeps and rejects the same rows for the same reasons.

The fast case gives all three the same replies: the shared-engine replicas (embedded and vllm
specs alike) run a fake backend, the server is tests/pipeline/fake_chat_server.py, and both
answer with one function of the prompt. The probes are chosen for each way a reply can fail:
a question longer than the model takes (counted with the model's tokenizer on every kind, so
the server is never asked), a reply that only asks a question back, an empty reply. The engine
case runs the real embedded model both as `embedded` and as `vllm` (its converted folder),
greedy, and compares the rejects row by row.
"""

from __future__ import annotations

import functools
import json

import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.llm import engine_pool
from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine, EmbeddedModel
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.quality.answer_checks import check_is_answer
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_chat_server import FakeChatServer
from tests.pipeline.fake_engine import FakeBackend

SMOL = "smollm2-135m"
PROBES = [
    {"question": "What is 12 times 7?", "answer": "84"},
    {"question": "Explain the difference between a list and a tuple in Python.", "answer": "mutability"},
    {"question": "What does QUESTION-BACK mean here?", "answer": "nothing"},
    {"question": "Say EMPTY-REPLY, please.", "answer": "nothing"},
    {"question": "Add these numbers up: " + " ".join(str(number % 97) for number in range(9000)) + ". What is the sum?", "answer": "0"},
]
EXPECTED = {0: None, 1: None, 2: "not_an_answer", 3: "empty", 4: "prompt_too_long"}


def reply_to(body: dict) -> str:
    """The same reply on every engine kind: a function of the prompt alone."""
    prompt = body["messages"][-1]["content"]
    if "QUESTION-BACK" in prompt:
        return "Could you tell me what you mean by that?"
    if "EMPTY-REPLY" in prompt:
        return "   "
    return "It is 84: twelve sevens make eighty-four. The final answer is \\boxed{84}."


def run_answer(tmp_path, name: str, model: dict) -> dict[str, str | None]:
    """probe_source -> answer on `model`; each probe's reject reason (None: kept), by probe line."""
    probes = tmp_path / "probes.jsonl"
    probes.write_text("".join(json.dumps(probe) + "\n" for probe in PROBES))
    job = parse_job(
        {
            "name": name,
            "run_dir": str(tmp_path / name),
            "models": {"m": model},
            "stages": ["probe_source", "answer"],
            "probe_source": {"files": [{"name": "mine", "path": str(probes), "domain": "general"}]},
            "answer": {"routes": {"default": "m"}, "samples": 1, "sampling": {"temperature": 0.0, "max_tokens": 48}},
        },
        source=f"{name}.yaml",
    )
    run_job(job, STAGES, job_dir=tmp_path, log=lambda line: None)
    stage_dir = StageDir(tmp_path / name, "answer")
    rows = [row for path in stage_dir.part_files() + stage_dir.reject_files() for row in pq.read_table(path).to_pylist()]
    outcome = {}
    for row in rows:
        line = int(json.loads(row["origin"])["line"]) - 1
        outcome[line] = row.get("reject_reason")
        if row.get("reject_reason") is None:
            assert check_is_answer(row["answer"], row["instruction"]) is None, f"{name} kept a reply check_is_answer rejects: {row['answer']!r}"
    return outcome


def test_the_same_replies_get_the_same_rejects_on_every_kind_of_engine(tmp_path, ray_session, monkeypatch):
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", functools.partial(FakeBackend, reply=reply_to))
    folder = EmbeddedEngine().start_settings(EmbeddedModel(model=SMOL))["model_source"]
    server = FakeChatServer(reply=reply_to).start()
    try:
        outcomes = {
            "embedded": run_answer(tmp_path, "embedded", {"engine": "embedded", "model": SMOL, "max_model_len": 2048}),
            "vllm": run_answer(tmp_path, "vllm", {"engine": "vllm", "model": folder, "gpus_per_replica": 0, "engine_kwargs": {"max_model_len": 2048}}),
            "openai": run_answer(
                tmp_path, "openai", {"engine": "openai", "base_url": server.base_url, "model": "smol", "tokenizer": folder, "max_model_len": 2048}
            ),
        }
    finally:
        server.stop()
    assert outcomes == {kind: EXPECTED for kind in outcomes}
    assert server.answered == len(PROBES) - 1, "the server was sent the prompt counted too long"


@pytest.mark.engine
def test_the_embedded_model_as_embedded_and_as_vllm_keeps_and_rejects_the_same_rows(tmp_path, ray_session):
    folder = EmbeddedEngine().start_settings(EmbeddedModel(model=SMOL))["model_source"]
    embedded = run_answer(tmp_path, "embedded", {"engine": "embedded", "model": SMOL, "max_model_len": 2048, "batch_size": 8})
    vllm = run_answer(tmp_path, "vllm", {"engine": "vllm", "model": folder, "gpus_per_replica": 0, "batch_size": 8, "engine_kwargs": {"max_model_len": 2048}})
    assert embedded == vllm
    assert embedded[4] == "prompt_too_long"
