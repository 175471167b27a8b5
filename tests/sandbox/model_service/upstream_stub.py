"""A tiny OpenAI-compatible upstream for proxy-mode tests: echoes the last message, streams on request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
        if body.get("model") == "fail":
            return self._json(
                400,
                {
                    "error": {
                        "message": "upstream says no",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": None,
                    }
                },
            )
        chat = self.path.endswith("/chat/completions")
        text = "upstream: " + (body["messages"][-1]["content"] if chat else body["prompt"])
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        if not body.get("stream"):
            choice = {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                **({"message": {"role": "assistant", "content": text}} if chat else {"text": text}),
            }
            return self._json(
                200,
                {
                    "id": "up-1",
                    "object": "chat.completion" if chat else "text_completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [choice],
                    "usage": usage,
                },
            )
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        kind = "chat.completion.chunk" if chat else "text_completion"
        for i in range(0, len(text), 4):
            piece = text[i : i + 4]
            choice = {"index": 0, "finish_reason": None, **({"delta": {"content": piece}} if chat else {"text": piece})}
            self._event({"id": "up-2", "object": kind, "created": 1, "model": body["model"], "choices": [choice]})
        done = {"index": 0, "finish_reason": "stop", **({"delta": {}} if chat else {"text": ""})}
        self._event({"id": "up-2", "object": kind, "created": 1, "model": body["model"], "choices": [done]})
        self._event({"id": "up-2", "object": kind, "created": 1, "model": body["model"], "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, obj: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Upstream:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.seen = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.httpd.seen  # type: ignore[attr-defined,no-any-return]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
