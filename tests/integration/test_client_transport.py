"""Transport behaviour over real HTTP, against a throwaway scriptable server on 127.0.0.1.

Sleeps are recorded instead of slept where only their length matters; the deadline tests also run on the
real clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from ycloud.errors import CloudError
from ycloud.transport import RetryPolicy, Transport

# --- the throwaway server ----------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> as is; None -> {}
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


Responder = Reply | Callable[[Seen], Reply]


class FakeCloud:
    """Answers scripted replies per (method, path), then `default`; records every request."""

    def __init__(self) -> None:
        self.scripts: dict[tuple[str, str], deque[Responder]] = defaultdict(deque)
        self.routes: dict[tuple[str, str], Callable[[Seen], Reply]] = {}
        self.seen: list[Seen] = []
        self.url = ""
        self._lock = threading.Lock()

    def script(self, method: str, path: str, *replies: Responder) -> None:
        self.scripts[(method, path)].extend(replies)

    def route(self, method: str, path: str, handler: Callable[[Seen], Reply]) -> None:
        self.routes[(method, path)] = handler

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            queue = self.scripts.get((seen.method, seen.path))
            responder: Responder | None = queue.popleft() if queue else self.routes.get((seen.method, seen.path))
        if responder is None:
            return Reply(404, {"code": 5, "message": f"no route {seen.method} {seen.path}"})
        return responder(seen) if callable(responder) else responder


def _handler(cloud: FakeCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the pooled session expects

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            seen = Seen(
                self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body
            )
            reply = cloud.answer(seen)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            payload = reply.body if reply.body is not None else {}
            data = (
                payload
                if isinstance(payload, bytes)
                else (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            )
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is part of the tests


@contextlib.contextmanager
def serve_fake_cloud() -> Iterator[FakeCloud]:
    """The server on a free loopback port, for as long as the block runs (other test modules reuse it)."""
    fake = FakeCloud()
    server = _QuietServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def cloud() -> Iterator[FakeCloud]:
    with serve_fake_cloud() as fake:
        yield fake


# --- helpers -----------------------------------------------------------------------------------------


class Sleeps(list[float]):
    """A sleep that only records: retries are instant, their lengths checkable."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeTokens:
    """A refreshable provider handing out t1, t2, ...; records invalidations."""

    name = "fake"
    refreshable = True

    def __init__(self, refreshable: bool = True) -> None:
        self.refreshable = refreshable
        self.n = 1
        self.invalidated: list[str] = []

    def token(self) -> SecretStr:
        return SecretStr(f"t{self.n}")

    def invalidate(self, used: SecretStr) -> None:
        self.invalidated.append(used.get_secret_value())
        self.n += 1


def transport(sleeps: Sleeps | None = None, **kwargs: Any) -> Transport:
    kwargs.setdefault("retry", RetryPolicy(max_retries=3, backoff_base=0.1, backoff_cap=1.0))
    kwargs.setdefault("connect_timeout", 1.0)
    kwargs.setdefault("read_timeout", 2.0)
    return Transport(sleep=sleeps if sleeps is not None else Sleeps(), **kwargs)


def busy(status: int = 503, **headers: str) -> Reply:
    return Reply(status, {"code": 14 if status != 429 else 8, "message": "try again"}, headers=headers)


# --- retries -----------------------------------------------------------------------------------------


def test_get_is_retried_on_429_and_503_then_succeeds(cloud: FakeCloud) -> None:
    # Given a GET answered 429, then 503, then 200
    cloud.script("GET", "/x", busy(429), busy(503), Reply(200, {"ok": True}))
    sleeps = Sleeps()
    t = transport(sleeps)
    # When it is called once
    body = t.request("GET", cloud.url + "/x")
    # Then it succeeded on the third attempt, after two backoffs, as one call
    assert body == {"ok": True}
    assert len(cloud.requests_to("/x")) == 3
    assert (t.calls, t.attempts) == (1, 3)
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_transient_statuses_are_retried(cloud: FakeCloud, status: int) -> None:
    cloud.script("GET", "/x", Reply(status, "<html>proxy</html>"), Reply(200, {}))
    t = transport()
    assert t.request("GET", cloud.url + "/x") == {}
    assert t.attempts == 2


def test_permanent_errors_are_not_retried(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", Reply(400, {"code": 9, "message": "policy is not applied"}), Reply(200, {}))
    t = transport()
    with pytest.raises(CloudError) as info:
        t.request("GET", cloud.url + "/x")
    assert info.value.name == "FAILED_PRECONDITION" and info.value.http_status == 400
    assert len(cloud.requests_to("/x")) == 1


def test_retries_stop_after_max_retries_with_the_last_error(cloud: FakeCloud) -> None:
    cloud.route("GET", "/x", lambda s: busy(503))
    t = transport(retry=RetryPolicy(max_retries=2, backoff_base=0.01))
    with pytest.raises(CloudError) as info:
        t.request("GET", cloud.url + "/x")
    assert info.value.name == "UNAVAILABLE" and info.value.http_status == 503
    assert len(cloud.requests_to("/x")) == 3


def test_backoff_grows_exponentially_with_jitter() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=3.0, jitter=0.5)
    for retry, nominal in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (6, 3.0)]:
        delays = [policy.backoff(retry) for _ in range(200)]
        assert all(nominal * 0.5 <= d < nominal * 1.5 for d in delays)
        assert len({round(d, 6) for d in delays}) > 1  # jittered


def test_retry_after_seconds_is_honoured(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", busy(429, **{"Retry-After": "3"}), Reply(200, {}))
    sleeps = Sleeps()
    transport(sleeps).request("GET", cloud.url + "/x")
    assert sleeps == [3.0]


def test_retry_after_http_date_is_honoured(cloud: FakeCloud) -> None:
    from email.utils import formatdate

    cloud.script("GET", "/x", busy(503, **{"Retry-After": formatdate(time.time() + 5, usegmt=True)}), Reply(200, {}))
    sleeps = Sleeps()
    transport(sleeps).request("GET", cloud.url + "/x")
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 5.0


def test_post_without_idempotency_key_is_not_retried(cloud: FakeCloud) -> None:
    # Given a POST that meets a 503 (the server may or may not have acted on it)
    cloud.script("POST", "/p:execute", busy(503), Reply(200, {"id": "op1"}))
    t = transport()
    # When it is sent without an Idempotency-Key
    with pytest.raises(CloudError) as info:
        t.request("POST", cloud.url + "/p:execute", json_body={"computeInstanceId": "i1"})
    # Then it is tried once only
    assert info.value.http_status == 503
    assert len(cloud.requests_to("/p:execute")) == 1


def test_post_with_idempotency_key_is_retried_with_the_same_key(cloud: FakeCloud) -> None:
    cloud.script("POST", "/p:execute", busy(503), busy(429), Reply(200, {"id": "op1"}))
    t = transport()
    body = t.request("POST", cloud.url + "/p:execute", json_body={"computeInstanceId": "i1"}, idempotency_key="k-1")
    assert body == {"id": "op1"}
    seen = cloud.requests_to("/p:execute")
    assert [s.headers.get("idempotency-key") for s in seen] == ["k-1"] * 3
    assert all(s.body == {"computeInstanceId": "i1"} for s in seen)


def test_dropped_connection_is_retried_then_succeeds(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", Reply(drop=True), Reply(drop=True), Reply(200, {"ok": 1}))
    t = transport()
    assert t.request("GET", cloud.url + "/x") == {"ok": 1}
    assert t.attempts == 3


def test_dropped_connection_every_time_is_unavailable_with_no_http_status(cloud: FakeCloud) -> None:
    cloud.route("GET", "/x", lambda s: Reply(drop=True))
    t = transport(retry=RetryPolicy(max_retries=2, backoff_base=0.01))
    with pytest.raises(CloudError) as info:
        t.request("GET", cloud.url + "/x")
    assert info.value.name == "UNAVAILABLE" and info.value.http_status == 0 and info.value.transient
    assert len(cloud.requests_to("/x")) == 3
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no requests/urllib3 exception attached


def test_dropped_connection_on_a_post_without_key_is_not_retried(cloud: FakeCloud) -> None:
    cloud.route("POST", "/p:apply", lambda s: Reply(drop=True))
    with pytest.raises(CloudError) as info:
        transport().request("POST", cloud.url + "/p:apply", json_body={})
    assert info.value.name == "UNAVAILABLE"
    assert len(cloud.requests_to("/p:apply")) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_unavailable_and_retried_even_for_a_post() -> None:
    # Refused means the request never left: retrying cannot run it twice.
    sleeps = Sleeps()
    t = transport(sleeps, retry=RetryPolicy(max_retries=2, backoff_base=0.01))
    with pytest.raises(CloudError) as info:
        t.request("POST", f"http://127.0.0.1:{_closed_port()}/p:execute", json_body={})
    assert info.value.name == "UNAVAILABLE" and info.value.http_status == 0
    assert t.attempts == 3 and len(sleeps) == 2


def test_read_timeout_is_deadline_exceeded(cloud: FakeCloud) -> None:
    cloud.route("GET", "/slow", lambda s: Reply(200, {}, delay=1.0))
    t = transport(read_timeout=0.2, retry=RetryPolicy(max_retries=0))
    with pytest.raises(CloudError) as info:
        t.request("GET", cloud.url + "/slow")
    assert info.value.name == "DEADLINE_EXCEEDED" and info.value.http_status == 0


# --- the deadline --------------------------------------------------------------------------------------


def test_retry_after_longer_than_the_time_left_stops_retrying_at_once(cloud: FakeCloud) -> None:
    # Given 4 s left and a server asking to come back in 30 s
    cloud.route("GET", "/x", lambda s: busy(503, **{"Retry-After": "30"}))
    sleeps = Sleeps()
    t = transport(sleeps, remaining_time=lambda: 4.0)
    # Then the first answer is final: no sleep past the deadline
    with pytest.raises(CloudError) as info:
        t.request("GET", cloud.url + "/x")
    assert info.value.http_status == 503
    assert sleeps == [] and len(cloud.requests_to("/x")) == 1


def test_backoff_stops_early_when_the_budget_runs_out(cloud: FakeCloud) -> None:
    # Given a clock that only moves when the transport sleeps, and 1.6 s of budget
    cloud.route("GET", "/x", lambda s: busy(503))
    sleeps = Sleeps()
    t = transport(
        sleeps,
        retry=RetryPolicy(max_retries=10, backoff_base=0.4, backoff_cap=10.0, jitter=0.0),
        remaining_time=lambda: 1.6 - sum(sleeps),
    )
    with pytest.raises(CloudError):
        t.request("GET", cloud.url + "/x")
    # Then it slept 0.4 and 0.8 (1.2 s), and did not take the 1.6 s backoff that would pass the deadline
    assert sleeps == pytest.approx([0.4, 0.8])
    assert t.attempts == 3 < 11


def test_deadline_bounds_real_elapsed_time(cloud: FakeCloud) -> None:
    cloud.route("GET", "/x", lambda s: busy(503))
    budget_end = time.monotonic() + 1.5
    t = Transport(
        retry=RetryPolicy(max_retries=20, backoff_base=0.2, jitter=0.0),
        remaining_time=lambda: budget_end - time.monotonic(),
    )
    started = time.monotonic()
    with pytest.raises(CloudError):
        t.request("GET", cloud.url + "/x")
    assert time.monotonic() - started < 1.5
    assert 2 <= t.attempts < 21


def test_no_time_left_is_deadline_exceeded_without_a_request(cloud: FakeCloud) -> None:
    t = transport(remaining_time=lambda: 0.1)
    with pytest.raises(CloudError) as info:
        t.request("GET", cloud.url + "/x")
    assert info.value.name == "DEADLINE_EXCEEDED" and info.value.http_status == 0
    assert cloud.seen == [] and t.attempts == 0


def test_the_read_timeout_is_cut_to_the_time_left(cloud: FakeCloud) -> None:
    cloud.route("GET", "/slow", lambda s: Reply(200, {}, delay=2.0))
    t = transport(read_timeout=10.0, remaining_time=lambda: 0.5, retry=RetryPolicy(max_retries=0))
    started = time.monotonic()
    with pytest.raises(CloudError) as info:
        t.request("GET", cloud.url + "/slow")
    assert info.value.name == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 1.5


# --- headers, request ids, auth ---------------------------------------------------------------------


def test_every_call_sends_a_uuid4_client_request_id_kept_across_retries(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", busy(503), Reply(200, {}))
    cloud.script("GET", "/y", Reply(200, {}))
    t = transport()
    t.request("GET", cloud.url + "/x")
    t.request("GET", cloud.url + "/y")
    ids = [s.headers["x-client-request-id"] for s in cloud.seen]
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert ids[0] == ids[1] != ids[2]


def test_the_response_request_id_is_kept_on_the_error(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", Reply(404, {"code": 5, "message": "Policy not found"}, headers={"x-request-id": "rid-7"}))
    with pytest.raises(CloudError) as info:
        transport().request("GET", cloud.url + "/x")
    err = info.value
    assert (err.name, err.http_status, err.message, err.request_id) == ("NOT_FOUND", 404, "Policy not found", "rid-7")
    assert err.client_request_id == cloud.seen[0].headers["x-client-request-id"]
    assert "rid-7" in str(err) and "GET /x" in str(err)


def test_request_id_and_status_are_logged_at_debug(cloud: FakeCloud, caplog_yc: list[logging.LogRecord]) -> None:
    cloud.script("GET", "/x", Reply(200, {}, headers={"x-request-id": "rid-9"}))
    transport().request("GET", cloud.url + "/x")
    records = [r for r in caplog_yc if getattr(r, "request_id", None) == "rid-9"]
    assert records and records[0].levelno == logging.DEBUG and getattr(records[0], "status", None) == 200


def test_bearer_token_is_sent(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", Reply(200, {}))
    transport(auth=FakeTokens()).request("GET", cloud.url + "/x")
    assert cloud.seen[0].headers["authorization"] == "Bearer t1"


def test_a_401_drops_the_token_and_retries_once_with_a_fresh_one(cloud: FakeCloud) -> None:
    cloud.route(
        "POST",
        "/p:execute",
        lambda s: Reply(200, {"id": "op"}) if s.headers["authorization"] == "Bearer t2" else Reply(401, {"code": 16}),
    )
    tokens = FakeTokens()
    t = transport(auth=tokens)
    # A POST without key: a 401 was refused before any work, so it may be re-sent
    assert t.request("POST", cloud.url + "/p:execute", json_body={}) == {"id": "op"}
    assert tokens.invalidated == ["t1"]
    assert (t.calls, t.attempts) == (1, 2)


def test_a_second_401_is_final(cloud: FakeCloud) -> None:
    cloud.route("GET", "/x", lambda s: Reply(401, {"code": 16, "message": "Token is invalid or has expired."}))
    tokens = FakeTokens()
    with pytest.raises(CloudError) as info:
        transport(auth=tokens).request("GET", cloud.url + "/x")
    assert info.value.name == "UNAUTHENTICATED" and not info.value.transient
    assert tokens.invalidated == ["t1"] and len(cloud.seen) == 2


def test_a_401_with_a_token_that_cannot_change_is_not_retried(cloud: FakeCloud) -> None:
    cloud.route("GET", "/x", lambda s: Reply(401, {"code": 16}))
    tokens = FakeTokens(refreshable=False)
    with pytest.raises(CloudError):
        transport(auth=tokens).request("GET", cloud.url + "/x")
    assert tokens.invalidated == [] and len(cloud.seen) == 1


def test_query_parameters_drop_none_and_spell_booleans(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", Reply(200, {}))
    transport().request("GET", cloud.url + "/x", params={"a": None, "b": True, "c": 5, "d": "x y"})
    assert cloud.seen[0].query == {"b": ["true"], "c": ["5"], "d": ["x y"]}


def test_a_malformed_200_body_is_a_cloud_error(cloud: FakeCloud) -> None:
    cloud.script("GET", "/x", Reply(200, "not json", headers={"x-request-id": "r1"}))
    cloud.script("GET", "/y", Reply(200, [1, 2]))
    t = transport()
    for path in ("/x", "/y"):
        with pytest.raises(CloudError) as info:
            t.request("GET", cloud.url + path)
        assert info.value.name == "UNKNOWN" and info.value.http_status == 200


def test_an_empty_200_body_is_an_empty_object(cloud: FakeCloud) -> None:
    cloud.script("POST", "/x", Reply(200, b""))
    assert transport().request("POST", cloud.url + "/x") == {}


def test_the_session_is_built_lazily_and_shared() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.path[:0] = ['function', '.']\n"
        "import ycloud.transport as t, ycloud.client\n"
        "assert t._session is None\n"
        "assert t.get_session() is t.get_session()\n"
        "assert 'jwt' not in sys.modules and 'cryptography' not in sys.modules, 'heavy import'\n"
        "assert 'aws_lambda_powertools' not in sys.modules, 'logger at import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- log capture for the tests above ------------------------------------------------------------------


@contextlib.contextmanager
def capture_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record of the project's logger, DEBUG included."""
    from observability import get_logger

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(get_logger().name)
    handler, level = Keep(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture()
def caplog_yc() -> Iterator[list[logging.LogRecord]]:
    with capture_logs() as records:
        yield records
