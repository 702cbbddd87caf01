"""Result sinks: where result events go. Configured by environment (`build_sinks`).

- `LogSink` (always): one structured log line per event.
- `QueueSink` (RESULT_QUEUE_URL): the event JSON as the message body, through the MessageQueue port (SqsQueue
  retries throttling and 5xx as botocore's "standard" mode does: adapters.aws).
- `WebhookSink` (RESULT_WEBHOOK_URL): HTTPS POST of the event JSON, `Content-Type: application/cloudevents+json`,
  signed with RESULT_WEBHOOK_SECRET (see "Verifying the webhook" below). Only `https://` URLs, except
  `http://127.0.0.1`, `http://localhost` and `http://[::1]` (local receivers, tests).
- `ChatSink` (the ticket's Slack `response_url`): a short human message. Only `https://hooks.slack.com/` is ever
  called (tests pass `url_allowed=` to admit a loopback receiver). A response_url takes 5 messages within 30
  minutes: when it is used up or expired, the result goes to SLACK_INCOMING_WEBHOOK_URL instead if configured,
  else the chat sink skips (not a failure: redelivering would not help).

HTTP sinks retry through urllib3's `Retry` on their own `requests.Session` (adapters.delivery):
SINK_MAX_ATTEMPTS attempts in all, on connection errors, read timeouts and 429/500/502/503/504, with a short
exponential back-off (0.2 s, 0.4 s ..., at most 2 s; `Retry-After` is not waited for, the invocation's time is
short). POST is retried on purpose: the event id is deterministic, receivers drop duplicates by id. A sink that
still fails raises `SinkError`; its message names the host and the HTTP status only, never a URL path (Slack
URLs carry tokens), a secret or a signature.

Loud failures: every failed attempt is one warning `sink attempt failed` (sink, host, reason, attempt,
maxAttempts); a sink that still fails adds one warning `sink delivery failed` with the attempts made (the queue
sink too, with the queue's host). Connection errors are named by kind (`connection refused or unreachable`,
`host name not resolved`, `connect timeout` ...), with the host.
`check_sink_settings` refuses a bad RESULT_WEBHOOK_URL at start, before anything is started; the warning about
a missing RESULT_WEBHOOK_SECRET is logged once per process.

Verifying the webhook (receiver side), with the shared secret `S`:

    X-Signature-Timestamp: <unix seconds>
    X-Signature: v1=<hex HMAC-SHA256(S, f"{timestamp}.{raw body}")>

1. Read the raw body bytes (before any JSON parsing) and both headers.
2. Refuse a timestamp more than 5 minutes from your clock (replay window).
3. Compute `hmac.new(S, timestamp.encode() + b"." + raw_body, sha256).hexdigest()` and compare it with the value
   after `v1=` in constant time (`hmac.compare_digest`). `verify_signature` (security.hmac_v1, re-exported here)
   does exactly this; `sign` is the same signer as the incoming `POST /backup` scheme.
4. Deduplicate by the event's `id` (at-least-once delivery).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from adapters.delivery import Refused, deliver, delivery_failed, host_of, http_session
from backups.models import ReplyTarget, ResultEvent
from backups.ports import Clock, MessageQueue, QueueError, ResultSink, SinkError, SystemClock
from backups.results import (
    EmitReport,
    ProgressSink,
    SinkSkipped,
    chat_text,
    emit_result,
    progress_message,
)
from observability import get_logger
from security.hmac_v1 import sign, verify_signature
from security.urls import LOOPBACK_HOSTS, SLACK_HOST, is_slack_url

if TYPE_CHECKING:
    import requests
    from pydantic import SecretStr

    from settings import Settings

__all__ = [
    "ChatSink",
    "EmitReport",
    "LogSink",
    "ProgressSink",
    "QueueSink",
    "WebhookSink",
    "build_sinks",
    "check_sink_settings",
    "emit_result",
    "event_body",
    "is_slack_url",
    "progress_message",
    "sign",
    "verify_signature",
]

CLOUDEVENTS_JSON = "application/cloudevents+json"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"


def event_body(event: ResultEvent) -> str:
    """The event as compact JSON: the exact text sent (and signed)."""
    return json.dumps(event.to_json_dict(), separators=(",", ":"), ensure_ascii=False)


class SinkConfigError(ValueError):
    """A sink setting the function refuses to start with. The message names the variable, never a secret."""


def _check_webhook_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise SinkConfigError("RESULT_WEBHOOK_URL is not a URL") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return
    if parts.scheme == "http":
        raise SinkConfigError(
            f"RESULT_WEBHOOK_URL is http:// (host {host or '?'!r}): result events are signed but not encrypted "
            f"on plain HTTP, so only https:// is accepted; http:// only for 127.0.0.1, localhost and [::1] "
            f"(local receivers). Use the receiver's https:// URL."
        )
    raise SinkConfigError(
        f"RESULT_WEBHOOK_URL must be an https:// URL (http:// only for 127.0.0.1, localhost or [::1]); "
        f"got scheme {parts.scheme!r} for host {host or '?'!r}"
    )


def check_sink_settings(settings: Settings) -> None:
    """Call at the start of an invocation, before any backup starts: SinkConfigError (a ValueError, secret-free
    message, also logged as an error) for a sink configuration that could never deliver."""
    if settings.result_webhook_url:
        try:
            _check_webhook_url(settings.result_webhook_url)
        except SinkConfigError as exc:
            get_logger().error("result sink misconfigured", extra={"sink": "webhook", "reason": str(exc)})
            raise


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    """Configuration warnings: once per process (a warm instance serves many invocations)."""
    if key not in _warned:
        _warned.add(key)
        get_logger().warning(message)


# --- the sinks ---------------------------------------------------------------------------------------------


_LOGGED: OrderedDict[str, int] = OrderedDict()  # event id -> times logged by this process (bounded)
_LOGGED_MAX = 1024


def _times_logged(event_id: str) -> int:
    count = _LOGGED.pop(event_id, 0) + 1
    _LOGGED[event_id] = count
    while len(_LOGGED) > _LOGGED_MAX:
        _LOGGED.popitem(last=False)
    return count


class LogSink:
    """One structured log line per event (always configured; RESULTS_FAILURES_ONLY does not apply).

    A result this process already logged (redelivered after another sink failed) carries `repeat: n`, so a
    reader sees one event delivered again, not several backups.
    """

    name = "log"

    def __init__(self, logger: Any | None = None) -> None:
        self._log = logger if logger is not None else get_logger()

    def emit(self, event: ResultEvent) -> None:
        d = event.data
        fields: dict[str, Any] = {
            "eventId": event.id,
            "eventType": event.type,
            "status": d.status,
            "operationId": d.operation_id,
            "policyId": d.policy_id,
            "computeInstanceId": d.compute_instance_id,
            "instanceName": d.instance_name,
            "target": d.target,
            "durationSeconds": d.duration_seconds,
            "polls": d.polls,
            "source": d.source,
            "triggerId": d.trigger_id,
            "correlationId": d.correlation_id,
            "requestedBy": d.requested_by,
        }
        if d.error is not None:
            fields["errorCode"] = d.error.code
            fields["errorMessage"] = d.error.message
        fields = {k: v for k, v in fields.items() if v is not None}
        times = _times_logged(event.id)
        if times > 1:
            fields["repeat"] = times - 1
        if d.status == "succeeded":
            self._log.info("backup result", extra=fields)
        else:
            self._log.warning("backup result", extra=fields)


class QueueSink:
    """The event JSON as one message on RESULT_QUEUE_URL."""

    name = "queue"

    def __init__(self, queue: MessageQueue, queue_url: str) -> None:
        self._queue = queue
        self._url = queue_url

    def emit(self, event: ResultEvent) -> None:
        try:
            self._queue.send(self._url, event_body(event))
        except QueueError as exc:  # QueueError messages never carry credentials
            raise delivery_failed(
                self.name, host_of(self._url), str(exc), None, f"result queue at {host_of(self._url)}: {exc}"
            ) from None


class WebhookSink:
    """HTTPS POST of the event, signed (HMAC-SHA256) when a secret is configured."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: SecretStr | str | None,
        *,
        max_attempts: int = 3,
        session: requests.Session | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        _check_webhook_url(url)
        self._url = url
        self._secret = secret if isinstance(secret, str | None) else secret.get_secret_value()
        self._session = session or http_session(max_attempts, sink=self.name)
        self._now = now

    def emit(self, event: ResultEvent) -> None:
        body = event_body(event).encode("utf-8")
        headers = {"Content-Type": CLOUDEVENTS_JSON}
        if self._secret:
            timestamp = str(int(self._now()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        deliver(self._session, self._url, "result webhook", self.name, data=body, headers=headers)


def _spent(exc: Refused) -> bool:
    """A 4xx other than 429 (rate limited) from a response_url: it will not take a message again."""
    return 400 <= exc.status < 500 and exc.status != 429


class ChatSink:
    """Posts the result (and progress updates) to the ticket's Slack response_url, or the incoming webhook."""

    name = "chat"

    def __init__(
        self,
        reply_to: ReplyTarget | None,
        fallback_url: SecretStr | str | None = None,
        *,
        max_attempts: int = 3,
        clock: Clock | None = None,
        session: requests.Session | None = None,
        url_allowed: Callable[[str], bool] = is_slack_url,
        response_type: str = "ephemeral",
    ) -> None:
        self.reply_to = reply_to.model_copy() if reply_to is not None else None
        self._fallback = fallback_url if isinstance(fallback_url, str | None) else fallback_url.get_secret_value()
        self._clock = clock or SystemClock()
        self._session_arg = session
        self._max_attempts = max_attempts
        self._allowed = url_allowed
        self._response_type = response_type
        self._log = get_logger()

    @property
    def _session(self) -> requests.Session:
        if self._session_arg is None:
            self._session_arg = http_session(self._max_attempts, sink=self.name)
        return self._session_arg

    def _response_url_usable(self, keep: int) -> bool:
        reply = self.reply_to
        return reply is not None and reply.messages_left > keep and self._clock.now() < reply.expires_at

    def emit(self, event: ResultEvent) -> None:
        text = chat_text(event)
        if self._response_url_usable(keep=0):
            assert self.reply_to is not None
            try:
                self._send(self.reply_to.response_url, {"text": text, "response_type": self._response_type})
            except (SinkSkipped, Refused) as exc:
                # A response_url Slack refuses (4xx: expired, used up, e.g. by a duplicate chain of messages) is
                # spent: asking for the result again would not help. Other sinks still have it.
                if isinstance(exc, Refused) and not _spent(exc):
                    raise
                self.reply_to.messages_left = 0
                if not self._fallback:
                    if isinstance(exc, SinkSkipped):
                        raise
                    raise SinkSkipped(f"{exc}: the response_url is spent, and no SLACK_INCOMING_WEBHOOK_URL") from None
            else:
                self.reply_to.messages_left -= 1
                return
        if self._fallback:
            self._send(self._fallback, {"text": text})
            return
        raise SinkSkipped("response_url used up or expired, and no SLACK_INCOMING_WEBHOOK_URL")

    def post_progress(self, text: str) -> bool:
        """Post a progress update to the response_url, keeping one message for the result. Never raises."""
        if not self._response_url_usable(keep=1):
            return False
        assert self.reply_to is not None
        try:
            self._send(self.reply_to.response_url, {"text": text, "response_type": self._response_type})
        except (SinkError, SinkSkipped) as exc:
            if isinstance(exc, Refused) and _spent(exc):
                self.reply_to.messages_left = 0  # the follow-up carries this on: the URL is not tried again
            self._log.warning("chat progress not posted", extra={"reason": str(exc)})
            return False
        self.reply_to.messages_left -= 1
        return True

    def _send(self, url: str, payload: dict[str, Any]) -> None:
        if not self._allowed(url):
            # Never call anything but Slack with a URL that came in a message. Retrying would not help.
            self._log.warning("chat URL refused: not https://hooks.slack.com/", extra={"host": host_of(url)})
            raise SinkSkipped(f"chat URL host {host_of(url)!r} is not {SLACK_HOST}")
        deliver(self._session, url, "chat", self.name, json=payload)


def build_sinks(
    settings: Settings,
    reply_to: ReplyTarget | None,
    *,
    queue: MessageQueue | None = None,
    clock: Clock | None = None,
    chat_url_allowed: Callable[[str], bool] | None = None,
) -> list[ResultSink]:
    """The sinks the environment configures: log always; queue, webhook; chat when there is a reply target.

    SinkConfigError (a ValueError) for a webhook URL that is not https (the message names no secret); call
    `check_sink_settings` at the start of the invocation to refuse it before anything starts.
    """
    sinks: list[ResultSink] = [LogSink()]
    if settings.result_queue_url:
        if queue is None:
            from adapters.sqs import SqsQueue

            queue = SqsQueue()
        sinks.append(QueueSink(queue, settings.result_queue_url))
    if settings.result_webhook_url:
        if settings.result_webhook_secret is None:
            _warn_once("unsigned", "RESULT_WEBHOOK_SECRET is not set: result webhook calls are not signed")
        sinks.append(
            WebhookSink(
                settings.result_webhook_url, settings.result_webhook_secret, max_attempts=settings.sink_max_attempts
            )
        )
    if reply_to is not None:
        sinks.append(
            ChatSink(
                reply_to,
                settings.slack_incoming_webhook_url,
                max_attempts=settings.sink_max_attempts,
                clock=clock,
                url_allowed=chat_url_allowed or is_slack_url,
            )
        )
    return sinks
