"""The HTTP client session under Ray's `HttpRequestProcessorConfig` for OpenAI-compatible servers.

Ray's HTTP stage (Ray 2.60) calls `session.post(url, headers=..., data=json_body)` for every
row of a batch, then awaits the responses one by one, and raises as soon as one request has
exhausted its retries, which fails the whole dataset. Given this session as `session_factory`
(and `max_retries=0` there), each `post` starts its request at once, so a batch is in flight
concurrently, and retries with exponential backoff on timeouts, connection errors and
408/429/5xx happen here. Whatever the outcome, the stage gets a 200 response whose JSON has one
fixed shape (so Arrow sees one type for every row):

    {"text": str | None, "error": str | None, "prompt_tokens": int, "completion_tokens": int,
     "top_logprobs": str | None}   (JSON of [{token: logprob}] per position, when asked for)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Payload key carrying the row's output schema as a JSON string (one Arrow type for any schema).
SCHEMA_KEY = "synthmix_schema"
# Payload key carrying why the row is not to be sent (a prompt counted too long); "" sends it.
UNSENT_KEY = "synthmix_unsent"
_BODY_EXCERPT_CHARS = 300


class OpenAIChatSession:
    """An async context manager standing in for `aiohttp.ClientSession` inside Ray's HTTP stage."""

    def __init__(self, *, timeout_s: float, max_retries: int, backoff_s: float, send_json_schema: bool) -> None:
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.send_json_schema = send_json_schema
        self._session: Any = None

    async def __aenter__(self) -> OpenAIChatSession:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._session.close()

    def post(self, url: str, *, headers: dict[str, str], data: str) -> asyncio.Task:
        """Start the request now; awaiting the task gives a response-like `CompletionOutcome`.
        A payload marked not to be sent (UNSENT_KEY) never reaches the server: its outcome is
        that reason, as an error."""
        payload = json.loads(data)
        unsent = payload.pop(UNSENT_KEY, "")
        if unsent:
            return asyncio.ensure_future(_settled(CompletionOutcome(failed(unsent))))
        return asyncio.ensure_future(self._complete(url, headers, self._request_body(payload)))

    def _request_body(self, payload: dict[str, Any]) -> str:
        if not payload.get("stop"):
            payload.pop("stop", None)
        schema = payload.pop(SCHEMA_KEY, "")
        if schema and self.send_json_schema:
            payload["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": json.loads(schema)}}
        return json.dumps(payload)

    async def _complete(self, url: str, headers: dict[str, str], body: str) -> CompletionOutcome:
        import aiohttp

        last_failure = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                async with self._session.post(url, headers=headers, data=body) as response:
                    text = await response.text()
                    if response.status in RETRYABLE_STATUS:
                        last_failure = f"HTTP {response.status}: {text[:_BODY_EXCERPT_CHARS]}"
                        continue
                    return CompletionOutcome(read_completion(response.status, text))
            except (TimeoutError, aiohttp.ClientError) as error:
                last_failure = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        tries = self.max_retries + 1
        return CompletionOutcome(failed(f"{url}: gave up after {tries} tr{'y' if tries == 1 else 'ies'}; last: {last_failure}"))


async def _settled(outcome: CompletionOutcome) -> CompletionOutcome:
    return outcome


class CompletionOutcome:
    """The slice of aiohttp's response API that Ray's HTTP stage uses, always status 200."""

    status = 200
    reason = "OK"

    def __init__(self, result: dict[str, Any]) -> None:
        self._result = result

    async def __aenter__(self) -> CompletionOutcome:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        return None

    async def json(self) -> dict[str, Any]:
        return self._result


def failed(error: str) -> dict[str, Any]:
    return {"text": None, "error": error, "prompt_tokens": 0, "completion_tokens": 0, "top_logprobs": None}


def read_completion(status: int, body: str) -> dict[str, Any]:
    """The fixed-shape result of one chat-completions response (error bodies included)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return failed(f"HTTP {status}: response is not JSON: {body[:_BODY_EXCERPT_CHARS]!r}")
    if status >= 400 or not isinstance(parsed, dict) or "choices" not in parsed:
        return failed(f"HTTP {status}: {_error_message(parsed)}")
    usage = parsed.get("usage") or {}
    try:
        text = parsed["choices"][0]["message"]["content"]
    except (IndexError, KeyError, TypeError):
        return failed(f"HTTP {status}: no choices[0].message.content in {body[:_BODY_EXCERPT_CHARS]!r}")
    return {
        "text": text,
        "error": None,
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "top_logprobs": _top_logprobs(parsed["choices"][0].get("logprobs")),
    }


def _top_logprobs(logprobs: Any) -> str | None:
    """OpenAI's `choices[0].logprobs.content[].top_logprobs` as [{token: logprob}] JSON; None if absent."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    positions = []
    for position in content:
        tokens: dict[str, float] = {}
        for candidate in position.get("top_logprobs") or [{"token": position.get("token"), "logprob": position.get("logprob")}]:
            if candidate.get("token") is not None and candidate.get("logprob") is not None:
                tokens[candidate["token"]] = max(tokens.get(candidate["token"], float("-inf")), float(candidate["logprob"]))
        positions.append(tokens)
    return json.dumps(positions, ensure_ascii=False)


def _error_message(parsed: Any) -> str:
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if parsed.get("message"):
            return str(parsed["message"])
    return json.dumps(parsed)[:_BODY_EXCERPT_CHARS]
