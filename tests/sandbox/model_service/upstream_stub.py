"""A tiny OpenAI-compatible upstream for proxy-mode tests: echoes the last message, streams on request.

Like vLLM it returns token ids when asked (``return_token_ids``) and logprobs (``logprobs``, with
``return_tokens_as_token_ids`` as ``token_id:N``). Its tokenizer is bytes: a chat prompt is
``<role>content</role>`` per message then ``<assistant>``, and the sampled tokens are the answer's
bytes then ``</assistant>``, so a next turn's prompt extends the last prompt and completion exactly.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.sandbox.model_service import upstream_dialects


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        auth = self.headers.get("authorization") or self.headers.get("x-api-key")
        self.server.seen.append({"path": self.path, "auth": auth, "body": body})
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
        for suffix, whole, events in (
            ("/responses", upstream_dialects.responses, upstream_dialects.responses_events),
            ("/messages", upstream_dialects.messages, upstream_dialects.messages_events),
        ):
            if self.path.endswith(suffix):
                done = whole(body)
                if not body.get("stream"):
                    return self._json(200, done)
                self._start_stream()
                for kind, data in events(done):
                    self.wfile.write(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode())
                self.wfile.flush()
                return None
        chat = self.path.endswith("/chat/completions")
        if chat and body.get("tools") and body["messages"][-1]["role"] != "tool":
            return self._tool_call(body)
        text = "upstream: " + (body["messages"][-1]["content"] if chat else body["prompt"])
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        prompt_ids = list(render(body["messages"]).encode()) if chat else list(body["prompt"].encode())
        sampled = list((text + ("</assistant>" if chat else "")).encode())
        if not body.get("stream"):
            choice = {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": _logprobs(body, sampled, chat),
                **({"message": {"role": "assistant", "content": text}} if chat else {"text": text}),
            }
            out = {
                "id": "up-1",
                "object": "chat.completion" if chat else "text_completion",
                "created": 1,
                "model": body["model"],
                "choices": [choice],
                "usage": usage,
            }
            if body.get("return_token_ids"):
                choice["token_ids"] = sampled
                (out if chat else choice)["prompt_token_ids"] = prompt_ids
            return self._json(200, out)
        self._start_stream()
        kind = "chat.completion.chunk" if chat else "text_completion"
        for i in range(0, len(sampled), 4):
            piece_ids = sampled[i : i + 4]
            piece = bytes(piece_ids).decode()[: max(0, len(text) - i)]
            choice = {"index": 0, "finish_reason": None, **({"delta": {"content": piece}} if chat else {"text": piece})}
            choice["logprobs"] = _logprobs(body, piece_ids, chat, start=i)
            event = {"id": "up-2", "object": kind, "created": 1, "model": body["model"], "choices": [choice]}
            if body.get("return_token_ids"):
                choice["token_ids"] = piece_ids
                if i == 0:
                    (event if chat else choice)["prompt_token_ids"] = prompt_ids
            self._event(event)
        done = {"index": 0, "finish_reason": "stop", **({"delta": {}} if chat else {"text": ""})}
        self._event({"id": "up-2", "object": kind, "created": 1, "model": body["model"], "choices": [done]})
        self._event({"id": "up-2", "object": kind, "created": 1, "model": body["model"], "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _tool_call(self, body: dict[str, Any]) -> None:
        fn = {"name": body["tools"][0]["function"]["name"], "arguments": '{"dir": "up"}'}
        call = {"id": "call_up", "type": "function", "function": fn}
        head = {"id": "up-3", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}
            return self._json(200, {**head, "object": "chat.completion", "choices": [choice]})
        self._start_stream()
        for delta, finish in (({"role": "assistant", "tool_calls": [{"index": 0, **call}]}, None), ({}, "tool_calls")):
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            self._event({**head, "object": "chat.completion.chunk", "choices": [choice]})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()

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


def render(messages: list[dict[str, Any]]) -> str:
    """The stub's chat template."""
    return "".join(f"<{m['role']}>{m.get('content') or ''}</{m['role']}>" for m in messages) + "<assistant>"


def logprob(position: int) -> float:
    """The logprob the stub gives the token at ``position`` of its answer."""
    return -0.125 * (position % 5 + 1)


def _logprobs(body: dict[str, Any], ids: list[int], chat: bool, start: int = 0) -> Any:
    if body.get("logprobs") in (None, False):
        return None
    as_ids = body.get("return_tokens_as_token_ids")
    names = [f"token_id:{t}" if as_ids else chr(t) for t in ids]
    values = [logprob(start + i) for i in range(len(ids))]
    if chat:
        return {
            "content": [
                {"token": n, "logprob": v, "bytes": [t], "top_logprobs": []} for n, v, t in zip(names, values, ids)
            ]
        }
    return {"tokens": names, "token_logprobs": values, "top_logprobs": None, "text_offset": None}


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
