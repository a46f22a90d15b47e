"""A fake engine backend for `synthmix.pipeline.llm.engine_replica.Replica`: answers at once, or hangs,
or dies after a number of requests, so the shared-engine lifecycle and its failures are tested
without a 30 s vLLM start-up. Its replies fit the request's JSON schema (see fake_chat_server).

`FakeEngine` is the same backend as an engine of its own (`engine: fake` in a job's `models:`),
the example of docs/engines.md: a new engine is a module like this one plus one
`synthmix.pipeline.llm.engines.register(FakeEngine())` line (tests/pipeline/llm/test_engine_registry.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from pydantic import Field

from synthmix.pipeline.llm.engine_pool import ReplicaPlacement, Reservation
from synthmix.pipeline.llm.engine_replica import Progress, ReplicaSettings
from synthmix.pipeline.llm.engines.base import PooledEngine
from synthmix.pipeline.llm.models import ReplicatedModelSettings
from tests.pipeline.fake_chat_server import schema_reply


class EngineGone(RuntimeError):
    """What the fake raises once it has 'died', as vLLM's EngineDeadError would."""


class FakeBackend:
    def __init__(
        self,
        settings: ReplicaSettings,
        *,
        hang_after: int | None = None,
        die_after: int | None = None,
        exit_after: int | None = None,
        refuse: str | None = None,
        start_error: str | None = None,
        start_when: str | None = None,
        answer_after_s: float = 0.0,
        reply: Callable[[dict], str] | None = None,
    ) -> None:
        # Start-up: fails with `start_error`, or waits until the file `start_when` exists (the
        # test decides when the engine is up, with no timing involved).
        if start_error is not None:
            raise RuntimeError(start_error)
        while start_when is not None and not os.path.exists(start_when):
            time.sleep(0.02)
        self.settings = settings
        self.hang_after = hang_after
        self.die_after = die_after
        # The whole actor process goes, as when the OOM killer takes a replica.
        self.exit_after = exit_after
        # A message content the engine refuses, as vLLM refuses a prompt longer than the context.
        self.refuse = refuse
        # How long each answer takes (engine seconds to measure).
        self.answer_after_s = answer_after_s
        # Replies as FakeChatServer(reply=...) makes them, from the request body; else schema_reply.
        self.reply = reply or schema_reply
        self.answered = 0

    async def stream(self, request_id: str, messages: list[dict[str, str]], sampling: dict[str, Any], schema: str | None) -> AsyncIterator[Progress]:
        if self.refuse and messages[-1]["content"] == self.refuse:
            raise ValueError("This model's maximum context length is 2048 tokens (fake)")
        if self.die_after is not None and self.answered >= self.die_after:
            raise EngineGone("engine core process exited (fake)")
        if self.exit_after is not None and self.answered >= self.exit_after:
            os._exit(1)
        if self.hang_after is not None and self.answered >= self.hang_after:
            await asyncio.sleep(3600)
        self.answered += 1
        body = {"messages": messages, "response_format": {"json_schema": {"schema": json.loads(schema)}} if schema else None}
        text = self.reply(body)
        yield Progress(finished=False, text=text[:5], prompt_tokens=7, generated_tokens=1)
        await asyncio.sleep(self.answer_after_s)
        yield Progress(finished=True, text=text, prompt_tokens=7, generated_tokens=len(text.split()))

    def is_fatal(self, error: BaseException) -> bool:
        return isinstance(error, EngineGone)

    def shutdown(self) -> None:
        pass


# What a scripted engine does with a request, in the order the requests reach it.
REFUSE = "refuse"  # raises, as vLLM refuses a request (a row error)
UNFINISHED = "unfinished"  # the stream ends before the request finishes
FITTING = "fitting"  # a reply that fits the request's schema (fake_chat_server.schema_reply)


class ScriptedBackend(FakeBackend):
    """Answers the i-th request it receives with `script[i % len(script)]`: one of the outcomes
    above, or a literal reply text (None and "" included). Records every request it was sent."""

    def __init__(self, settings: ReplicaSettings, *, script: list[str | None]) -> None:
        super().__init__(settings)
        self.script = script or [FITTING]
        self.received: list[list[dict[str, str]]] = []

    async def stream(self, request_id: str, messages: list[dict[str, str]], sampling: dict[str, Any], schema: str | None) -> AsyncIterator[Progress]:
        outcome = self.script[len(self.received) % len(self.script)]
        self.received.append(messages)
        if outcome == REFUSE:
            raise ValueError("This model's maximum context length is 2048 tokens (scripted)")
        if outcome == UNFINISHED:
            yield Progress(finished=False, text="partial", generated_tokens=1)
            return
        if outcome == FITTING:
            outcome = schema_reply({"messages": messages, "response_format": {"json_schema": {"schema": json.loads(schema)}} if schema else None})
        await asyncio.sleep(0)
        yield Progress(finished=True, text=outcome, prompt_tokens=7, generated_tokens=len((outcome or "").split()))


class FakeModel(ReplicatedModelSettings):
    """`engine: fake`: the shared settings (replicas, batch_size, sampling, ...) and its own."""

    engine: Literal["fake"]
    cpus_per_replica: float = Field(default=0.25, gt=0)
    # How long each answer takes, as FakeBackend(answer_after_s=...).
    answer_after_s: float = Field(default=0.0, ge=0)


class FakeEngine(PooledEngine):
    """Replicas shared by the job's stages, each a Replica actor driving a FakeBackend."""

    name = "fake"
    settings = FakeModel

    def replica_placement(self, spec: FakeModel) -> ReplicaPlacement:
        return ReplicaPlacement(num_cpus=spec.cpus_per_replica)

    def replica_settings(self, name: str, spec: FakeModel, index: int) -> ReplicaSettings:
        return ReplicaSettings(
            model_name=name,
            model_source="fake",
            engine_kwargs={"answer_after_s": spec.answer_after_s},
            hang_timeout_s=spec.hang_timeout_s,
            replica_index=index,
        )

    def replica_backend(self, default: Callable[[ReplicaSettings], Any]) -> Callable[[ReplicaSettings], Any]:
        return start_fake_backend

    def reservation(self, name: str, spec: FakeModel) -> Reservation:
        return Reservation(name, spec.replicas, spec.cpus_per_replica, 0, "cpus_per_replica")

    def describe(self, spec: FakeModel) -> str:
        return "answers from tests/pipeline/fake_engine.py"


def start_fake_backend(settings: ReplicaSettings) -> FakeBackend:
    """In the replica's actor: the backend FakeEngine's settings describe."""
    return FakeBackend(settings, answer_after_s=settings.engine_kwargs["answer_after_s"])
