"""`make serve`: the function's HTTP routes on 127.0.0.1, over the local platform of `make run`.

    python -m local.serve [--port 8720] [--scenario ok|fail|slow] [--shape v2|v1]

Like `sam local start-api`: a real HTTP server turns each request into an API Gateway proxy event (HTTP API v2 by
default, `--shape v1` for the REST / Yandex API Gateway v1 proxy shape) and calls `app.trigger_handler`; its reply
goes back as the HTTP response. Behind it runs what `make run` plays: the Yandex Cloud emulator (a nominal
10-minute backup takes ten seconds), local queues, and the follow-up invocations as their delays come due (a
background thread). Invocations are serialised, one at a time, like one function instance.

On stdout it prints shell lines to `eval` (everything else goes to stderr):

    export BACKUP_GATE_URL=http://127.0.0.1:8720
    export BACKUP_GATE_SECRET=...   (WEBHOOK_SECRET from the environment, else a new one)
    export YC_API_ENDPOINT=... YC_IAM_TOKEN=... FOLDER_ID=...   (the emulator, for yc-style tools and tests)

It stops on Ctrl-C, SIGTERM, or when its parent process (`make`) ends. `--scenario fail`: every backup fails at
60%; `slow`: every backup lasts 30 times longer (five minutes), to see a short gate `--timeout` pass first.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import shlex
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY_BYTES = 1 << 20  # the front's own limit (API Gateways allow more; the function refuses over 64 KiB)
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection"}


def _log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# --- request -> event, reply -> response ----------------------------------------------------------------------


def http_event(
    shape: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes, client_ip: str
) -> dict[str, Any]:
    """The API Gateway proxy event for one request: HTTP API v2 ("v2") or the REST v1 proxy ("v1")."""
    path, _, query_string = target.partition("?")  # not urlsplit: a target "//x" is a path, not a host
    path = path or "/"
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    encoded = base64.b64encode(body).decode("ascii")
    query = parse_qsl(query_string, keep_blank_values=True)
    if shape == "v2":
        params: dict[str, str] = {}
        for key, value in query:  # HTTP API joins repeated parameters with commas too
            params[key] = f"{params[key]},{value}" if key in params else value
        joined: dict[str, str] = {}
        for name, value in headers:  # HTTP API lower-cases names and joins repeated headers with commas
            key = name.lower()
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query_string,
            "headers": joined,
            **({"queryStringParameters": params} if params else {}),
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": "127.0.0.1",
                "domainPrefix": "local",
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": client_ip,
                    "userAgent": joined.get("user-agent", ""),
                },
                "requestId": request_id,
                "routeKey": "$default",
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "body": encoded,
            "isBase64Encoded": True,
        }
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": {k: [v for q, v in query if q == k] for k, _ in query} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "stage": "local",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": path,
            "requestId": request_id,
            "identity": {"sourceIp": client_ip},
        },
        "body": encoded,
        "isBase64Encoded": True,
    }


def response_of(reply: Any) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a handler's proxy reply; anything else is the front's own 502."""
    if not isinstance(reply, dict) or not isinstance(reply.get("statusCode"), int):
        return 502, {"Content-Type": "application/json"}, b'{"error": {"code": "BAD_GATEWAY", "message": "no reply"}}'
    headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items() if str(k).lower() not in HOP_HEADERS}
    body = reply.get("body") or ""
    data = base64.b64decode(body) if reply.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(reply["statusCode"]), headers, data


# --- the server ---------------------------------------------------------------------------------------------


class Front(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, invoke: Any, shape: str = "v2") -> None:
        self.invoke, self.shape = invoke, shape
        super().__init__(("127.0.0.1", port), FrontHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "yc-backup-runner-local"
    sys_version = ""
    timeout = 60
    server: Front

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request below, without query strings or headers

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        started = time.monotonic()
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            return self._send(
                411,
                {"Content-Type": "application/json"},
                b'{"error": {"code": "LENGTH_REQUIRED", "message": "send Content-Length"}}',
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            message = b'{"error": {"code": "PAYLOAD_TOO_LARGE", "message": "at most 1 MiB"}}'
            return self._send(413 if length > 0 else 400, {"Content-Type": "application/json"}, message)
        body = self.rfile.read(length) if length else b""
        event = http_event(
            self.server.shape, self.command, self.path, list(self.headers.items()), body, self.client_address[0]
        )
        status, headers, data = response_of(self.server.invoke(event))
        self._send(status, headers, data)
        path = "".join(c if c.isprintable() else "?" for c in self.path.partition("?")[0][:120])
        _log(f"http       {self.command} {path} -> {status} ({(time.monotonic() - started) * 1000:.0f} ms)")


# --- the platform behind it ------------------------------------------------------------------------------------


class Serving:
    """The local platform, the function, and the thread that plays its queues; invocations one at a time."""

    def __init__(self, *, scenario: str = "ok", time_scale: float = 60.0, backup_minutes: float = 10.0) -> None:
        from local.runtime import start_local

        os.environ.setdefault("SLACK_SIGNING_SECRET", secrets.token_hex(16))
        self.setup = start_local(
            scenario=scenario, time_scale=time_scale, backup_minutes=backup_minutes, platform_kind="aws", say=_log
        )
        from local.emulator.seed import DEMO_FOLDER_ID

        os.environ.setdefault("CHAT_ALLOWED_FOLDERS", DEMO_FOLDER_ID)
        import app

        self.app = app
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._play, name="local-platform", daemon=True)
        self.thread.start()

    def invoke(self, event: dict[str, Any]) -> Any:
        from local.platform import LocalContext

        with self.lock:
            return self.app.trigger_handler(event, LocalContext("trigger"))

    def _play(self) -> None:
        from local.runtime import pump

        while not self.stopping.wait(0.3):
            try:
                with self.lock:
                    _, results = pump(self.setup.local, self.app.trigger_handler, self.app.followup_handler)
            except Exception as exc:  # the queue server went away while stopping, or a bug: say it, go on
                if self.stopping.is_set():
                    return
                _log(f"platform   {type(exc).__name__}: {exc}")
                continue
            for result in results:
                data = result.get("data", {}) if isinstance(result, dict) else {}
                error = data.get("error") or {}
                _log(
                    f"result     {data.get('status')} {data.get('operationId') or data.get('target')} on "
                    f"{data.get('computeInstanceId')} {error.get('code', '')} {error.get('message', '')}".rstrip()
                )

    def exports(self, url: str) -> list[str]:
        env = {
            "BACKUP_GATE_URL": url,
            "BACKUP_GATE_SECRET": self.setup.secret,
            "YC_API_ENDPOINT": os.environ.get("YC_API_ENDPOINT", ""),
            "YC_IAM_TOKEN": os.environ.get("YC_IAM_TOKEN", ""),
            "FOLDER_ID": os.environ.get("FOLDER_ID", ""),
            "SLACK_SIGNING_SECRET": os.environ["SLACK_SIGNING_SECRET"],
        }
        return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.setup.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8720, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--scenario", choices=("ok", "fail", "slow"), default="ok")
    parser.add_argument("--shape", choices=("v2", "v1"), default="v2", help="API Gateway event shape")
    parser.add_argument("--time-scale", type=float, default=60.0, help="emulator speed-up (60: a minute a second)")
    parser.add_argument("--backup-minutes", type=float, default=10.0, help="nominal backup duration")
    args = parser.parse_args(argv)

    serving = Serving(scenario=args.scenario, time_scale=args.time_scale, backup_minutes=args.backup_minutes)
    try:
        front = Front(args.port, serving.invoke, args.shape)
    except OSError as exc:
        serving.stop()
        _log(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror} (another make serve? try --port)")
        return 2
    _log(f"front      {front.url}  POST /backup, GET /backup/{{operationId}}, POST /slack  ({args.scenario})")
    for line in serving.exports(front.url):
        print(line, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=front.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    parent = os.getppid()
    with contextlib.suppress(KeyboardInterrupt):
        # Also stop when the parent goes away: `kill %1` on a `make serve &` job ends make, not always its child.
        while not stop.wait(0.5) and os.getppid() == parent:
            pass
    front.shutdown()
    front.server_close()
    serving.stop()
    _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
