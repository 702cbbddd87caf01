"""Result events: deterministic ids, every required field, CloudEvents 1.0 attributes; emit_result's filtering."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backups.events import EVENT_TYPES, failed_result, failed_start_event, result_from_operation, timed_out_result
from backups.handoff import FollowupTicket
from backups.models import ReplyTarget, ResultError, ResultEvent, TriggerInfo
from backups.ports import SinkError
from backups.results import SinkSkipped, chat_text, emit_result, progress_message
from backups.target import RESULT_NAMESPACE, BackupTarget, Failed, result_event_id, target_key
from settings import Settings
from ycloud.models import ExecuteMetadata, Operation, Status

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TRIGGER = TriggerInfo(
    source="yc.timer", trigger_id="evt-1", correlation_id="corr-9", requested_by="ops@example.com", reason="nightly"
)


TARGET_FIELDS = ("trigger", "policy_id", "compute_instance_id", "instance_name", "folder_id")


def make_ticket(**kw) -> FollowupTicket:
    fields = {
        "operation_id": "op1",
        "policy_id": "pol1",
        "compute_instance_id": "vm1",
        "instance_name": "web-1",
        "folder_id": "folder1",
        "trigger": TRIGGER,
        "started_at": START,
        "deadline": START + timedelta(days=1),
        "attempt": 4,
    }
    fields.update(kw)
    target = {k: fields.pop(k) for k in TARGET_FIELDS}
    asked = f"computeInstanceId={target['compute_instance_id']}"
    return FollowupTicket(target=BackupTarget(asked=asked, **target), **fields)


def failed_start_result(
    trigger: TriggerInfo,
    *,
    policy_id: str | None,
    compute_instance_id: str | None,
    instance_name: str | None,
    folder_id: str | None,
    target: str | None,
    code: str,
    message: str,
    grpc_code: int | None,
    now: datetime,
) -> ResultEvent:
    """A target that could not start, as its `Failed` outcome and the one event builder report it."""
    record = BackupTarget(
        trigger=trigger,
        asked=target or f"computeInstanceId={compute_instance_id}",
        policy_id=policy_id,
        compute_instance_id=compute_instance_id,
        instance_name=instance_name,
        folder_id=folder_id,
    )
    error = ResultError(code=code, message=message, grpc_code=grpc_code)
    return failed_start_event(Failed(target=record, error=error, finished_at=now))


def done_op(**kw) -> Operation:
    fields = {
        "id": "op1",
        "done": True,
        "response": {},
        "created_at": START,
        "modified_at": START + timedelta(minutes=20),
        "metadata": ExecuteMetadata(policy_id="pol1", compute_instance_id="vm1", progress_percentage=100),
    }
    fields.update(kw)
    return Operation(**fields)


NOW = START + timedelta(minutes=21)


# --- ids ---------------------------------------------------------------------------------------------------


def test_target_key_spelling():
    assert target_key("t", "p", "i") == "t|p|i"
    assert target_key("t", None, "i") == "t||i"
    assert target_key("t", None, None, "web-*") == "t|web-*"


def test_event_id_is_uuid5_of_the_target_key():
    event = result_from_operation(make_ticket(), done_op(), NOW)
    assert event.id == str(uuid.uuid5(RESULT_NAMESPACE, "evt-1|pol1|vm1"))
    assert uuid.UUID(event.id).version == 5


def test_same_target_same_id_whatever_happened_and_whenever():
    ticket = make_ticket()
    ids = {
        result_from_operation(ticket, done_op(), NOW).id,
        result_from_operation(ticket.model_copy(update={"attempt": 9}), done_op(), NOW + timedelta(hours=1)).id,
        timed_out_result(ticket, NOW).id,
        failed_result(ticket, code="NOT_FOUND", message="gone", grpc_code=5, now=NOW).id,
    }
    assert len(ids) == 1


def test_different_triggers_policies_or_instances_differ():
    base = result_from_operation(make_ticket(), done_op(), NOW).id
    other_trigger = make_ticket(trigger=TRIGGER.model_copy(update={"trigger_id": "evt-2"}))
    assert result_from_operation(other_trigger, done_op(), NOW).id != base
    assert result_from_operation(make_ticket(policy_id="pol2"), done_op(), NOW).id != base
    assert result_from_operation(make_ticket(compute_instance_id="vm2"), done_op(), NOW).id != base


# --- CloudEvents and fields ------------------------------------------------------------------------------------


def test_cloudevents_required_attributes_and_json_shape():
    event = result_from_operation(make_ticket(), done_op(), NOW, source="urn:test")
    body = json.loads(json.dumps(event.to_json_dict()))
    # CloudEvents 1.0 REQUIRED: id, source, specversion, type (non-empty strings).
    assert body["specversion"] == "1.0"
    for attr in ("id", "source", "type"):
        assert isinstance(body[attr], str) and body[attr]
    assert body["source"] == "urn:test"
    assert body["datacontenttype"] == "application/json"
    assert body["subject"] == "vm1"
    datetime.fromisoformat(body["time"])  # RFC 3339
    assert ResultEvent.model_validate(body) == event


def test_succeeded_event_carries_every_field():
    event = result_from_operation(make_ticket(), done_op(), NOW)
    assert event.type == EVENT_TYPES["succeeded"] == "cloud.yandex.backup.execute.succeeded"
    data = event.to_json_dict()["data"]
    assert data == {
        "status": "succeeded",
        "operationId": "op1",
        "policyId": "pol1",
        "computeInstanceId": "vm1",
        "instanceName": "web-1",
        "folderId": "folder1",
        "startedAt": "2026-01-01T12:00:00Z",
        "finishedAt": "2026-01-01T12:20:00Z",
        "durationSeconds": 1200.0,
        "source": "yc.timer",
        "triggerId": "evt-1",
        "correlationId": "corr-9",
        "requestedBy": "ops@example.com",
        "reason": "nightly",
        "polls": 4,
    }
    assert event.time == event.data.finished_at


def test_failed_operation_reports_code_name_message_and_grpc_code():
    op = done_op(response=None, error=Status(code=13, message="backup failed: the agent reported an error"))
    event = result_from_operation(make_ticket(), op, NOW)
    assert event.type == "cloud.yandex.backup.execute.failed"
    assert event.to_json_dict()["data"]["error"] == {
        "code": "INTERNAL",
        "message": "backup failed: the agent reported an error",
        "grpcCode": 13,
    }


def test_error_before_done_is_a_failure():
    op = done_op(done=False, response=None, error=Status(code=9, message="rolling back"))
    event = result_from_operation(make_ticket(), op, NOW)
    assert event.data.status == "failed"
    assert event.data.error is not None and event.data.error.code == "FAILED_PRECONDITION"


def test_running_operation_is_not_a_result():
    with pytest.raises(ValueError, match="has not finished"):
        result_from_operation(make_ticket(), done_op(done=False, response=None), NOW)


@pytest.mark.parametrize(
    "modified",
    [None, START - timedelta(minutes=1), NOW + timedelta(hours=5)],
    ids=["absent", "before-start", "far-future (scaled emulator clock)"],
)
def test_finish_time_falls_back_to_now_when_modified_at_is_implausible(modified):
    event = result_from_operation(make_ticket(), done_op(modified_at=modified), NOW)
    assert event.data.finished_at == NOW
    assert event.data.duration_seconds == 21 * 60


def test_timed_out_event():
    event = timed_out_result(make_ticket(), NOW)
    assert event.type == "cloud.yandex.backup.execute.timed_out"
    assert event.data.status == "timed_out"
    assert event.data.error is not None and event.data.error.code == "DEADLINE_EXCEEDED"
    assert "op1" in event.data.error.message
    assert event.data.operation_id == "op1" and event.data.polls == 4


def test_failed_start_with_a_known_instance():
    event = failed_start_result(
        TRIGGER,
        policy_id=None,
        compute_instance_id="vm7",
        instance_name="db-1",
        folder_id="folder1",
        target=None,
        code="POLICY_NOT_APPLIED",
        message="no policy is applied to db-1",
        grpc_code=None,
        now=NOW,
    )
    assert event.id == result_event_id("evt-1||vm7")
    assert event.subject == "vm7"
    data = event.to_json_dict()["data"]
    assert data["status"] == "failed"
    assert data["error"] == {"code": "POLICY_NOT_APPLIED", "message": "no policy is applied to db-1"}
    assert "startedAt" not in data and "operationId" not in data
    assert data["triggerId"] == "evt-1" and data["source"] == "yc.timer" and data["reason"] == "nightly"


def test_failed_start_without_an_instance_uses_the_target_as_asked():
    kwargs: dict[str, Any] = {
        "policy_id": "pol1",
        "compute_instance_id": None,
        "instance_name": None,
        "folder_id": None,
        "target": "instanceName=web-9",
        "code": "NOT_FOUND",
        "message": "no instance named web-9",
        "grpc_code": 5,
        "now": NOW,
    }
    event = failed_start_result(TRIGGER, **kwargs)
    assert event.id == str(uuid.uuid5(RESULT_NAMESPACE, "evt-1|instanceName=web-9"))
    assert event.subject == "instanceName=web-9"
    assert event.id == failed_start_result(TRIGGER, **(kwargs | {"now": NOW + timedelta(hours=1)})).id


# --- chat wording --------------------------------------------------------------------------------------------


def reply(messages_left: int = 5, expires_in: float = 1800) -> ReplyTarget:
    return ReplyTarget(
        response_url="https://hooks.slack.com/commands/T1/2/secretpath",
        expires_at=NOW + timedelta(seconds=expires_in),
        messages_left=messages_left,
    )


def test_progress_message_on_each_quarter_only():
    ticket = make_ticket(reply_to=reply())
    assert progress_message(ticket, 10.0, now=NOW) is None
    text = progress_message(ticket, 27.0, now=NOW)
    assert text is not None and "27%" in text and "web-1" in text and "op1" in text
    reported = ticket.model_copy(update={"last_reported_percent": 27.0})
    assert progress_message(reported, 45.0, now=NOW) is None
    assert progress_message(reported, 51.0, now=NOW) is not None
    assert progress_message(reported, 100.0, now=NOW) is None


def test_progress_message_keeps_the_last_message_for_the_result_and_respects_expiry():
    assert progress_message(make_ticket(reply_to=reply(messages_left=1)), 50.0, now=NOW) is None
    assert progress_message(make_ticket(reply_to=reply(expires_in=-1)), 50.0, now=NOW) is None
    assert progress_message(make_ticket(), 50.0, now=NOW) is None  # no reply target
    assert progress_message(make_ticket(reply_to=reply()), None, now=NOW) is None


def test_chat_text_has_status_instance_policy_operation_duration_and_error():
    ok = chat_text(result_from_operation(make_ticket(), done_op(), NOW))
    assert "succeeded" in ok and "web-1 (vm1)" in ok and "pol1" in ok and "op1" in ok and "20m 00s" in ok
    op = done_op(response=None, error=Status(code=13, message="agent error"))
    bad = chat_text(result_from_operation(make_ticket(), op, NOW))
    assert "failed" in bad and "INTERNAL" in bad and "agent error" in bad


# --- emit_result ---------------------------------------------------------------------------------------------


class Sink:
    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.events: list[ResultEvent] = []

    def emit(self, event: ResultEvent) -> None:
        if self.error is not None:
            raise self.error
        self.events.append(event)


def test_emit_delivers_to_every_sink():
    sinks = [Sink("log"), Sink("queue"), Sink("webhook")]
    event = result_from_operation(make_ticket(), done_op(), NOW)
    report = emit_result(event, sinks, Settings())
    assert report.ok and report.delivered == ["log", "queue", "webhook"] and report.event_id == event.id
    assert all(s.events == [event] for s in sinks)


def test_failures_only_skips_succeeded_events_except_for_the_log():
    sinks = [Sink("log"), Sink("queue"), Sink("chat")]
    only_failures = Settings(RESULTS_FAILURES_ONLY="true")
    report = emit_result(result_from_operation(make_ticket(), done_op(), NOW), sinks, only_failures)
    assert report.delivered == ["log"] and report.skipped == ["queue", "chat"]
    failed = timed_out_result(make_ticket(), NOW)
    report = emit_result(failed, sinks, only_failures)
    assert report.delivered == ["log", "queue", "chat"]


def test_a_failing_sink_is_reported_and_does_not_stop_the_others():
    sinks = [Sink("log"), Sink("webhook", SinkError("webhook answered HTTP 500")), Sink("queue", RuntimeError("bug"))]
    sinks.append(Sink("chat", SinkSkipped("nowhere to post")))
    sinks.append(Sink("last"))
    report = emit_result(timed_out_result(make_ticket(), NOW), sinks, Settings())
    assert not report.ok
    assert report.failed == {"webhook": "webhook answered HTTP 500", "queue": "unexpected RuntimeError"}
    assert report.skipped == ["chat"]
    assert report.delivered == ["log", "last"]
