"""Every result sink through its real protocol: SQS (moto server), HTTPS-style POST to a loopback receiver that
verifies the signature, Slack response_url stand-in; the failures-only filter; no secret in any message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from adapters import delivery as delivery_module
from adapters import sinks as sinks_module
from adapters.delivery import failure_reason
from adapters.sinks import (
    CLOUDEVENTS_JSON,
    ChatSink,
    LogSink,
    QueueSink,
    WebhookSink,
    build_sinks,
    emit_result,
    is_slack_url,
    verify_signature,
)
from adapters.sqs import SqsQueue
from backups.events import result_from_operation, timed_out_result
from backups.handoff import FollowupTicket
from backups.models import ReplyTarget, ResultEvent, TriggerInfo
from backups.ports import SinkError
from backups.target import BackupTarget
from settings import Settings
from tests.conftest import drain
from tests.receivers import Receiver
from ycloud.models import Operation, Status

SECRET = "whsec-0123456789abcdef"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_ticket(**kw: Any) -> FollowupTicket:
    fields: dict[str, Any] = {
        "operation_id": "op1",
        "target": BackupTarget(
            trigger=TriggerInfo(source="slack", trigger_id="trig-1", requested_by="U123"),
            asked="instanceName=web-1",
            policy_id="pol1",
            compute_instance_id="vm1",
            instance_name="web-1",
        ),
        "started_at": START,
        "deadline": START + timedelta(days=1),
        "attempt": 3,
    }
    fields.update(kw)
    return FollowupTicket(**fields)


def succeeded() -> ResultEvent:
    op = Operation(id="op1", done=True, response={}, modified_at=START + timedelta(minutes=12))
    return result_from_operation(make_ticket(), op, START + timedelta(minutes=13))


def failed() -> ResultEvent:
    op = Operation(id="op1", done=True, error=Status(code=13, message="backup failed: the agent reported an error"))
    return result_from_operation(make_ticket(), op, START + timedelta(minutes=13))


# --- a loopback HTTP receiver ------------------------------------------------------------------------------


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


def loopback(url: str) -> bool:
    return urlsplit(url).hostname == "127.0.0.1"


class RecordingLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, msg: str, extra: dict[str, Any] | None = None) -> None:
        self.lines.append(("info", msg, extra or {}))

    def warning(self, msg: str, extra: dict[str, Any] | None = None) -> None:
        self.lines.append(("warning", msg, extra or {}))

    def text(self) -> str:
        return json.dumps(self.lines, default=str)


@pytest.fixture()
def logger(monkeypatch: pytest.MonkeyPatch) -> RecordingLogger:
    rec = RecordingLogger()
    monkeypatch.setattr(sinks_module, "get_logger", lambda: rec)
    monkeypatch.setattr(delivery_module, "get_logger", lambda: rec)
    return rec


# --- QueueSink ---------------------------------------------------------------------------------------------


def test_queue_sink_sends_the_event_json(sqs, make_queue, sqs_server):
    url = make_queue("results")
    event = failed()
    QueueSink(SqsQueue(endpoint_url=sqs_server), url).emit(event)
    [message] = drain(sqs, url)
    body = json.loads(message["Body"])
    assert body == event.to_json_dict()
    assert body["id"] == event.id and body["specversion"] == "1.0"


def test_queue_sink_failure_is_a_sink_error_without_credentials(sqs_server):
    sink = QueueSink(SqsQueue(endpoint_url=sqs_server), f"{sqs_server}/123456789012/no-such-queue")
    with pytest.raises(SinkError) as info:
        sink.emit(failed())
    assert "result queue" in str(info.value) and "testing" not in str(info.value)


def test_build_sinks_queue_through_the_environment(sqs, make_queue, sqs_server, logger):
    url = make_queue("results")
    settings = Settings(RESULT_QUEUE_URL=url)
    sinks = build_sinks(settings, None, queue=SqsQueue(endpoint_url=sqs_server))
    assert [s.name for s in sinks] == ["log", "queue"]
    report = emit_result(succeeded(), sinks, settings)
    assert report.ok and report.delivered == ["log", "queue"]
    assert len(drain(sqs, url)) == 1


# --- WebhookSink -------------------------------------------------------------------------------------------


def test_webhook_posts_a_signed_cloudevent_the_receiver_verifies(receiver):
    event = failed()
    WebhookSink(receiver.url + "/hook", SECRET).emit(event)
    [req] = receiver.requests
    headers = req.headers
    assert headers["content-type"] == CLOUDEVENTS_JSON
    assert headers["x-signature"].startswith("v1=")
    assert verify_signature(SECRET, headers["x-signature-timestamp"], req.body, headers["x-signature"])
    assert not verify_signature("other-secret", headers["x-signature-timestamp"], req.body, headers["x-signature"])
    assert not verify_signature(SECRET, headers["x-signature-timestamp"], req.body + b" ", headers["x-signature"])
    stale = str(int(headers["x-signature-timestamp"]) - 3600)
    assert not verify_signature(SECRET, stale, req.body, headers["x-signature"])
    assert json.loads(req.body) == event.to_json_dict()


def test_webhook_without_a_secret_is_unsigned(receiver):
    WebhookSink(receiver.url, None).emit(failed())
    headers = set(receiver.requests[0].headers)
    assert "x-signature" not in headers and "x-signature-timestamp" not in headers


def test_webhook_500_twice_then_200_is_delivered_once_retried(receiver):
    receiver.statuses = [500, 500]
    WebhookSink(receiver.url, SECRET, max_attempts=3).emit(failed())
    assert len(receiver.requests) == 3
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same event each time


def test_webhook_always_500_is_reported_failed_without_secrets(receiver, logger):
    receiver.always = 500
    settings = Settings(RESULT_WEBHOOK_URL=receiver.url + "/hook/t0ken-in-path", RESULT_WEBHOOK_SECRET=SECRET)
    sinks = build_sinks(settings, None)
    report = emit_result(failed(), sinks, settings)
    assert report.failed.keys() == {"webhook"}
    assert "HTTP 500" in report.failed["webhook"]
    assert len(receiver.requests) == settings.sink_max_attempts
    signature = receiver.requests[0].headers["x-signature"]
    for text in (report.failed["webhook"], logger.text()):
        assert SECRET not in text and signature not in text and "t0ken-in-path" not in text
    assert [msg for _, msg, _ in logger.lines].count("sink attempt failed") == settings.sink_max_attempts


def test_webhook_unreachable_is_a_sink_error():
    with pytest.raises(SinkError, match="unreachable"):
        WebhookSink("http://127.0.0.1:9/hook", SECRET, max_attempts=1).emit(failed())


@pytest.mark.parametrize("url", ["http://example.com/hook", "ftp://127.0.0.1/x", "http://10.0.0.1/x", "https:///x"])
def test_webhook_refuses_plain_http_except_loopback(url):
    with pytest.raises(ValueError, match="https"):
        WebhookSink(url, SECRET)


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://127.0.0.1:8080/x", "http://localhost/x"])
def test_webhook_accepts_https_and_loopback(url):
    WebhookSink(url, SECRET)


# --- failures only -----------------------------------------------------------------------------------------


def test_failures_only_keeps_succeeded_events_off_the_webhook_but_in_the_log(receiver, logger):
    settings = Settings(RESULT_WEBHOOK_URL=receiver.url, RESULT_WEBHOOK_SECRET=SECRET, RESULTS_FAILURES_ONLY="1")
    sinks = build_sinks(settings, None)
    report = emit_result(succeeded(), sinks, settings)
    assert report.delivered == ["log"] and report.skipped == ["webhook"]
    assert receiver.requests == []
    assert [line[1] for line in logger.lines] == ["backup result"]
    report = emit_result(failed(), sinks, settings)
    assert report.delivered == ["log", "webhook"] and len(receiver.requests) == 1


# --- ChatSink ----------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


def reply_to(receiver: Receiver, *, messages_left: int = 5, expires_in: float = 1800) -> ReplyTarget:
    return ReplyTarget(
        response_url=receiver.url + "/commands/T1/2/resp-t0ken",
        expires_at=START + timedelta(seconds=expires_in),
        messages_left=messages_left,
    )


def test_chat_posts_the_result_to_the_response_url(receiver, logger):
    sink = ChatSink(reply_to(receiver), clock=Clock(START), url_allowed=loopback)
    sink.emit(failed())
    [req] = receiver.requests
    assert req.path == "/commands/T1/2/resp-t0ken"
    payload = json.loads(req.body)
    assert payload["response_type"] == "ephemeral"
    text = payload["text"]
    assert "Backup failed" in text and "web-1 (vm1)" in text and "pol1" in text and "op1" in text
    assert "INTERNAL" in text and "agent reported an error" in text and "13m" in text
    assert sink.reply_to is not None and sink.reply_to.messages_left == 4


def test_chat_progress_keeps_one_message_for_the_result(receiver):
    sink = ChatSink(reply_to(receiver, messages_left=2), clock=Clock(START), url_allowed=loopback)
    assert sink.post_progress("25% done")
    assert not sink.post_progress("50% done")  # one left: kept for the result
    sink.emit(succeeded())
    texts = [json.loads(r.body)["text"] for r in receiver.requests]
    assert len(texts) == 2 and texts[0] == "25% done" and "Backup succeeded" in texts[1]


@pytest.mark.parametrize(("messages_left", "expires_in"), [(0, 1800), (5, -1)], ids=["used-up", "expired"])
def test_used_up_or_expired_response_url_falls_back_to_the_incoming_webhook(receiver, messages_left, expires_in):
    fallback = receiver.url + "/services/T1/B2/incoming-t0ken"
    sink = ChatSink(
        reply_to(receiver, messages_left=messages_left, expires_in=expires_in),
        fallback,
        clock=Clock(START),
        url_allowed=loopback,
    )
    sink.emit(failed())
    [req] = receiver.requests
    assert req.path == "/services/T1/B2/incoming-t0ken"
    assert "Backup failed" in json.loads(req.body)["text"]


def test_no_usable_response_url_and_no_fallback_is_skipped_not_failed(receiver):
    settings = Settings()
    sink = ChatSink(reply_to(receiver, messages_left=0), None, clock=Clock(START), url_allowed=loopback)
    report = emit_result(failed(), [sink], settings)
    assert report.ok and report.skipped == ["chat"] and receiver.requests == []


def test_chat_never_calls_a_host_other_than_slack(receiver, logger):
    settings = Settings(SLACK_INCOMING_WEBHOOK_URL=receiver.url + "/services/x")
    [_, chat] = build_sinks(settings, reply_to(receiver), clock=Clock(START))
    report = emit_result(failed(), [chat], settings)
    assert report.skipped == ["chat"] and receiver.requests == []
    assert "resp-t0ken" not in logger.text()
    assert isinstance(chat, ChatSink) and not chat.post_progress("25%")


def test_chat_failure_is_reported_without_the_url_path(receiver, logger):
    receiver.always = 500
    sink = ChatSink(reply_to(receiver), clock=Clock(START), url_allowed=loopback, max_attempts=2)
    report = emit_result(failed(), [LogSink(), sink], Settings())
    assert "HTTP 500" in report.failed["chat"] and "resp-t0ken" not in report.failed["chat"]
    assert len(receiver.requests) == 2
    assert not sink.post_progress("50%")
    assert "resp-t0ken" not in logger.text()


def test_slack_url_allowlist():
    assert is_slack_url("https://hooks.slack.com/commands/T1/2/3")
    assert is_slack_url("https://hooks.slack.com:443/services/T/B/X")
    for url in (
        "http://hooks.slack.com/commands/1",
        "https://hooks.slack.com.evil.example/commands/1",
        "https://evil.example/hooks.slack.com/",
        "https://hooks.slack.com:8443/commands/1",
        "https://user@evil.example/",
    ):
        assert not is_slack_url(url), url


# --- LogSink and build_sinks -------------------------------------------------------------------------------


def test_log_sink_writes_one_structured_line_per_event():
    rec = RecordingLogger()
    LogSink(rec).emit(failed())
    LogSink(rec).emit(succeeded())
    assert [(level, msg) for level, msg, _ in rec.lines] == [("warning", "backup result"), ("info", "backup result")]
    fields = rec.lines[0][2]
    assert fields["status"] == "failed" and fields["errorCode"] == "INTERNAL" and fields["operationId"] == "op1"
    assert fields["eventId"] == failed().id


def test_log_sink_through_the_powertools_logger(caplog):
    with caplog.at_level("INFO"):
        LogSink().emit(timed_out_result(make_ticket(), START + timedelta(days=1, seconds=1)))
    [record] = [r for r in caplog.records if r.getMessage() == "backup result"]
    assert record.levelname == "WARNING"
    assert getattr(record, "status", None) == "timed_out"
    assert getattr(record, "errorCode", None) == "DEADLINE_EXCEEDED"


def test_build_sinks_from_the_environment(receiver):
    settings = Settings(
        RESULT_QUEUE_URL="http://127.0.0.1:1/000000000000/results",
        RESULT_WEBHOOK_URL="https://results.example/hook",
        RESULT_WEBHOOK_SECRET=SECRET,
        SLACK_INCOMING_WEBHOOK_URL="https://hooks.slack.com/services/T/B/X",
    )
    assert [s.name for s in build_sinks(settings, None)] == ["log", "queue", "webhook"]
    assert [s.name for s in build_sinks(settings, reply_to(receiver))] == ["log", "queue", "webhook", "chat"]
    assert [s.name for s in build_sinks(Settings(), None)] == ["log"]
    with pytest.raises(ValueError, match="https") as info:
        build_sinks(Settings(RESULT_WEBHOOK_URL="http://results.example/t0ken"), None)
    assert "t0ken" not in str(info.value)


# --- loud failures: which sink, its host, why, which attempt; never a secret -------------------------------


def sink_lines(caplog: pytest.LogCaptureFixture, message: str) -> list[Any]:
    return [r for r in caplog.records if r.getMessage() == message]


def fields(record: Any, *names: str) -> tuple[Any, ...]:
    return tuple(getattr(record, n, None) for n in names)


def test_each_failed_attempt_and_the_final_failure_are_logged(receiver, caplog):
    receiver.always = 503
    sink = WebhookSink(receiver.url + "/hook/t0ken-in-path?sig=qs-s3cret", SECRET, max_attempts=3)
    with caplog.at_level("WARNING"), pytest.raises(SinkError):
        sink.emit(failed())
    attempts = sink_lines(caplog, "sink attempt failed")
    assert [fields(r, "sink", "host", "reason", "attempt", "maxAttempts") for r in attempts] == [
        ("webhook", "127.0.0.1", "HTTP 503", n, 3) for n in (1, 2, 3)
    ]
    [final] = sink_lines(caplog, "sink delivery failed")
    assert fields(final, "sink", "host", "reason", "attempts") == ("webhook", "127.0.0.1", "HTTP 503", 3)
    signature = receiver.requests[0].headers["x-signature"]
    for secret in (SECRET, signature, "t0ken-in-path", "qs-s3cret", "/hook"):
        assert secret not in caplog.text


def test_a_4xx_is_not_retried_and_says_one_attempt(receiver, caplog):
    receiver.always = 404
    with caplog.at_level("WARNING"), pytest.raises(SinkError, match="HTTP 404"):
        WebhookSink(receiver.url + "/x", SECRET, max_attempts=3).emit(failed())
    assert sink_lines(caplog, "sink attempt failed") == []
    [final] = sink_lines(caplog, "sink delivery failed")
    assert fields(final, "reason", "attempts") == ("HTTP 404", 1)


def test_connection_refused_names_the_host_and_the_reason(caplog):
    with caplog.at_level("WARNING"), pytest.raises(SinkError) as info:
        WebhookSink("http://127.0.0.1:9/hook/t0ken", SECRET, max_attempts=2).emit(failed())
    assert str(info.value) == "result webhook at 127.0.0.1 unreachable: connection refused or unreachable"
    attempts = sink_lines(caplog, "sink attempt failed")
    assert [fields(r, "host", "reason", "attempt") for r in attempts] == [
        ("127.0.0.1", "connection refused or unreachable", 1),
        ("127.0.0.1", "connection refused or unreachable", 2),
    ]
    [final] = sink_lines(caplog, "sink delivery failed")
    assert fields(final, "sink", "attempts") == ("webhook", 2)
    assert "t0ken" not in caplog.text


def test_connection_error_reasons_are_named_by_kind():
    import requests
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError

    dns = NameResolutionError("results.example", None, OSError("Name or service not known"))  # type: ignore[arg-type]
    wrapped = requests.exceptions.ConnectionError(MaxRetryError(None, "/hook/t0ken", dns))  # type: ignore[arg-type]
    assert failure_reason(wrapped) == "host name not resolved"
    assert failure_reason(ConnectTimeoutError("x")) == "connect timeout"
    assert failure_reason(requests.exceptions.ReadTimeout()) == "read timeout"
    assert failure_reason(None) == "no answer"
    assert failure_reason(ValueError("weird")) == "ValueError"


def test_chat_failure_logs_the_chat_sink_without_the_response_url_path(receiver, caplog):
    receiver.always = 500
    sink = ChatSink(reply_to(receiver), None, max_attempts=2, clock=Clock(START), url_allowed=loopback)
    with caplog.at_level("WARNING"), pytest.raises(SinkError):
        sink.emit(failed())
    [final] = sink_lines(caplog, "sink delivery failed")
    assert fields(final, "sink", "host", "attempts") == ("chat", "127.0.0.1", 2)
    assert len(sink_lines(caplog, "sink attempt failed")) == 2
    assert "resp-t0ken" not in caplog.text


def test_queue_failure_logs_the_queue_host(sqs_server, caplog):
    sink = QueueSink(SqsQueue(endpoint_url=sqs_server), f"{sqs_server}/123456789012/no-such-queue")
    with caplog.at_level("WARNING"), pytest.raises(SinkError, match=r"result queue at 127\.0\.0\.1"):
        sink.emit(failed())
    [final] = sink_lines(caplog, "sink delivery failed")
    assert fields(final, "sink", "host") == ("queue", "127.0.0.1")
    assert "testing" not in caplog.text  # the (fake) AWS credentials


@pytest.mark.parametrize(
    "url", ["http://results.example/hook/t0ken", "http://10.0.0.1/x?sig=t0ken", "HTTP://results.example/t0ken"]
)
def test_plain_http_webhook_is_refused_at_start_with_a_clear_message(url, caplog):
    settings = Settings(RESULT_WEBHOOK_URL=url, RESULT_WEBHOOK_SECRET=SECRET)
    with caplog.at_level("ERROR"), pytest.raises(sinks_module.SinkConfigError) as info:
        sinks_module.check_sink_settings(settings)
    message = str(info.value)
    assert message.startswith("RESULT_WEBHOOK_URL is http://")
    assert "https://" in message and "127.0.0.1, localhost and [::1]" in message
    assert "t0ken" not in message and "t0ken" not in caplog.text
    [line] = sink_lines(caplog, "result sink misconfigured")
    assert fields(line, "sink") == ("webhook",)
    with pytest.raises(ValueError, match="RESULT_WEBHOOK_URL"):  # and build_sinks refuses it too
        build_sinks(settings, None)


@pytest.mark.parametrize(
    "url", ["https://results.example/hook", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x", None]
)
def test_https_and_the_loopback_exception_pass_the_start_check(url):
    sinks_module.check_sink_settings(Settings(RESULT_WEBHOOK_URL=url))


@pytest.mark.parametrize("url", ["ftp://results.example/x", "https:///x", "results.example/hook", "http://[::1/x"])
def test_other_bad_webhook_urls_are_refused_at_start(url):
    with pytest.raises(sinks_module.SinkConfigError, match="RESULT_WEBHOOK_URL"):
        sinks_module.check_sink_settings(Settings(RESULT_WEBHOOK_URL=url))


def test_missing_secret_warning_is_logged_once_per_process(monkeypatch, caplog):
    monkeypatch.setattr(sinks_module, "_warned", set())
    settings = Settings(RESULT_WEBHOOK_URL="https://results.example/hook")
    with caplog.at_level("WARNING"):
        for _ in range(5):
            build_sinks(settings, None)
    warnings = [r for r in caplog.records if "RESULT_WEBHOOK_SECRET is not set" in r.getMessage()]
    assert len(warnings) == 1


def test_a_redelivered_result_is_logged_as_a_repeat(monkeypatch, caplog):
    from collections import OrderedDict

    monkeypatch.setattr(sinks_module, "_LOGGED", OrderedDict())
    event = timed_out_result(make_ticket(operation_id="oprepeat"), START + timedelta(days=2))
    with caplog.at_level("INFO"):
        for _ in range(3):
            LogSink().emit(event)
    lines = [r for r in caplog.records if r.getMessage() == "backup result"]
    assert [getattr(r, "repeat", None) for r in lines] == [None, 1, 2]
    assert {getattr(r, "eventId", None) for r in lines} == {event.id}
