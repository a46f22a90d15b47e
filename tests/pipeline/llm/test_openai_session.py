"""The OpenAI client session under Ray's HTTP stage: retries, timeouts and error bodies become row errors."""

import asyncio
import json

from aiohttp import web

from synthmix.pipeline.llm.openai_session import OpenAIChatSession, read_completion

COMPLETION = {
    "choices": [{"message": {"role": "assistant", "content": "hello"}}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 1},
}


def run_against(handler, *, max_retries=2, timeout_s=5.0, payload=None):
    """Start `handler` on 127.0.0.1, post one request through the session, return (result, requests seen)."""
    seen = []

    async def recorded(request):
        seen.append(await request.json())
        return await handler(request, len(seen))

    async def scenario():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", recorded)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            body = json.dumps(payload or {"model": "m", "messages": [], "stop": [], "synthmix_schema": ""})
            async with OpenAIChatSession(timeout_s=timeout_s, max_retries=max_retries, backoff_s=0.01, send_json_schema=True) as session:
                async with await session.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={}, data=body) as response:
                    assert response.status == 200
                    return await response.json()
        finally:
            await runner.cleanup()

    return asyncio.run(scenario()), seen


def test_success_returns_text_and_token_counts():
    async def ok(request, count):
        return web.json_response(COMPLETION)

    result, _ = run_against(ok)
    assert result == {"text": "hello", "error": None, "prompt_tokens": 7, "completion_tokens": 1, "top_logprobs": None}


def test_server_errors_are_retried_until_success():
    async def flaky(request, count):
        return web.json_response(COMPLETION) if count == 3 else web.Response(status=503, text="overloaded")

    result, seen = run_against(flaky, max_retries=2)
    assert result["text"] == "hello" and len(seen) == 3


def test_exhausted_retries_become_a_row_error_naming_the_last_failure():
    async def down(request, count):
        return web.Response(status=500, text="boom")

    result, seen = run_against(down, max_retries=2)
    assert len(seen) == 3
    assert result["text"] is None
    assert "gave up after 3 tries; last: HTTP 500: boom" in result["error"]


def test_timeout_becomes_a_row_error():
    async def slow(request, count):
        await asyncio.sleep(2)
        return web.json_response(COMPLETION)

    result, seen = run_against(slow, max_retries=1, timeout_s=0.2)
    assert len(seen) == 2
    assert "gave up after 2 tries; last: TimeoutError" in result["error"]


def test_client_error_body_is_not_retried_and_its_message_kept():
    async def too_long(request, count):
        return web.json_response({"error": {"message": "maximum context length is 2048 tokens"}}, status=400)

    result, seen = run_against(too_long)
    assert len(seen) == 1
    assert result["error"] == "HTTP 400: maximum context length is 2048 tokens"


def test_row_schema_becomes_response_format_and_placeholders_are_dropped():
    async def ok(request, count):
        return web.json_response(COMPLETION)

    schema = {"type": "object"}
    _, seen = run_against(ok, payload={"model": "m", "messages": [], "stop": [], "synthmix_schema": json.dumps(schema)})
    assert seen[0]["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert "seed" not in seen[0] and "stop" not in seen[0] and "synthmix_schema" not in seen[0]


def test_non_json_body_is_a_row_error():
    assert read_completion(200, "<html>gateway</html>")["error"].startswith("HTTP 200: response is not JSON")


def test_a_request_marked_unsent_never_reaches_the_server_and_fails_with_its_reason():
    async def ok(request, count):
        return web.json_response(COMPLETION)

    reason = "the prompt has 9000 tokens; model 'api' takes at most 2047"
    payload = {"model": "m", "messages": [], "stop": [], "synthmix_schema": "", "synthmix_unsent": reason}
    result, seen = run_against(ok, payload=payload)
    assert seen == [] and result == {"text": None, "error": reason, "prompt_tokens": 0, "completion_tokens": 0, "top_logprobs": None}
    _, seen = run_against(ok, payload={**payload, "synthmix_unsent": ""})
    assert len(seen) == 1 and "synthmix_unsent" not in seen[0]
