"""A loopback HTTP receiver for the tests: stands in for a result webhook or a Slack response_url."""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every POST. Answers the scripted `answers` (status, JSON body[, extra headers]) first, then the
    scripted `statuses`, then `always` if set, else `status` (200); the body is `default_answer` as JSON when set,
    else ok/nope."""

    def __init__(self, default_answer: Any = None) -> None:
        self.requests: list[Received] = []
        self.answers: list[tuple[Any, ...]] = []
        self.statuses: list[int] = []
        self.always: int | None = None
        self.status = 200
        self.default_answer = default_answer
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with owner._lock:
                    owner.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status, answer, *extra = owner._answer()
                payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                if not isinstance(answer, bytes):
                    self.send_header("Content-Type", "application/json")
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _answer(self) -> tuple[Any, ...]:
        if self.answers:
            return self.answers.pop(0)
        status = self.always or (self.statuses.pop(0) if self.statuses else self.status)
        if self.default_answer is not None:
            return status, self.default_answer
        return status, b"ok" if status == 200 else b"nope"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
