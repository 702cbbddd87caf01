"""follow(): one check of a ticket's operation, then reschedule or finish. parse_ticket(): poison messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from backups.followup import FollowOutcome, follow
from backups.handoff import FollowupTicket, MalformedTicket, parse_ticket
from backups.models import ReplyTarget, ResultEvent, TriggerInfo
from backups.ports import QueueError, SinkError
from backups.target import BackupTarget
from settings import Settings
from ycloud.errors import CloudError
from ycloud.models import ExecuteMetadata, Operation, Status

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
QUEUE_URL = "http://queue.local/000000000000/followup"
SETTINGS = Settings(FOLLOWUP_QUEUE_URL=QUEUE_URL, RESULT_EVENT_SOURCE="urn:test")
# Error codes as the emulator's failure modes and the API use them.
INTERNAL, FAILED_PRECONDITION, NOT_FOUND, PERMISSION_DENIED = 13, 9, 5, 7
UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED = 14, 8, 4


# --- small fakes ---------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


class Operations:
    def __init__(self) -> None:
        self.store: dict[str, Operation] = {}
        self.errors: list[CloudError] = []  # raised by the next calls, in order
        self.calls = 0

    def get(self, operation_id: str) -> Operation:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        if operation_id not in self.store:
            raise CloudError(NOT_FOUND, f"Operation {operation_id} not found")
        return self.store[operation_id].model_copy(deep=True)


class Cloud:
    def __init__(self) -> None:
        self.operations = Operations()

    def put(
        self,
        *,
        done: bool = False,
        progress: float | None = None,
        error: Status | None = None,
        policy_id: str = "pol1",
        compute_instance_id: str = "vm1",
    ) -> Operation:
        op = Operation(
            id="op1",
            done=done,
            response={} if done and error is None else None,
            error=error,
            created_at=START,
            modified_at=START + timedelta(minutes=20),
            metadata=ExecuteMetadata(
                policy_id=policy_id, compute_instance_id=compute_instance_id, progress_percentage=progress
            ),
        )
        self.operations.store[op.id] = op
        return op


class Queue:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, int]] = []
        self.fail = fail

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        if self.fail:
            raise QueueError("queue refused the message: ServiceUnavailable: try later")
        self.sent.append((queue_url, body, delay_seconds))
        return f"m{len(self.sent)}"

    def send_many(self, queue_url: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> list[str]:
        return [self.send(queue_url, b, delay_seconds=delay_seconds) for b in bodies]


class Sink:
    def __init__(self, name: str = "log", error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.events: list[ResultEvent] = []

    def emit(self, event: ResultEvent) -> None:
        if self.error:
            raise self.error
        self.events.append(event)


class Chat(Sink):
    def __init__(self) -> None:
        super().__init__("chat")
        self.progress: list[str] = []

    def post_progress(self, text: str) -> bool:
        self.progress.append(text)
        return True


def make_ticket(**kw) -> FollowupTicket:
    fields = {
        "operation_id": "op1",
        "policy_id": "pol1",
        "compute_instance_id": "vm1",
        "instance_name": "web-1",
        "trigger": TriggerInfo(source="yc.timer", trigger_id="evt-1"),
        "started_at": START,
        "deadline": START + timedelta(hours=24),
    }
    fields.update(kw)
    target = {k: fields.pop(k) for k in TARGET_FIELDS if k in fields}
    asked = f"computeInstanceId={target['compute_instance_id']}"
    return FollowupTicket(target=BackupTarget(asked=asked, **target), **fields)


TARGET_FIELDS = ("trigger", "policy_id", "compute_instance_id", "instance_name", "folder_id")


def run(
    ticket: FollowupTicket,
    cloud: Cloud,
    *,
    at: float = 600,
    queue: Queue | None = None,
    sinks: list | None = None,
    settings: Settings = SETTINGS,
) -> tuple[FollowOutcome, Queue, list]:
    queue = queue if queue is not None else Queue()
    sinks = sinks if sinks is not None else [Sink()]
    outcome = follow(
        ticket,
        cloud=cloud,
        queue=queue,
        settings=settings,
        clock=Clock(START + timedelta(seconds=at)),
        sinks=sinks,
    )
    return outcome, queue, sinks


# --- still running -----------------------------------------------------------------------------------------


def test_running_operation_is_rescheduled_with_the_next_delay():
    cloud = Cloud()
    cloud.put(progress=30.0)
    outcome, queue, sinks = run(make_ticket(attempt=2), cloud, at=600)
    assert outcome.action == "rescheduled" and not outcome.needs_redelivery
    assert outcome.event is None and sinks[0].events == []
    [(url, body, delay)] = queue.sent
    assert url == QUEUE_URL and delay == outcome.delay_seconds
    assert SETTINGS.followup_min_delay_seconds <= delay <= 900
    sent = parse_ticket(body)
    assert sent == outcome.ticket
    assert sent.attempt == 3 and sent.transient_errors == 0
    assert [(s.at, s.percent) for s in sent.progress] == [(START + timedelta(seconds=600), 30.0)]


def test_progress_is_posted_on_a_quarter_and_the_message_counted():
    cloud = Cloud()
    cloud.put(progress=30.0)
    reply = ReplyTarget(response_url="https://hooks.slack.com/x", expires_at=START + timedelta(minutes=30))
    chat = Chat()
    outcome, _, _ = run(make_ticket(reply_to=reply), cloud, at=300, sinks=[Sink(), chat])
    assert outcome.progress_posted and len(chat.progress) == 1 and "30%" in chat.progress[0]
    assert outcome.ticket.reply_to is not None and outcome.ticket.reply_to.messages_left == 4
    assert outcome.ticket.last_reported_percent == 30.0
    # 40%: no new quarter, nothing posted.
    cloud.put(progress=40.0)
    again, _, _ = run(outcome.ticket, cloud, at=400, sinks=[Sink(), chat])
    assert not again.progress_posted and len(chat.progress) == 1


# --- finished ----------------------------------------------------------------------------------------------


def test_done_without_error_is_success_and_goes_to_every_sink():
    cloud = Cloud()
    cloud.put(done=True, progress=100)
    sinks = [Sink("log"), Sink("queue")]
    outcome, queue, _ = run(make_ticket(attempt=5), cloud, at=1300, sinks=sinks)
    assert outcome.action == "finished" and queue.sent == []
    assert outcome.event is not None and outcome.emit is not None and outcome.emit.ok
    assert outcome.event.type == "cloud.yandex.backup.execute.succeeded"
    assert outcome.event.source == "urn:test"
    assert outcome.event.data.polls == 6
    assert all(s.events == [outcome.event] for s in sinks)


@pytest.mark.parametrize(
    ("code", "name", "message"),
    [
        (INTERNAL, "INTERNAL", "backup failed: the agent reported an error"),
        (FAILED_PRECONDITION, "FAILED_PRECONDITION", "agent is offline"),
    ],
)
def test_done_with_error_is_failure_with_code_name_and_message(code, name, message):
    cloud = Cloud()
    cloud.put(done=True, error=Status(code=code, message=message))
    outcome, _, _ = run(make_ticket(), cloud)
    assert outcome.action == "finished" and outcome.event is not None
    assert outcome.event.type == "cloud.yandex.backup.execute.failed"
    error = outcome.event.data.error
    assert error is not None and (error.code, error.grpc_code, error.message) == (name, code, message)


def test_error_reported_before_done_ends_as_failure():
    cloud = Cloud()
    cloud.put(done=False, progress=40.0, error=Status(code=INTERNAL, message="rolling back"))
    outcome, queue, _ = run(make_ticket(), cloud)
    assert outcome.action == "finished" and queue.sent == []
    assert outcome.event is not None and outcome.event.data.status == "failed"


def test_past_the_deadline_ends_as_timed_out():
    cloud = Cloud()
    cloud.put(progress=50.0)
    ticket = make_ticket(deadline=START + timedelta(hours=1))
    outcome, queue, _ = run(ticket, cloud, at=3601)
    assert outcome.action == "finished" and queue.sent == []
    assert outcome.event is not None and outcome.event.data.status == "timed_out"
    assert outcome.event.type == "cloud.yandex.backup.execute.timed_out"


def test_finished_past_the_deadline_is_still_reported_as_it_ended():
    cloud = Cloud()
    cloud.put(done=True)
    outcome, _, _ = run(make_ticket(deadline=START + timedelta(hours=1)), cloud, at=3700)
    assert outcome.event is not None and outcome.event.data.status == "succeeded"


@pytest.mark.parametrize(("code", "name"), [(NOT_FOUND, "NOT_FOUND"), (PERMISSION_DENIED, "PERMISSION_DENIED")])
def test_permanent_get_errors_end_the_ticket_as_failed(code, name):
    cloud = Cloud()
    cloud.operations.errors.append(CloudError(code, "no access to operation op1"))
    outcome, queue, _ = run(make_ticket(), cloud)
    assert outcome.action == "finished" and queue.sent == []
    assert outcome.error is not None and outcome.error.code == code
    assert outcome.event is not None and outcome.event.data.error is not None
    assert outcome.event.data.error.code == name and outcome.event.data.error.grpc_code == code


def test_an_unknown_operation_is_not_found():
    outcome, _, _ = run(make_ticket(operation_id="gone"), Cloud())
    assert outcome.event is not None and outcome.event.data.error is not None
    assert outcome.event.data.error.code == "NOT_FOUND"


# --- transient errors: retried, not finished -----------------------------------------------------------------


@pytest.mark.parametrize("code", [UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, INTERNAL])
def test_transient_get_errors_reschedule_with_backoff_and_never_finish(code):
    cloud = Cloud()
    cloud.put(progress=20.0)
    cloud.operations.errors.extend([CloudError(code, "try again"), CloudError(code, "try again")])
    sink = Sink()
    first, queue, _ = run(make_ticket(), cloud, at=600, sinks=[sink])
    assert first.action == "rescheduled" and first.error is not None and first.error.transient
    assert first.event is None and sink.events == []
    assert first.delay_seconds == 15 and first.ticket.transient_errors == 1
    second, _, _ = run(parse_ticket(queue.sent[-1][1]), cloud, at=615, queue=queue, sinks=[sink])
    assert second.action == "rescheduled" and second.delay_seconds == 30 and second.ticket.transient_errors == 2
    # The API is back: the count resets and the normal schedule resumes.
    third, _, _ = run(parse_ticket(queue.sent[-1][1]), cloud, at=645, queue=queue, sinks=[sink])
    assert third.action == "rescheduled" and third.error is None and third.ticket.transient_errors == 0
    assert third.ticket.attempt == 3
    assert sink.events == []


def test_transient_error_retry_lands_just_past_the_deadline():
    cloud = Cloud()
    cloud.operations.errors.append(CloudError(UNAVAILABLE, "down"))
    ticket = make_ticket(deadline=START + timedelta(seconds=605), transient_errors=5)
    outcome, _, _ = run(ticket, cloud, at=600)
    assert outcome.action == "rescheduled" and outcome.delay_seconds == SETTINGS.followup_min_delay_seconds


def test_transient_error_past_the_deadline_times_out():
    cloud = Cloud()
    cloud.operations.errors.append(CloudError(UNAVAILABLE, "down"))
    outcome, _, _ = run(make_ticket(deadline=START + timedelta(seconds=60)), cloud, at=600)
    assert outcome.action == "finished" and outcome.event is not None
    assert outcome.event.data.status == "timed_out"


# --- what the caller decides on ------------------------------------------------------------------------------


def test_ticket_not_sent_back_asks_for_redelivery():
    cloud = Cloud()
    cloud.put(progress=10.0)
    outcome, _, _ = run(make_ticket(), cloud, queue=Queue(fail=True))
    assert outcome.action == "retry" and outcome.needs_redelivery
    assert "not sent back" in outcome.reason


def test_a_sink_failure_asks_for_redelivery_and_the_redelivered_ticket_yields_the_same_id():
    cloud = Cloud()
    cloud.put(done=True)
    ticket = make_ticket()
    broken = Sink("webhook", SinkError("result webhook at hooks.example answered HTTP 500"))
    first, _, _ = run(ticket, cloud, at=1300, sinks=[Sink("log"), broken])
    assert first.action == "finished" and first.needs_redelivery
    assert first.emit is not None and list(first.emit.failed) == ["webhook"]
    again, _, _ = run(ticket, cloud, at=1400, sinks=[Sink("log")])
    assert not again.needs_redelivery
    assert first.event is not None and again.event is not None and first.event.id == again.event.id


def test_duplicate_tickets_produce_the_same_event_id():
    cloud = Cloud()
    cloud.put(done=True, error=Status(code=INTERNAL, message="boom"))
    ticket = make_ticket()
    duplicate = parse_ticket(ticket.body())
    a, _, _ = run(ticket, cloud, at=1300)
    b, _, _ = run(duplicate, cloud, at=1500)
    assert a.event is not None and b.event is not None and a.event.id == b.event.id


def test_missing_followup_queue_is_a_configuration_error():
    cloud = Cloud()
    cloud.put(progress=10.0)
    with pytest.raises(RuntimeError, match="FOLLOWUP_QUEUE_URL"):
        run(make_ticket(), cloud, settings=Settings())


# --- parse_ticket --------------------------------------------------------------------------------------------


def test_parse_ticket_round_trip():
    ticket = make_ticket(
        reply_to=ReplyTarget(response_url="https://hooks.slack.com/a", expires_at=START + timedelta(minutes=30))
    )
    assert parse_ticket(ticket.body()) == ticket
    assert parse_ticket(ticket.body().encode()) == ticket


SECRET_URL = "https://hooks.slack.com/commands/T1/2/s3cr3tT0ken"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"kind": "request"}), "not a follow-up ticket"),
        (json.dumps({"kind": "followup", "version": 7}), "unsupported"),
        (json.dumps({"kind": "followup", "operationId": "op1"}), "invalid follow-up ticket"),
        (
            json.dumps(
                {
                    "kind": "followup",
                    "operationId": "op1",
                    "policyId": "p",
                    "computeInstanceId": "i",
                    "trigger": {"source": "slack", "triggerId": "t"},
                    "startedAt": "yesterday",
                    "deadline": "2026-01-01T00:00:00Z",
                    "replyTo": {"responseUrl": SECRET_URL, "expiresAt": "soon"},
                }
            ),
            "startedAt",
        ),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_tickets_are_refused_clearly_without_echoing_the_body(body, words):
    with pytest.raises(MalformedTicket) as info:
        parse_ticket(body)
    assert words in str(info.value)
    assert "s3cr3tT0ken" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_malformed_v2_ticket_is_refused_without_echoing_the_body():
    ticket = make_ticket(
        reply_to=ReplyTarget(response_url=SECRET_URL, expires_at=START + timedelta(minutes=30))
    ).to_json_dict()
    ticket["startedAt"] = "yesterday"
    with pytest.raises(MalformedTicket, match="startedAt") as info:
        parse_ticket(json.dumps(ticket))
    assert "s3cr3tT0ken" not in str(info.value)


# --- version 1 tickets, forged tickets -----------------------------------------------------------------------


def v1_body(**kw) -> str:
    """A ticket as version 1 wrote it: the target's fields flat in the ticket, no version."""
    fields = {
        "kind": "followup",
        "operationId": "op1",
        "policyId": "pol1",
        "computeInstanceId": "vm1",
        "instanceName": "web-1",
        "folderId": "folder1",
        "trigger": {"source": "yc.timer", "triggerId": "evt-1"},
        "startedAt": "2026-01-01T12:00:00Z",
        "deadline": "2026-01-02T12:00:00Z",
        "attempt": 3,
        "transientErrors": 1,
    }
    fields.update(kw)
    return json.dumps(fields)


def test_a_v1_ticket_is_migrated_by_parse_ticket():
    ticket = parse_ticket(v1_body())
    assert ticket.version == 2
    assert ticket.target == BackupTarget(
        trigger=TriggerInfo(source="yc.timer", trigger_id="evt-1"),
        asked="computeInstanceId=vm1",
        policy_id="pol1",
        compute_instance_id="vm1",
        instance_name="web-1",
        folder_id="folder1",
    )
    assert (ticket.operation_id, ticket.started_at, ticket.deadline) == ("op1", START, START + timedelta(days=1))
    assert (ticket.attempt, ticket.transient_errors) == (3, 1)
    # written back as version 2, and the same target as a version 2 ticket: the same result event id
    sent = json.loads(ticket.body())
    assert sent["version"] == 2 and sent["target"]["computeInstanceId"] == "vm1" and "computeInstanceId" not in sent
    assert parse_ticket(ticket.body()) == ticket
    cloud = Cloud()
    cloud.put(done=True)
    migrated, _, _ = run(ticket, cloud, at=1300)
    native, _, _ = run(make_ticket(folder_id="folder1"), cloud, at=1300)
    assert migrated.event is not None and native.event is not None and migrated.event.id == native.event.id
    assert migrated.event.data.status == "succeeded"


def test_a_v1_ticket_with_an_explicit_version_is_migrated_too():
    assert parse_ticket(v1_body(version=1)) == parse_ticket(v1_body())


@pytest.mark.parametrize(
    ("running", "metadata"),
    [
        (False, {"compute_instance_id": "vm2"}),
        (False, {"policy_id": "pol2"}),
        (True, {"compute_instance_id": "vm2"}),
    ],
    ids=["done-other-instance", "done-other-policy", "running-other-instance"],
)
def test_a_ticket_whose_operation_metadata_differs_ends_in_a_failed_ticket_mismatch(running, metadata):
    cloud = Cloud()
    cloud.put(done=not running, progress=40.0 if running else 100.0, **metadata)
    sink = Sink()
    outcome, queue, _ = run(make_ticket(), cloud, at=1300, sinks=[sink])
    assert outcome.action == "finished" and queue.sent == []  # never a success, never followed further
    assert outcome.event is not None and sink.events == [outcome.event]
    assert outcome.event.data.status == "failed"
    assert outcome.event.type == "cloud.yandex.backup.execute.failed"
    error = outcome.event.data.error
    assert error is not None and error.code == "TICKET_MISMATCH" and error.grpc_code is None
    assert "op1" in error.message and "vm1" in error.message and "pol1" in error.message
    # reported as the ticket's target (its event id), not as what the operation is about
    assert outcome.event.data.compute_instance_id == "vm1"
    assert outcome.event.id == make_ticket().target.result_event_id
    assert cloud.operations.calls == 1


@pytest.mark.parametrize(
    "body",
    [
        v1_body(operationId="../x"),
        json.dumps(make_ticket().to_json_dict() | {"operationId": "../x"}),
        json.dumps(make_ticket().to_json_dict() | {"operationId": "op1/../../x"}),
        v1_body(computeInstanceId="../x"),
        v1_body(policyId="../x"),
    ],
    ids=["v1-operation", "v2-operation", "v2-operation-suffix", "v1-instance", "v1-policy"],
)
def test_a_ticket_with_a_path_in_an_id_is_refused_before_any_call(body):
    cloud = Cloud()
    cloud.put(done=True)
    with pytest.raises(MalformedTicket, match="invalid follow-up ticket") as info:
        parse_ticket(body)
    assert "../x" not in str(info.value)
    assert cloud.operations.calls == 0
    # and a ticket cannot be built with one either, so follow() never sees it
    with pytest.raises(ValueError):
        make_ticket(operation_id="../x")
