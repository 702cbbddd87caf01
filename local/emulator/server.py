"""The HTTP server: stdlib ThreadingHTTPServer on loopback, HTTP/1.1 keep-alive, one handler for everything.

Every answer carries `x-request-id` (and `x-server-trace-id`); errors are google.rpc.Status JSON with the HTTP
status of their gRPC code. Faults (latency, 429/503, dropped connections) are drawn per request from the
state's seeded RNG before the request is processed; /_emulator/ control calls are never faulted nor logged.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.emulator.api import dispatch
from local.emulator.config import EmulatorConfig
from local.emulator.control import PREFIX, dispatch_control
from local.emulator.errors import INTERNAL, RESOURCE_EXHAUSTED, UNAVAILABLE, ApiError, invalid, status_body
from local.emulator.gateway import Request, Result
from local.emulator.records import rfc3339
from local.emulator.seed import DEMO_TOKEN
from local.emulator.state import EmulatorState

MAX_BODY = 4 * 1024 * 1024


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the listen backlog (default 5 resets bursts of new connections)

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        super().__init__(address, EmulatorRequestHandler)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "yc-emulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: EmulatorServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.state.config.verbose:
            sys.stderr.write(f"emulator: {self.address_string()} {format % args}\n")

    # --- plumbing ---------------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                size = int(size_line, 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: dict[str, Any], request_id: str, headers: dict[str, str]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", request_id)
            self.send_header("x-server-trace-id", uuid.uuid4().hex)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) before the answer
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without an answer (the client sees the remote end disconnect)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _run(fn: Any, state: EmulatorState, req: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            result: Result = fn(state, req)
            return result[0], result[1], {}
        except ApiError as exc:
            return exc.http_status, exc.body(req.request_id), exc.headers
        except Exception as exc:  # a bug in the emulator: answer INTERNAL, say so on stderr
            traceback.print_exc()
            return 500, status_body(INTERNAL, f"emulator internal error: {exc!r}", req.request_id), {}

    def _handle(self) -> None:
        state = self.server.state
        request_id = str(uuid.uuid4())
        started = state.now()
        split = urlsplit(self.path)
        path = unquote(split.path)
        try:
            body = self._read_body()
        except (ValueError, OSError) as exc:
            self.close_connection = True
            self._send(400, invalid(f"unreadable request body: {exc}").body(request_id), request_id, {})
            return
        req = Request(
            method=self.command,
            path=path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            request_id=request_id,
        )
        if path == PREFIX or path.startswith(PREFIX + "/"):
            status, payload, extra = self._run(dispatch_control, state, req)
            self._send(status, payload, request_id, extra)
            return

        decision = state.draw_fault(self.command, path)
        if decision.latency > 0:
            time.sleep(decision.latency)
        entry: dict[str, Any] = {
            "time": started,
            "at": rfc3339(started),
            "method": self.command,
            "path": path,
            "query": split.query,
            "requestId": request_id,
            "clientRequestId": req.headers.get("x-client-request-id", ""),
            "idempotencyKey": req.headers.get("idempotency-key", ""),
            "fault": decision.action,
        }
        if decision.action == "drop":
            entry.update(status=0, code=None)
            state.log_call(entry)
            self._drop()
            return
        if decision.action in ("429", "503"):
            code = RESOURCE_EXHAUSTED if decision.action == "429" else UNAVAILABLE
            message = "The request limit exceeded" if code == RESOURCE_EXHAUSTED else "Try again in a few seconds"
            fault_headers: dict[str, str] = {}
            if decision.retry_after is not None:
                fault_headers["Retry-After"] = str(max(0, math.ceil(decision.retry_after)))
            entry.update(status=int(decision.action), code=code)
            state.log_call(entry)
            self._send(int(decision.action), status_body(code, message, request_id), request_id, fault_headers)
            return

        status, payload, extra = self._run(dispatch, state, req)
        entry.update(status=status, code=payload.get("code") if status >= 400 else 0)
        state.log_call(entry)
        if decision.action == "drop_response":
            self._drop()
            return
        self._send(status, payload, request_id, extra)


@dataclass
class EmulatorHandle:
    """A running emulator: `url` for YC_API_ENDPOINT, `token` (the demo token), `state`, `stop()`."""

    server: EmulatorServer
    thread: threading.Thread
    state: EmulatorState
    config: EmulatorConfig

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        """A static IAM token of the demo user (editor of the demo folder); "" when started without the demo."""
        return DEMO_TOKEN if DEMO_TOKEN in self.state.tokens else ""

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(config: EmulatorConfig | None = None) -> EmulatorHandle:
    """Start the emulator in a daemon thread and return once it accepts connections."""
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    server = EmulatorServer((config.host, config.port), state)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="yc-emulator", daemon=True
    )
    thread.start()
    return EmulatorHandle(server=server, thread=thread, state=state, config=config)
