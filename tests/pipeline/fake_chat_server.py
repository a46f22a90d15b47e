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
                {"instruction": f"Explain what the section tagged {digest} teaches, with one example.", "type": "open"},
                {"instruction": f"List three facts a reader should remember from part {digest}.", "type": "factual"},
            ]
        }
    )


class FakeChatServer:
    def __init__(self, answer_limit: int | None = None) -> None:
        self.answer_limit = answer_limit
        self.answered = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
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
                reply = {
                    "id": "fake",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": instructions_reply(body["messages"])}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 20},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
