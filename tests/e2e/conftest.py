"""The whole function on one machine: the Yandex Cloud emulator, a LocalPlatform on the moto SQS server, and helpers.

`e2e` (fixture) gives a `Harness`: a fresh emulator (a nominal 600 s backup lasts ~2.4 s), the requests /
follow-ups / results queues (each with its dead-letter queue), and the environment set for `Deps.from_env()`
(every Settings variable cleared first, so nothing leaks in from the outer environment). Helpers:

- `h.trigger(event)`: `app.trigger_handler` with a platform context;
- `h.run_until_results(n, timeout)`: play the platform (fan-out requests -> trigger handler, follow-up tickets ->
  follow-up handler) until `n` result events are on the result queue;
- `h.deps(**env)`: a `Deps` built from the environment (for handlers called with their own clock or sinks);
- `sign_http`, `sign_slack`, `slack_form`, `load_event`, `http_event`: payloads as a client or Slack would send.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import io
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from local.emulator import EmulatorConfig, start_emulator
from local.emulator.seed import DEMO_FOLDER_ID
from local.platform import LocalContext, LocalPlatform
from tests.receivers import Receiver
from tests.signers import slack_headers

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TIME_SCALE = 250.0  # the default nominal 600 s backup takes 2.4 s
HTTP_EVENTS = (
    "yc-http",
    "yc-api-gateway",
    "aws-api-gateway-rest",
    "aws-http-api",
    "aws-function-url",
)
ALL_EVENTS = (
    "yc-timer",
    "yc-message-queue",
    *HTTP_EVENTS[:2],
    "aws-eventbridge-schedule",
    "aws-scheduler",
    "aws-sqs",
    *HTTP_EVENTS[2:],
)


# --- payloads ----------------------------------------------------------------------------------------------


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def set_path(event: dict[str, Any], path: str) -> dict[str, Any]:
    """The HTTP sample with another request path (the samples say /backups; the deployed route is /backup)."""
    out = copy.deepcopy(event)
    if "rawPath" in out:  # HTTP API v2 / Function URL
        out["rawPath"] = path
        out["requestContext"]["http"]["path"] = path
        if out.get("routeKey", "$default") != "$default":
            out["routeKey"] = f"{out['requestContext']['http']['method']} {path}"
    elif "url" in out and "path" in out:  # Yandex API Gateway v0.1: `url` is the path asked for
        out["url"] = path
        out["path"] = path
    elif "path" in out:  # AWS REST v1
        out["path"] = path
        out["resource"] = path
        out["requestContext"]["path"] = "/prod" + path
        out["requestContext"]["resourcePath"] = path
    return out


def set_method(event: dict[str, Any], method: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    if "rawPath" in out:
        out["requestContext"]["http"]["method"] = method
    else:
        out["httpMethod"] = method
        if isinstance(out.get("requestContext"), dict) and "httpMethod" in out["requestContext"]:
            out["requestContext"]["httpMethod"] = method
    return out


def set_headers(event: dict[str, Any], headers: dict[str, str], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """Set headers (replacing any of the same name in any case) in `headers` and `multiValueHeaders`."""
    out = copy.deepcopy(event)
    gone = {name.lower() for name in (*headers, *drop)}
    current = {k: v for k, v in (out.get("headers") or {}).items() if k.lower() not in gone}
    current.update(headers)
    out["headers"] = current
    if isinstance(out.get("multiValueHeaders"), dict):
        multi = {k: v for k, v in out["multiValueHeaders"].items() if k.lower() not in gone}
        multi.update({k: [v] for k, v in headers.items()})
        out["multiValueHeaders"] = multi
    return out


def http_event(
    name: str, body: str | bytes | dict[str, Any], *, path: str = "/backup", content_type: str = "application/json"
) -> dict[str, Any]:
    """An HTTP sample event carrying `body` (unsigned), on `path` (ignored for the direct Yandex call)."""
    event = load_event(name)
    # the direct Yandex call has no path; the Function URL sample's "/" is a direct call too, unless asked
    if name not in ("yc-http", "aws-function-url") or (name == "aws-function-url" and path != "/backup"):
        event = set_path(event, path)
    raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    try:
        event["body"] = raw.decode("utf-8")
        event["isBase64Encoded"] = False
    except UnicodeDecodeError:
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
    return set_headers(event, {"Content-Type": content_type}, drop=("Content-Length",))


def raw_body(event: dict[str, Any]) -> bytes:
    """The body bytes a client sent (what it signs); a body marked base64 that is not base64 is taken as text."""
    body = str(event.get("body") or "")
    if event.get("isBase64Encoded") is True:
        with contextlib.suppress(binascii.Error, ValueError):
            return base64.b64decode(body, validate=True)
    return body.encode("utf-8", "surrogatepass")


def sign_http(event: dict[str, Any], secret: str, *, timestamp: int | None = None) -> dict[str, Any]:
    """Sign the event's body as a CI client does (X-Backup-Timestamp / X-Backup-Signature, docs/WEBHOOK.md)."""
    from security.hmac_v1 import sign_webhook

    return set_headers(event, sign_webhook(secret, raw_body(event), timestamp or int(time.time())))


def slack_form(
    text: str, *, response_url: str = "https://hooks.slack.com/commands/T0001/1234/abcdef", **fields: str
) -> str:
    values = {
        "token": "legacy-verification-token",
        "team_id": "T0001",
        "team_domain": "example",
        "channel_id": "C0001",
        "channel_name": "ops",
        "user_id": "U0001",
        "user_name": "alice",
        "command": "/backup",
        "text": text,
        "response_url": response_url,
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
    }
    values.update(fields)
    return urlencode(values)


def sign_slack(event: dict[str, Any], secret: str, *, timestamp: int | None = None) -> dict[str, Any]:
    """Sign the event's body with Slack's v0 scheme."""
    ts = timestamp or int(time.time())
    return set_headers(event, slack_headers(secret, ts, raw_body(event)))


def reply_json(reply: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of an HTTP reply (asserting it is JSON)."""
    assert reply["headers"]["Content-Type"].startswith("application/json")
    body: dict[str, Any] = json.loads(reply["body"])
    return body


# --- local HTTP receivers (webhook sink, Slack response_url) ----------------------------------------------


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


# --- log capture: the powertools JSON lines ------------------------------------------------------------------


class LogLines:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def messages(self, message: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("message") == message]


@pytest.fixture()
def log_lines() -> Iterator[LogLines]:
    """Every line the function's powertools logger writes (DEBUG included), formatted as on the platform."""
    from observability import get_logger

    powertools = get_logger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(powertools.registered_formatter)
    logger = logging.getLogger(powertools.name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield LogLines(stream)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- clocks --------------------------------------------------------------------------------------------------


class ShiftedClock:
    """The function's clock (`Deps.clock`) running `offset` ahead of real time: a deadline passes without waiting."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


# --- loopback only ------------------------------------------------------------------------------------------

_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any name lookup or connection to anything but the loopback address (a slip fails loudly)."""
    import socket

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if host not in _LOOPBACK_NAMES:
            raise OSError(f"e2e tests talk to 127.0.0.1 only, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK_NAMES:
            raise OSError(f"e2e tests talk to 127.0.0.1 only, not {address[0]!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


# --- the harness ---------------------------------------------------------------------------------------------


Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class Harness:
    emu: Any
    platform: LocalPlatform
    monkeypatch: pytest.MonkeyPatch
    webhook_secret: str
    slack_secret: str
    invocation_errors: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> Any:
        return self.emu.state

    @property
    def token(self) -> str:
        return str(self.emu.token)

    def setenv(self, **env: Any) -> None:
        for key, value in env.items():
            if value is None:
                self.monkeypatch.delenv(key, raising=False)
            else:
                self.monkeypatch.setenv(key, str(value))

    def deps(self, **kwargs: Any) -> Any:
        """A Deps from the current environment; keyword arguments set its other fields (clock, sinks_factory)."""
        from handlers.deps import Deps

        deps = Deps.from_env()
        for name, value in kwargs.items():
            setattr(deps, name, value)
        return deps

    def context(self, function: str = "trigger") -> LocalContext:
        return LocalContext(function)

    def trigger(self, event: Any, context: Any = None) -> Any:
        import app

        return app.trigger_handler(event, context or self.context("trigger"))

    def followup(self, event: Any, context: Any = None) -> Any:
        import app

        return app.followup_handler(event, context or self.context("followup"))

    def executes(self) -> list[dict[str, Any]]:
        return list(self.emu.state.execute_log)

    def tickets(self) -> list[dict[str, Any]]:
        """Take every ticket now visible on the follow-up queue (they are consumed)."""
        return [json.loads(m["Body"]) for m in self.platform.drain("followups")]

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.platform.drain("requests")]

    def take_results(self) -> list[dict[str, Any]]:
        """Move what is on the result queue into `results` and return everything collected so far."""
        for message in self.platform.drain("results"):
            self.results.append(json.loads(message["Body"]))
        return self.results

    def queue_event(self, name: str, bodies: list[str]) -> dict[str, Any]:
        """Send `bodies` to a queue, receive them, and build the platform's trigger event (messages stay in flight)."""
        url = self.platform.queues[name]
        for body in bodies:
            self.platform.sqs.send_message(QueueUrl=url, MessageBody=body)
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while len(received) < len(bodies) and time.monotonic() < deadline:
            received += self.platform.receive(name)
        assert len(received) == len(bodies), "the queue did not hand back every message"
        return self.platform.queue_event(name, received)

    def run_until_results(
        self,
        n: int,
        timeout: float = 20.0,
        *,
        trigger: Handler | None = None,
        followup: Handler | None = None,
        settle: bool = False,
    ) -> list[dict[str, Any]]:
        """Play the platform until `n` result events arrived (and, with `settle`, until no work is left)."""
        import app

        trigger = trigger or app.trigger_handler
        followup = followup or app.followup_handler
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ran = False
            for queue, handler, name in (("requests", trigger, "trigger"), ("followups", followup, "followup")):
                record = self.platform.deliver(queue, handler, name)
                if record is not None:
                    ran = True
                    if record.error:
                        self.invocation_errors.append(record.error)
            self.take_results()
            if len(self.results) >= n and (
                not settle or (self.platform.pending("requests") == 0 and self.platform.pending("followups") == 0)
            ):
                return self.results
            if not ran:
                time.sleep(0.1)
        raise AssertionError(
            f"{len(self.results)} of {n} result event(s) within {timeout}s; "
            f"invocation errors: {self.invocation_errors[-3:]}; results: {self.results}"
        )


def _settings_variables() -> tuple[str, ...]:
    from settings import Settings

    return tuple(f.alias for f in Settings.model_fields.values() if f.alias)


@pytest.fixture()
def platform_kind() -> str:
    return "yandex"


@pytest.fixture()
def e2e(sqs_server: str, monkeypatch: pytest.MonkeyPatch, platform_kind: str) -> Iterator[Harness]:
    import adapters.sqs
    from ycloud.auth import clear_token_cache

    werkzeug = logging.getLogger("werkzeug")  # moto's server logs every request otherwise
    werkzeug_level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    emu = start_emulator(EmulatorConfig(port=0, time_scale=TIME_SCALE))
    platform = LocalPlatform(sqs_endpoint=sqs_server, platform=platform_kind, visibility_timeout=1)
    for name in ("requests", "followups", "results"):
        platform.create_queue(name)
    for name in _settings_variables():
        monkeypatch.delenv(name, raising=False)
    harness = Harness(
        emu=emu,
        platform=platform,
        monkeypatch=monkeypatch,
        webhook_secret="whsec-" + secrets.token_hex(16),
        slack_secret="slack-" + secrets.token_hex(16),
    )
    harness.setenv(
        YC_API_ENDPOINT=emu.url,
        YC_IAM_TOKEN=emu.token,
        YC_MAX_RETRIES=1,
        FOLDER_ID=DEMO_FOLDER_ID,
        AWS_ENDPOINT_URL_SQS=sqs_server,
        REQUEST_QUEUE_URL=platform.queues["requests"],
        FOLLOWUP_QUEUE_URL=platform.queues["followups"],
        RESULT_QUEUE_URL=platform.queues["results"],
        REQUEST_DLQ_URL=platform.dead_letter["requests"],
        FOLLOWUP_DLQ_URL=platform.dead_letter["followups"],
        FOLLOWUP_FIRST_DELAY_SECONDS=0,
        FOLLOWUP_MIN_DELAY_SECONDS=1,
        FOLLOWUP_MAX_DELAY_SECONDS=1,
        WEBHOOK_SECRET=harness.webhook_secret,
        SLACK_SIGNING_SECRET=harness.slack_secret,
        HANDOFF_SECRET="fanout-" + secrets.token_hex(16),
        SINK_MAX_ATTEMPTS=1,
    )
    # Process-wide caches keyed by what the environment said when they were filled.
    adapters.sqs._client.cache_clear()
    clear_token_cache()
    try:
        yield harness
    finally:
        adapters.sqs._client.cache_clear()
        clear_token_cache()
        emu.stop()  # the queues have unique names and die with the (in-memory) moto server
        werkzeug.setLevel(werkzeug_level)


def loopback(url: str) -> bool:
    return urlsplit(url).hostname == "127.0.0.1"
