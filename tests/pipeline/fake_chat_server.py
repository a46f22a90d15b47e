"""A tiny OpenAI-compatible chat server on 127.0.0.1 that can vanish mid-run, for fault tests.

Its reply to a request is a function of the request's messages only, so two runs that ask the
same questions get the same answers. After `answer_limit` replies it closes its socket: later
requests see "connection refused", as when a model server dies. (The real-vLLM-server version
of this fault is in test_openai_engine.py.)
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def instructions_reply(messages: list[dict]) -> str:
    """Two synthesize-shaped instructions named after a digest of the prompt."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:10]
    return json.dumps(
        {
            "instructions": [
                f"Explain what the section tagged {digest} teaches, with one example.",
                f"List three facts a reader should remember from part {digest}.",
            ]
        }
    )


def schema_reply(body: dict) -> str:
    """A reply that fits the request's JSON schema (response_format), else a plain answer; every
    string a request-shaped sentence named after the prompt's digest, every integer near the top
    of its range. Lets a whole recipe run fast and reproducibly (the cluster-equality test)."""
    digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
    verdict = judge_reply(body["messages"][-1]["content"])
    if verdict is not None:
        return verdict
    if schema is None:
        return (
            f"The passage explains the idea {digest[:8]} clearly. First, it defines the main term and shows "
            "where it is used in practice. Second, it gives an example that a reader can run or check by hand. "
            f"Third, it warns about a common mistake and how to avoid it. In short, {digest[8:16]} is best "
            f"understood by trying the example.\n\nThe final answer is \\boxed{{{int(digest[:4], 16) % 97}}}."
        )
    return json.dumps(_fill(schema, digest))


# How the critique's one-token templates end (prompts/critique/*.j2), and a content judge's reply.
JUDGE_REPLIES = {"Reply Yes or No.": "Yes", "Reply with the digit only.": "5", "Reply with one letter: A, B or C.": "A"}


def judge_reply(user: str) -> str | None:
    """The one-token reply a critique question gets from a judge content with everything; None for other prompts."""
    return next((reply for ending, reply in JUDGE_REPLIES.items() if user.rstrip().endswith(ending)), None)


def top_logprobs(text: str) -> dict:
    """OpenAI's `logprobs` of a reply whose first word the fake is sure of (probability 1)."""
    first = (text.split() or [""])[0]
    return {"content": [{"token": first, "logprob": 0.0, "top_logprobs": [{"token": first, "logprob": 0.0}]}]}


def _fill(schema: dict, seed: str):
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _fill(sub, hashlib.sha256((seed + name).encode()).hexdigest()) for name, sub in properties.items()}
    if kind == "array":
        count = max(schema.get("minItems", 0), min(schema.get("maxItems", 2), 2))
        # An item i past `prefixItems` takes `items`; within them, its own schema.
        shapes = [*schema.get("prefixItems", []), *[schema.get("items") or {}] * count][:count]
        return [_fill(shape, hashlib.sha256(f"{seed}{index}".encode()).hexdigest()) for index, shape in enumerate(shapes)]
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", 0), schema.get("maximum", 10)
        return max(low, high - 1)
    if kind == "boolean":
        return True
    text = f"Explain the idea {seed[:8]} and how it connects to {seed[8:16]}, with one worked example?"
    return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "?")


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops the SYNs of a client's 64 concurrent requests, which then
    # wait a whole TCP retransmit (1 s, 2 s, ...) each: a fake server must not be the bottleneck.
    request_queue_size = 256
    daemon_threads = True


class FakeChatServer:
    def __init__(self, answer_limit: int | None = None, reply=None) -> None:
        self.answer_limit = answer_limit
        self.reply = reply or (lambda body: instructions_reply(body["messages"]))
        self.answered = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket, so new connections are refused."""
        self._server.shutdown()
        self._server.server_close()

    def _count_answer(self) -> bool:
        """Whether this request gets an answer; the one after the limit takes the server down."""
        with self._lock:
            if self.answer_limit is not None and self.answered >= self.answer_limit:
                return False
            self.answered += 1
            return True

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # requests are counted, not logged
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not server._count_answer():
                    threading.Thread(target=server.stop, daemon=True).start()
                    self.connection.close()  # a dying server answers nothing
                    return
                text = server.reply(body)
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if body.get("logprobs"):
                    choice["logprobs"] = top_logprobs(text)
                reply = {"id": "fake", "object": "chat.completion", "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 20}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
