"""One engine per model per job (synthmix.pipeline.llm.engine_pool): started by the first stage that
needs it, shared by later stages, released after its last user; hangs and deaths fail cleanly.

The lifecycle runs real jobs on a fake engine (tests/pipeline/fake_engine.py: no 30 s vLLM
start-up); the output contract of apply_llm on the shared path runs once on the real
embedded model (one engine start for every case of it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import time

import pytest

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.llm import engine_pool
from synthmix.pipeline.llm.engine_replica import Progress, Replica, ReplicaFailed, ReplicaSettings, StageCounters
from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine, EmbeddedModel
from synthmix.pipeline.llm.llm_output import parse_llm_json
from synthmix.pipeline.llm.processors import apply_llm
from synthmix.pipeline.llm.prompt_length import count_prompt_tokens
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_engine import FakeBackend
from tests.pipeline.llm.test_llm_engine import FRUIT, ROWS, STORY
from tests.pipeline.test_resume import write_corpus

SETTINGS = ReplicaSettings(model_name="m", model_source="fake", engine_kwargs={}, hang_timeout_s=0.5)
REQUEST = {"messages": [{"role": "user", "content": "hi"}], "sampling": {"temperature": 0.0}, "schema": None}


# --- the replica's watchdog, in plain asyncio ---------------------------------------------


def test_a_refused_request_is_a_row_error_and_the_rest_of_the_batch_is_answered():
    replica = Replica(SETTINGS, functools.partial(FakeBackend, refuse="too long"))
    refused = {**REQUEST, "messages": [{"role": "user", "content": "too long"}]}
    replies = asyncio.run(replica.generate([REQUEST, refused, REQUEST]))
    assert [reply["error"] is None for reply in replies] == [True, False, True]
    assert "maximum context length" in replies[1]["error"]
    assert replies[0]["text"] and replies[0]["generated_tokens"] > 0


def test_a_hung_engine_fails_the_batch_naming_the_model_and_the_timeout():
    replica = Replica(SETTINGS, functools.partial(FakeBackend, hang_after=1))
    with pytest.raises(ReplicaFailed, match=r"model 'm' .*no token for .*hang_timeout_s: 0.5"):
        asyncio.run(asyncio.wait_for(replica.generate([REQUEST, REQUEST, REQUEST]), timeout=10))
    # The replica stays failed: the next batch is told at once instead of waiting again.
    with pytest.raises(ReplicaFailed, match="hung"):
        asyncio.run(asyncio.wait_for(replica.generate([REQUEST]), timeout=1))


class FinalOnlyBackend(FakeBackend):
    """Streams nothing until a request ends, as vLLM with final-only outputs; its engine steps
    (`last_step`) move every 0.1 s for `steps_for_s` seconds, then stop."""

    def __init__(self, settings, *, answer_after_s, steps_for_s):
        super().__init__(settings)
        self.answer_after_s = answer_after_s
        self.steps_for_s = steps_for_s
        self.started = None

    def last_step(self):
        now = time.monotonic()
        self.started = self.started or now
        return now if now - self.started < self.steps_for_s else self.started + self.steps_for_s

    async def stream(self, request_id, messages, sampling, schema):
        await asyncio.sleep(self.answer_after_s)
        yield Progress(finished=True, text="done", prompt_tokens=3, generated_tokens=1)


def test_an_engine_still_stepping_is_not_hung_while_its_answers_come_at_the_end():
    replica = Replica(SETTINGS, functools.partial(FinalOnlyBackend, answer_after_s=1.5, steps_for_s=60))
    assert [reply["text"] for reply in asyncio.run(replica.generate([REQUEST, REQUEST]))] == ["done", "done"]


def test_an_engine_whose_steps_stop_is_hung_even_if_no_stream_would_have_said_so():
    replica = Replica(SETTINGS, functools.partial(FinalOnlyBackend, answer_after_s=30, steps_for_s=0.2))
    with pytest.raises(ReplicaFailed, match="hung"):
        asyncio.run(asyncio.wait_for(replica.generate([REQUEST]), timeout=10))


def test_a_dead_engine_fails_the_batch_naming_the_model():
    replica = Replica(SETTINGS, functools.partial(FakeBackend, die_after=2))
    with pytest.raises(ReplicaFailed, match=r"model 'm' .*engine died"):
        asyncio.run(replica.generate([REQUEST] * 4))


def test_engine_seconds_count_while_requests_wait_and_not_while_the_engine_idles():
    replica = Replica(SETTINGS, functools.partial(FinalOnlyBackend, answer_after_s=0.3, steps_for_s=60))
    assert replica.busy_seconds() == 0
    asyncio.run(replica.generate([REQUEST, REQUEST]))
    busy = replica.busy_seconds()
    assert busy >= 0.3, "the two requests were answered together after 0.3 s"
    asyncio.run(asyncio.sleep(0.5))
    assert replica.busy_seconds() == busy, "idle time counted as engine time"


def test_an_idle_engine_is_not_taken_for_hung():
    replica = Replica(SETTINGS, FakeBackend)
    asyncio.run(replica.generate([REQUEST]))
    asyncio.run(asyncio.sleep(0.8))  # longer than hang_timeout_s, with nothing waiting
    assert asyncio.run(replica.generate([REQUEST]))[0]["error"] is None


class HeldBackend(FakeBackend):
    """Streams `tokens` tokens for each request, then holds it unfinished until `release` is set;
    with `final_only`, streams nothing and says its tokens through `tokens_so_far` (as vLLM does)."""

    def __init__(self, settings, *, tokens, final_only=False):
        super().__init__(settings)
        self.tokens = tokens
        self.final_only = final_only
        self.release = asyncio.Event()
        self.so_far = {}

    def tokens_so_far(self, request_id):
        return self.so_far.get(request_id, 0)

    async def stream(self, request_id, messages, sampling, schema):
        self.so_far[request_id] = self.tokens
        if not self.final_only:
            yield Progress(finished=False, text="x" * self.tokens, generated_tokens=self.tokens)
        await self.release.wait()
        yield Progress(finished=True, text="done", prompt_tokens=3, generated_tokens=self.tokens + 1)


@pytest.mark.parametrize("final_only", [False, True], ids=["streamed", "final_only"])
def test_progress_counts_the_tokens_of_unfinished_requests_per_stage(final_only):
    async def scenario():
        replica = Replica(dataclasses.replace(SETTINGS, hang_timeout_s=60), functools.partial(HeldBackend, tokens=5, final_only=final_only))
        evolve = asyncio.ensure_future(replica.generate([REQUEST, REQUEST], stage="evolve"))
        answer = asyncio.ensure_future(replica.generate([REQUEST], stage="answer"))
        await asyncio.sleep(0.05)
        running = replica.counters()
        replica.backend.release.set()
        await asyncio.gather(evolve, answer)
        return running, replica.counters()

    running, finished = asyncio.run(scenario())
    assert running == {"evolve": StageCounters(answered=0, generating=2, waiting=0, tokens=10), "answer": StageCounters(generating=1, tokens=5)}
    assert finished == {"evolve": StageCounters(answered=2, tokens=12), "answer": StageCounters(answered=1, tokens=6)}


def test_a_request_the_engine_has_not_started_counts_as_waiting():
    async def scenario():
        replica = Replica(dataclasses.replace(SETTINGS, hang_timeout_s=60), functools.partial(HeldBackend, tokens=0, final_only=True))
        call = asyncio.ensure_future(replica.generate([REQUEST], stage="answer"))
        await asyncio.sleep(0.05)
        counted = replica.counters()
        replica.backend.release.set()
        await call
        return counted

    assert asyncio.run(scenario()) == {"answer": StageCounters(waiting=1)}


# --- how a task's rows reach the replicas --------------------------------------------------


class RecordingReplica:
    """A replica that answers a call only once `calls_before_answering` of them wait in it at
    the same time: calls sent one after another would each wait out `patience_s` and fail."""

    def __init__(self, name: str, calls_before_answering: int, patience_s: float = 20.0) -> None:
        self.name = name
        self.waiting = 0
        self.calls_before_answering = calls_before_answering
        self.patience_s = patience_s

    async def generate(self, requests, stage=None):
        self.waiting += 1
        waited = 0.0
        while self.waiting < self.calls_before_answering and waited < self.patience_s:
            await asyncio.sleep(0.05)
            waited += 0.05
        together = self.waiting >= self.calls_before_answering
        return [{"text": f"{self.name}:{request['messages'][0]['content']}", "error": None if together else "sent alone"} for request in requests]


def numbered_requests(count):
    return [{**REQUEST, "messages": [{"role": "user", "content": str(index)}]} for index in range(count)]


def test_a_tasks_calls_all_wait_in_the_replica_at_once(ray_session):
    replica = ray_session.remote(RecordingReplica).options(max_concurrency=100).remote("r", calls_before_answering=3)
    replies = engine_pool.send_batch(numbered_requests(7), replicas=[replica], model_name="m", batch_size=3)
    assert [reply["error"] for reply in replies] == [None] * 7, "the 3 calls (3 + 3 + 1 rows) were not in flight together"
    assert [reply["text"] for reply in replies] == [f"r:{index}" for index in range(7)]


def test_calls_go_to_the_replicas_in_turn_and_replies_keep_the_requests_order(ray_session):
    replicas = [ray_session.remote(RecordingReplica).options(max_concurrency=100).remote(name, calls_before_answering=2) for name in "ab"]
    replies = engine_pool.send_batch(numbered_requests(8), replicas=replicas, model_name="m", batch_size=2)
    assert [reply["error"] for reply in replies] == [None] * 8
    assert [reply["text"].split(":")[1] for reply in replies] == [str(index) for index in range(8)]
    served = [reply["text"].split(":")[0] for reply in replies[::2]]
    assert sorted(served) == ["a", "a", "b", "b"] and served[0] != served[1], served


# --- the job's lifecycle, on the fake engine -----------------------------------------------


def make_job(run_dir, corpus, models, stages, **sections):
    return parse_job(
        {"name": "reuse", "run_dir": str(run_dir), "models": models, "stages": stages, "seeds": {"path": str(corpus)}, **sections},
        source="reuse",
    )


@pytest.fixture
def fake_engine(monkeypatch):
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", FakeBackend)


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def index_of(self, text: str) -> int:
        return next(index for index, line in enumerate(self) if text in line)

    def count(self, text: str) -> int:
        return sum(text in line for line in self)


DEDUP = {"name": "dedup_instructions", "kind": "dedup"}


def test_a_two_stage_job_starts_its_model_once_and_releases_it_after_its_last_stage(tmp_path, ray_session, monkeypatch):
    monkeypatch.setattr(engine_pool, "GENERATION_REPORT_S", 0.1)
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", functools.partial(FakeBackend, answer_after_s=0.01))
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 6)
    job = make_job(
        tmp_path / "run",
        corpus,
        {"m": {"engine": "embedded"}},
        ["seeds", "synthesize", "evolve", DEDUP],
        synthesize={"model": "m"},
        evolve={"model": "m"},
        dedup_instructions={"text_columns": ["instruction"]},
    )
    log = Lines()
    run_job(job, STAGES, log=log)
    assert log.count("model m: starting") == 1
    assert log.index_of("[synthesize] model m: starting") < log.index_of("[evolve] model m: reusing its engine")
    # Released once evolve, its last user, is done: before the dedup stage runs (the shutdown
    # goes on beside it), and gone by the time the job returns.
    assert log.index_of("[evolve] done") < log.index_of("model m: releasing its engine") < log.index_of("[dedup_instructions] missing, running")
    assert log.count("model m: engine released") == 1
    synthesize = StageDir(job.resolved_run_dir(), "synthesize").manifest()
    evolve = StageDir(job.resolved_run_dir(), "evolve").manifest()
    assert synthesize["llm"]["m"]["startup_s"] > 0
    assert evolve["llm"]["m"]["startup_s"] == 0
    # Each stage records the seconds it generated on the shared engine (each answer takes 0.01 s),
    # and the engine's dtype.
    assert synthesize["llm"]["m"]["engine_s"] >= 0.01 and evolve["llm"]["m"]["engine_s"] >= 0.01
    assert synthesize["llm"]["m"]["dtype"] == evolve["llm"]["m"]["dtype"] in ("bfloat16", "float32")
    assert evolve["rows_out"] > 0, "evolve answered through the engine synthesize started"
    # Generation shows progress between commits, per stage: requests answered, counted on the
    # replica, each stage's own (not summed over the stages before it).
    for stage, manifest in (("synthesize", synthesize), ("evolve", evolve)):
        reports = [line for line in log if line.startswith(f"[{stage}] model m: ") and "requests answered" in line]
        assert reports, f"no generation progress line for {stage}"
        answered = [int(line.split("model m: ")[1].split(" requests")[0]) for line in reports]
        assert answered == sorted(answered) and 0 < answered[-1] <= manifest["llm"]["m"]["requests"], (stage, reports)
    assert engine_pool.active_pool() is None


def test_only_the_models_a_running_stage_needs_start(tmp_path, ray_session, fake_engine):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 4)
    job = make_job(
        tmp_path / "run",
        corpus,
        {"a": {"engine": "embedded"}, "b": {"engine": "embedded"}},
        ["seeds", "synthesize", "evolve"],
        synthesize={"model": "a"},
        evolve={"model": "b"},
    )
    log = Lines()
    run_job(job, STAGES, log=log)
    # a's last user is synthesize: it goes before b starts, so the two never hold CPUs together.
    assert log.index_of("model a: engine released") < log.index_of("[evolve] model b: starting")

    log = Lines()
    run_job(job, STAGES, only="evolve", log=log)
    assert log.count(": starting") == 1 and log.count("[evolve] model b: starting") == 1

    log = Lines()
    run_job(job, STAGES, log=log)  # every stage fresh
    assert log.count(": starting") == 0


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"hang_after": 2}, r"model 'm' .*no token for .*hang_timeout_s: 2"),
        ({"die_after": 2}, r"model 'm' .*engine died: engine core process exited"),
        ({"exit_after": 2}, r"model 'm': its engine replica died mid-stage"),
    ],
    ids=["hung", "engine_dead", "actor_gone"],
)
def test_a_failed_engine_fails_the_stage_naming_the_model_and_a_rerun_resumes(tmp_path, ray_session, monkeypatch, fault, message):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 4)
    models = {"m": {"engine": "embedded", "hang_timeout_s": 2, "batch_size": 1}}
    job = make_job(tmp_path / "run", corpus, models, ["seeds", "synthesize"], synthesize={"model": "m"})
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", functools.partial(FakeBackend, **fault))
    with pytest.raises(Exception, match=message):
        run_job(job, STAGES, log=Lines())
    assert engine_pool.active_pool() is None
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", FakeBackend)
    log = Lines()
    run_job(job, STAGES, log=log)
    assert log.count("[synthesize] resuming") == 1
    assert StageDir(job.resolved_run_dir(), "synthesize").manifest()["rows_in"] == 4


def test_a_stage_does_not_wait_for_its_engine_to_start_and_records_how_long_it_took(tmp_path, ray_session, monkeypatch):
    flag = tmp_path / "engine-may-start"
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", functools.partial(FakeBackend, start_when=str(flag)))
    log = Lines()
    with engine_pool.job_engines([("synthesize", ("m",))], log=log) as pool:
        pool.enter_stage("synthesize")
        # The engine cannot be up before the flag exists: replicas_for must return all the same
        # (in a thread, so a blocking start fails this test instead of hanging it).
        returned = concurrent.futures.ThreadPoolExecutor(1).submit(pool.replicas_for, "m", EmbeddedModel(), EmbeddedEngine())
        replicas = returned.result(timeout=60)
        assert "synthesize" not in pool.startups, "the start-up was recorded before the engine was up"
        call = replicas[0].generate.remote([REQUEST])  # waits in the actor until the engine is up
        flag.touch()
        assert ray_session.get(call, timeout=60)[0]["error"] is None
        assert engine_pool.stage_startups("synthesize")["m"] > 0
    assert log.count("[synthesize] model m: engine up in") == 1


def test_an_engine_that_fails_to_start_fails_the_stage_naming_the_model(tmp_path, ray_session, monkeypatch):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 4)
    job = make_job(tmp_path / "run", corpus, {"m": {"engine": "embedded"}}, ["seeds", "synthesize"], synthesize={"model": "m"})
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", functools.partial(FakeBackend, start_error="no memory for the KV cache (fake)"))
    log = Lines()
    with pytest.raises(Exception, match=r"(?s)model 'm': its engine failed to start: .*no memory for the KV cache"):
        run_job(job, STAGES, log=log)
    assert engine_pool.active_pool() is None
    assert log.count("[synthesize] model 'm': its engine failed to start") == 1


# --- apply_llm's contract on the shared engine, on the real embedded model ------------------


@pytest.fixture(scope="module")
def shared_results(ray_session):
    """The contract rows through a job scope's engine, then a second 'stage' on the same engine."""
    import ray.data

    model = EmbeddedModel(batch_size=8)
    log = Lines()
    with engine_pool.job_engines([("first", ("smol",)), ("second", ("smol",)), ("after", ())], log=log) as pool:
        pool.enter_stage("first")
        first = apply_llm(ray.data.from_items(ROWS), model=model, model_name="smol", sampling={"temperature": 0.0, "max_tokens": 96}).take_all()
        pool.enter_stage("second")
        second = apply_llm(ray.data.from_items(ROWS[:2]), model=model, model_name="smol", sampling={"temperature": 0.0, "max_tokens": 8}).take_all()
        startups = dict(pool.startups)
        starts = list(pool.start_log)
        pool.enter_stage("after")
        still_started = dict(pool.started)
    by_id = {}
    for row in first:
        by_id.setdefault(row["id"], []).append(row)
    return {"by_id": by_id, "second": second, "startups": startups, "starts": starts, "after": still_started}


@pytest.mark.engine
def test_shared_engine_starts_once_and_serves_both_stages(shared_results):
    assert shared_results["starts"] == [("smol", "first")]
    assert shared_results["startups"]["first"]["smol"] > 0
    assert shared_results["startups"]["second"]["smol"] == 0
    assert all(row["generated_text"] for row in shared_results["second"])
    assert shared_results["after"] == {}, "released once its last stage is over"


@pytest.mark.engine
def test_shared_engine_keeps_apply_llms_output_contract(shared_results):
    by_id = shared_results["by_id"]
    assert sorted(by_id) == sorted(row["id"] for row in ROWS)
    (short,) = by_id["short"]
    (longer,) = by_id["longer"]
    assert short["num_generated_tokens"] <= 4 < longer["num_generated_tokens"]
    assert longer["num_input_tokens"] > 5 and longer["llm_model"] == "smol"
    # The count made before sending is the engine's own: same tokenizer, same chat template.
    assert count_prompt_tokens(EmbeddedEngine().start_settings(EmbeddedModel())["model_source"], STORY) == longer["num_input_tokens"]
    (fruit,) = by_id["json"]
    value, error = parse_llm_json(fruit["generated_text"], FRUIT)
    assert error is None, fruit["generated_text"]
    (too_long,) = by_id["too_long"]
    assert too_long["generated_text"] is None and too_long["llm_error_reason"] == "prompt_too_long"
    assert "max_model_len 2048" in too_long["llm_error"] and too_long["num_input_tokens"] > 3000
    samples = sorted(by_id["two_samples"], key=lambda row: row["llm_sample_index"])
    assert [json.loads(row["llm_sampling"])["seed"] for row in samples] == [5, 6]
    assert all(row["generated_text"] for row in samples)
