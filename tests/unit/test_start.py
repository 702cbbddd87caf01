"""Starting targets (backups.start) against the fake cloud; queues are a moto SQS server or an in-memory fake."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.sqs import SqsQueue
from backups.errors import HandOffFailed, RequestInvalid
from backups.events import failed_start_event
from backups.handoff import FanoutMessage, FollowupTicket, Freshness, read_fanout
from backups.models import ReplyTarget, TriggerInfo
from backups.ports import QueueError
from backups.report import StartReport
from backups.request import BackupRequest, build_request, read_body
from backups.run import Ports, run_request, start_backups
from backups.schedule import message_max_age
from backups.target import IDEMPOTENCY_NAMESPACE, BackupTarget, Failed, target_key
from settings import Settings
from tests.conftest import drain
from tests.fakes import EPOCH, FakeClock, FakeCloud, FakeQueue, RecordingSink
from ycloud.errors import CloudError

FOLDER = "b1gfolder"
FOLLOWUP = "https://queue.local/followup"
REQUESTS = "https://queue.local/requests"
SECRET = "fanout-test-secret"


def settings(**env: Any) -> Settings:
    base: dict[str, Any] = {"FOLDER_ID": FOLDER, "FOLLOWUP_QUEUE_URL": FOLLOWUP, "REQUEST_QUEUE_URL": REQUESTS}
    base.update(env)
    return Settings.model_validate(base)


def trigger(trigger_id: str = "timer-1", source: str = "yc.timer") -> TriggerInfo:
    return TriggerInfo(source=source, trigger_id=trigger_id)


def record(trigger_id: str, policy_id: str | None, instance_id: str | None, asked: str | None = None) -> BackupTarget:
    return BackupTarget(
        trigger=trigger(trigger_id),
        asked=asked or "",
        policy_id=policy_id,
        compute_instance_id=instance_id,
    )


def idempotency_key(trigger_id: str, policy_id: str, instance_id: str) -> str:
    """Execute's Idempotency-Key, as the target's record derives it."""
    return record(trigger_id, policy_id, instance_id).idempotency_key


def apply_idempotency_key(trigger_id: str, policy_id: str, instance_id: str) -> str:
    return record(trigger_id, policy_id, instance_id).apply_idempotency_key


def fleet(cloud: FakeCloud, n: int, *, labels: dict[str, str] | None = None) -> tuple[str, list[str]]:
    policy = cloud.add_policy("Default daily")
    ids = []
    for _ in range(n):
        vm = cloud.add_instance(labels=labels or {"env": "prod"})
        cloud.apply_now(policy.id, vm.id)
        ids.append(vm.id)
    return policy.id, ids


def run(
    cloud: FakeCloud,
    body: dict[str, Any],
    s: Settings,
    *,
    queue: Any = None,
    trig: TriggerInfo | None = None,
    clock: FakeClock | None = None,
    reply_to: ReplyTarget | None = None,
    from_request_queue: bool = False,
) -> StartReport:
    clock = clock or FakeClock()
    request: BackupRequest | FanoutMessage
    if from_request_queue and body.get("kind") == "fanout":
        request = read_fanout(read_body(body, s), s, Freshness(now=clock.now(), max_age=message_max_age(s)))
    else:
        request = build_request(body, s)
    return start_backups(
        request,
        trig or trigger(),
        cloud=cloud,
        settings=s,
        queue=queue if queue is not None else FakeQueue(),
        clock=clock,
        sleep=clock.sleep,
        reply_to=reply_to,
    )


# --- keys ----------------------------------------------------------------------------------------------


def test_idempotency_key_is_uuid5_of_the_target_key() -> None:
    assert target_key("t", "p", "i") == "t|p|i"
    assert idempotency_key("t", "p", "i") == str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, "t|p|i"))
    assert apply_idempotency_key("t", "p", "i") != idempotency_key("t", "p", "i")
    assert target_key("t", None, None, "instanceName=web") == "t|instanceName=web"


def test_keys_stable_across_redelivery_and_different_across_triggers() -> None:
    cloud = FakeCloud()
    pid, ids = fleet(cloud, 3)
    body = {"computeInstanceIds": ids, "policyId": pid}
    first = run(cloud, body, settings(), trig=trigger("t1"))
    again = run(cloud, body, settings(), trig=trigger("t1"))  # the same trigger, redelivered
    other = run(cloud, body, settings(), trig=trigger("t2"))
    keys = [s.target.idempotency_key for s in first.started]
    assert keys == [s.target.idempotency_key for s in again.started]
    assert [s.operation_id for s in first.started] == [s.operation_id for s in again.started]
    assert not set(keys) & {s.target.idempotency_key for s in other.started}
    # the fake honours the key like the API: 3 backups for t1 (not 6), 3 for t2
    assert len(cloud.execute_log) == 6
    assert [e["idempotencyKey"] for e in cloud.execute_log[:3]] == keys
    assert keys == [idempotency_key("t1", pid, i) for i in ids]


# --- started, tickets ------------------------------------------------------------------------------------


def test_simplest_request_starts_and_sends_a_ticket() -> None:
    cloud, queue, clock = FakeCloud(), FakeQueue(), FakeClock()
    pid, (iid,) = fleet(cloud, 1)
    report = run(cloud, {"policyId": pid, "computeInstanceId": iid}, settings(), queue=queue, clock=clock)
    (started,) = report.started
    assert (started.target.policy_id, started.target.compute_instance_id) == (pid, iid)
    assert started.operation_id == cloud.execute_log[0]["operationId"]
    assert report.tickets_sent == 1 and report.failed == [] and report.retryable == []
    ((url, body, delay),) = queue.sent
    assert (url, delay) == (FOLLOWUP, 30)
    ticket = FollowupTicket.model_validate_json(body)
    assert ticket.operation_id == started.operation_id
    assert ticket.target.trigger.trigger_id == "timer-1"
    assert ticket.attempt == 0
    assert ticket.started_at == EPOCH
    assert ticket.deadline == EPOCH + timedelta(seconds=86400)


def test_tickets_on_a_real_sqs_queue_with_the_delay(sqs: Any, make_queue: Any, sqs_server: str) -> None:
    cloud = FakeCloud()
    pid, _ids = fleet(cloud, 12)
    url = make_queue("followup")
    report = run(
        cloud,
        {"instanceLabels": {"env": "prod"}, "policyId": pid},
        settings(FOLLOWUP_QUEUE_URL=url, FOLLOWUP_FIRST_DELAY_SECONDS="60"),
        queue=SqsQueue(endpoint_url=sqs_server),
    )
    assert report.tickets_sent == 12
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "12"
    assert drain(sqs, url) == []  # not visible yet


def test_tickets_received_with_zero_delay(sqs: Any, make_queue: Any, sqs_server: str) -> None:
    cloud = FakeCloud()
    pid, ids = fleet(cloud, 3)
    url = make_queue("followup")
    reply = ReplyTarget(response_url="https://hooks.slack.com/x", expires_at=datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    run(
        cloud,
        {"computeInstanceIds": ids, "policyId": pid, "correlationId": "corr-9", "requestedBy": "alice"},
        settings(FOLLOWUP_QUEUE_URL=url, FOLLOWUP_FIRST_DELAY_SECONDS="0", FOLLOWUP_DEADLINE_SECONDS="3600"),
        queue=SqsQueue(endpoint_url=sqs_server),
        reply_to=reply,
    )
    tickets = [FollowupTicket.model_validate_json(m["Body"]) for m in drain(sqs, url)]
    assert sorted(t.target.compute_instance_id for t in tickets) == sorted(ids)
    for t in tickets:
        assert t.deadline - t.started_at == timedelta(hours=1)
        assert t.reply_to == reply
        assert (t.target.trigger.correlation_id, t.target.trigger.requested_by) == ("corr-9", "alice")
        assert t.target.folder_id == FOLDER and t.target.instance_name


def test_queue_failure_on_tickets_is_hand_off_failed() -> None:
    cloud, queue = FakeCloud(), FakeQueue()
    queue.fail_with = QueueError("queue down")
    pid, (iid,) = fleet(cloud, 1)
    with pytest.raises(HandOffFailed) as info:
        run(cloud, {"policyId": pid, "computeInstanceId": iid}, settings(), queue=queue)
    assert info.value.http_status == 503
    assert len(info.value.report.started) == 1


# --- dry run -------------------------------------------------------------------------------------------


def test_dry_run_executes_nothing() -> None:
    cloud, queue = FakeCloud(), FakeQueue()
    pid, ids = fleet(cloud, 3)
    missing = cloud.add_instance(labels={"env": "prod"})  # policy not applied: applyIfMissing plans an apply
    report = run(
        cloud,
        {"instanceLabels": {"env": "prod"}, "policyId": pid, "dryRun": True, "applyIfMissing": True},
        settings(FANOUT_THRESHOLD="1"),
        queue=queue,
    )
    assert report.dry_run
    assert {p.target.compute_instance_id for p in report.plan} == {*ids, missing.id}
    assert [p.apply_first for p in report.plan if p.target.compute_instance_id == missing.id] == [True]
    assert all(
        p.target.idempotency_key == idempotency_key("timer-1", pid, p.target.compute_instance_id or "")
        for p in report.plan
    )
    assert cloud.count("policies.execute") == cloud.count("policies.apply") == 0
    assert report.started == [] and report.fanned_out == 0 and queue.sent == []


# --- failures ------------------------------------------------------------------------------------------


def test_agent_offline_is_a_failed_target_others_start() -> None:
    cloud = FakeCloud()
    pid, ids = fleet(cloud, 3)
    cloud.agent_offline.add(ids[1])
    report = run(cloud, {"computeInstanceIds": ids, "policyId": pid, "reason": "pre-upgrade"}, settings())
    assert sorted(s.target.compute_instance_id for s in report.started) == sorted([ids[0], ids[2]])
    (failed,) = report.failed
    assert (failed.error.code, failed.error.grpc_code, failed.target.compute_instance_id) == (
        "AGENT_OFFLINE",
        9,
        ids[1],
    )
    assert "offline" in failed.error.message and "yc backup resource get" in failed.error.message
    data = failed_start_event(failed, source="urn:test").data
    assert data.status == "failed" and data.error is not None and data.error.code == "AGENT_OFFLINE"
    assert (data.policy_id, data.compute_instance_id, data.trigger_id, data.source) == (
        pid,
        ids[1],
        "timer-1",
        "yc.timer",
    )
    assert data.reason == "pre-upgrade" and data.folder_id == FOLDER
    assert failed.target.key == f"timer-1|{pid}|{ids[1]}"


def test_resolution_problems_become_failed_targets() -> None:
    cloud = FakeCloud()
    p = cloud.add_policy("daily")
    vm = cloud.add_instance(name="web-1")
    report = run(cloud, {"computeInstanceId": vm.id, "policyId": p.id}, settings())
    (failed,) = report.failed
    assert failed.error.code == "POLICY_NOT_APPLIED"
    assert "applyIfMissing: true" in failed.error.message
    assert failed.target.instance_name == "web-1" and failed.target.asked == f"computeInstanceId={vm.id}"
    assert cloud.count("policies.execute") == 0
    assert report.tickets_sent == 0


@pytest.mark.parametrize("code", [14, 8, 4, 13])
def test_transient_execute_error_is_retryable_not_failed(code: int) -> None:
    cloud = FakeCloud()
    pid, ids = fleet(cloud, 2)
    cloud.fail(
        "policies.execute",
        CloudError(code, "busy"),
        when=lambda compute_instance_id, **_: compute_instance_id == ids[0],
    )
    report = run(cloud, {"computeInstanceIds": ids, "policyId": pid}, settings())
    assert [s.target.compute_instance_id for s in report.started] == [ids[1]]
    assert report.failed == []
    assert [r.target.compute_instance_id for r in report.retryable] == [ids[0]]
    assert report.needs_redelivery


@pytest.mark.parametrize(("code", "expected"), [(7, "PERMISSION_DENIED"), (5, "NOT_FOUND"), (9, "FAILED_PRECONDITION")])
def test_permanent_execute_errors(code: int, expected: str) -> None:
    cloud = FakeCloud()
    pid, (iid,) = fleet(cloud, 1)
    cloud.fail("policies.execute", CloudError(code, "nope"))
    report = run(cloud, {"computeInstanceId": iid, "policyId": pid}, settings())
    assert [(f.error.code, f.error.grpc_code) for f in report.failed] == [(expected, code)]


# --- applyIfMissing ------------------------------------------------------------------------------------


def test_apply_if_missing_applies_waits_and_executes() -> None:
    cloud, clock = FakeCloud(apply_polls=3), FakeClock()
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    report = run(cloud, {"computeInstanceId": vm.id, "policyId": p.id, "applyIfMissing": True}, settings(), clock=clock)
    (started,) = report.started
    assert started.applied
    assert cloud.count("policies.apply") == 1
    assert cloud.count("operations.get") == 3
    assert clock.slept == [1.0, 2.0, 4.0]  # the injected sleeper, backing off
    assert len(cloud.execute_log) == 1
    assert cloud.apply_log[0]["computeInstanceId"] == vm.id


def test_apply_wait_is_bounded() -> None:
    cloud, clock = FakeCloud(apply_polls=1000), FakeClock()
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    report = run(
        cloud,
        {"computeInstanceId": vm.id, "policyId": p.id, "applyIfMissing": True},
        settings(APPLY_WAIT_SECONDS="20"),
        clock=clock,
    )
    assert report.started == [] and report.failed == []
    assert [r.code for r in report.retryable] == ["POLICY_APPLYING"]
    assert sum(clock.slept) == pytest.approx(20)
    assert cloud.count("policies.execute") == 0


def test_apply_failure_is_reported() -> None:
    cloud = FakeCloud()
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    cloud.unregistered.add(vm.id)
    report = run(cloud, {"computeInstanceId": vm.id, "policyId": p.id, "applyIfMissing": True}, settings())
    (failed,) = report.failed
    assert failed.error.code == "NOT_FOUND" and "applying policy" in failed.error.message


def test_failed_apply_operation_is_reported() -> None:
    cloud = FakeCloud(apply_polls=2)
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    original = cloud.operations.get

    def get(operation_id: str) -> Any:
        cloud.fail_operation(operation_id, 9, "agent too old")
        return original(operation_id)

    cloud.operations.get = get  # type: ignore[method-assign]
    report = run(cloud, {"computeInstanceId": vm.id, "policyId": p.id, "applyIfMissing": True}, settings())
    (failed,) = report.failed
    assert failed.error.code == "FAILED_PRECONDITION" and "agent too old" in failed.error.message


# --- concurrency and API calls -----------------------------------------------------------------------------


def test_concurrency_bound_respected() -> None:
    cloud = FakeCloud(execute_delay=0.03)
    pid, ids = fleet(cloud, 24)
    report = run(
        cloud, {"computeInstanceIds": ids, "policyId": pid}, settings(EXECUTE_CONCURRENCY="4", FANOUT_THRESHOLD="100")
    )
    assert len(report.started) == 24
    assert 1 < cloud.max_in_flight <= 4


def test_api_calls_for_a_thousand_labelled_instances() -> None:
    cloud = FakeCloud()
    _pid, _ids = fleet(cloud, 1000, labels={"backup": "nightly"})
    for _ in range(300):
        cloud.add_instance(labels={"backup": "never"})
    report = run(
        cloud,
        {"instanceLabels": {"backup": "nightly"}, "policyName": "Default daily"},
        settings(FANOUT_THRESHOLD="5000", EXECUTE_CONCURRENCY="16"),
    )
    assert len(report.started) == 1000
    assert cloud.count("policies.execute") == 1000
    listings = cloud.calls - 1000
    assert listings == 2 + 1 + 1  # two instance pages, policies once, applications once


def test_api_calls_without_a_policy() -> None:
    cloud = FakeCloud()
    fleet(cloud, 1000, labels={"backup": "nightly"})
    run(cloud, {"instanceLabels": {"backup": "nightly"}}, settings(FANOUT_THRESHOLD="5000"))
    # one instance page, the folder's policies once, the applications of the one policy once
    assert cloud.calls - cloud.count("policies.execute") == 3
    assert [kw["folder_id"] for m, kw in cloud.call_log if m == "policies.list"] == [FOLDER]
    assert cloud.count("policies.list_applications") == 1


# --- fan-out -------------------------------------------------------------------------------------------


def test_fan_out_above_threshold(sqs: Any, make_queue: Any, sqs_server: str) -> None:
    cloud = FakeCloud()
    pid, ids = fleet(cloud, 8)
    requests_url, followup_url = make_queue("requests"), make_queue("followup")
    s = settings(
        FANOUT_THRESHOLD="5",
        HANDOFF_SECRET=SECRET,
        REQUEST_QUEUE_URL=requests_url,
        FOLLOWUP_QUEUE_URL=followup_url,
        FOLLOWUP_FIRST_DELAY_SECONDS="0",
    )
    queue = SqsQueue(endpoint_url=sqs_server)
    report = run(
        cloud,
        {"instanceLabels": {"env": "prod"}, "policyName": "Default daily", "correlationId": "c-1"},
        s,
        queue=queue,
        trig=trigger("evt-42"),
    )
    assert report.fanned_out == 8 and report.started == []
    assert cloud.count("policies.execute") == 0
    messages = drain(sqs, requests_url)
    bodies = [json.loads(m["Body"]) for m in messages]
    assert sorted(b["target"]["computeInstanceId"] for b in bodies) == sorted(ids)
    assert {
        (
            b["kind"],
            b["target"]["trigger"]["triggerId"],
            b["target"]["trigger"]["source"],
            b["target"]["policyId"],
            b["target"]["trigger"]["correlationId"],
        )
        for b in bodies
    } == {("fanout", "evt-42", "yc.timer", pid, "c-1")}
    assert all(b["signature"].startswith("v1=") for b in bodies)

    # each child executes exactly one target with the key inline execution would have used, one API call each
    before = cloud.calls
    for message in messages:
        child = run(
            cloud,
            json.loads(message["Body"]),
            s,
            queue=queue,
            trig=trigger(message["MessageId"], "yc.message-queue"),
            from_request_queue=True,
        )
        (started,) = child.started
        assert started.target.idempotency_key == idempotency_key(
            "evt-42", pid, started.target.compute_instance_id or ""
        )
        assert child.trigger.trigger_id == "evt-42" and child.trigger.source == "yc.timer"
    assert cloud.calls - before == 8
    tickets = [FollowupTicket.model_validate_json(m["Body"]) for m in drain(sqs, followup_url)]
    assert sorted(t.target.compute_instance_id for t in tickets) == sorted(ids)
    assert {t.target.trigger.trigger_id for t in tickets} == {"evt-42"}


def test_fan_out_keeps_failed_and_skipped_in_the_parent() -> None:
    cloud, queue = FakeCloud(), FakeQueue()
    pid, _ids = fleet(cloud, 4)
    cloud.add_instance(labels={"env": "prod", "backup-opt-out": "yes"})
    cloud.add_instance(labels={"env": "prod"})  # not applied
    report = run(
        cloud,
        {"instanceLabels": {"env": "prod"}, "policyId": pid},
        settings(FANOUT_THRESHOLD="2", HANDOFF_SECRET=SECRET),
        queue=queue,
    )
    assert report.fanned_out == 4
    assert len(report.skipped) == 1 and [f.error.code for f in report.failed] == ["POLICY_NOT_APPLIED"]
    assert [url for url, _, _ in queue.sent] == [REQUESTS] * 4


def test_fan_out_child_with_apply() -> None:
    cloud = FakeCloud(apply_polls=1)
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    target = BackupTarget(
        trigger=trigger("evt-1"), asked=f"computeInstanceId={vm.id}", compute_instance_id=vm.id, policy_id=p.id
    )
    body = FanoutMessage(target=target, apply_first=True).signed(SECRET).to_json_dict()
    report = run(cloud, body, settings(HANDOFF_SECRET=SECRET), from_request_queue=True)
    assert [s.applied for s in report.started] == [True]


def test_without_request_queue_executes_inline() -> None:
    cloud = FakeCloud()
    pid, ids = fleet(cloud, 6)
    report = run(
        cloud,
        {"computeInstanceIds": ids, "policyId": pid},
        settings(FANOUT_THRESHOLD="2", HANDOFF_SECRET=SECRET, REQUEST_QUEUE_URL=""),
    )
    assert len(report.started) == 6 and report.fanned_out == 0


def test_without_handoff_secret_executes_inline() -> None:
    cloud, queue = FakeCloud(), FakeQueue()
    pid, ids = fleet(cloud, 6)
    report = run(cloud, {"computeInstanceIds": ids, "policyId": pid}, settings(FANOUT_THRESHOLD="2"), queue=queue)
    assert len(report.started) == 6 and report.fanned_out == 0
    assert queue.bodies(REQUESTS) == [] and len(queue.bodies(FOLLOWUP)) == 6


# --- trigger identity and logs -------------------------------------------------------------------------


def test_request_identity_fills_trigger_info() -> None:
    cloud = FakeCloud()
    pid, (iid,) = fleet(cloud, 1)
    report = run(
        cloud,
        {"computeInstanceId": iid, "policyId": pid, "correlationId": "c-7", "requestedBy": "bob", "reason": "r"},
        settings(),
        trig=TriggerInfo(source="yc.http", trigger_id="h-1", requested_by="slack:U1"),
    )
    t = report.trigger
    assert (t.trigger_id, t.correlation_id, t.requested_by, t.reason) == ("h-1", "c-7", "slack:U1", "r")


class RecordingLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _rec(self, level: str, msg: str, extra: dict[str, Any] | None = None) -> None:
        reserved = {"message", "asctime", *logging.makeLogRecord({}).__dict__}
        assert not reserved & set(extra or {}), "extra keys that the logging module refuses"
        self.lines.append((level, msg, extra or {}))

    def info(self, msg: str, extra: dict[str, Any] | None = None) -> None:
        self._rec("info", msg, extra)

    def warning(self, msg: str, extra: dict[str, Any] | None = None) -> None:
        self._rec("warning", msg, extra)

    def error(self, msg: str, extra: dict[str, Any] | None = None) -> None:
        self._rec("error", msg, extra)


def test_one_log_line_per_decision_with_correlation_id(monkeypatch: pytest.MonkeyPatch) -> None:
    import backups.run
    import backups.start

    logger = RecordingLogger()
    monkeypatch.setattr(backups.run, "get_logger", lambda: logger)
    monkeypatch.setattr(backups.start, "get_logger", lambda: logger)
    cloud = FakeCloud()
    pid, ids = fleet(cloud, 2)
    cloud.add_instance(labels={"env": "prod", "backup-opt-out": "true"})
    cloud.agent_offline.add(ids[0])
    run(cloud, {"instanceLabels": {"env": "prod"}, "policyId": pid, "correlationId": "corr-1"}, settings())
    messages = [m for _, m, _ in logger.lines]
    assert messages.count("resolved targets") == 1
    assert messages.count("skipped target") == 1
    assert messages.count("target failed") == 1
    assert messages.count("started backup") == 1
    assert messages.count("tickets sent") == 1
    assert all(extra["correlationId"] == "corr-1" for _, _, extra in logger.lines)


def test_request_model_roundtrip_is_a_backup_request() -> None:
    r = build_request({"computeInstanceId": "fhm1", "policyId": "cdg1"}, settings())
    assert isinstance(r, BackupRequest)


def test_target_key_agrees_with_results() -> None:
    # one record derives both keys: Execute's Idempotency-Key and the result event's id
    for args in [
        ("t", "p", "i", None),
        ("t", None, "i", "x"),
        ("t", None, None, "instanceName=web"),
        ("t", "p", None, None),
    ]:
        t = record(*args)
        assert t.key == target_key(*args)
        event = failed_start_event(Failed(target=t, error={"code": "X", "message": "x"}, finished_at=EPOCH))
        assert event.id == t.result_event_id


# --- forged fan-out messages -----------------------------------------------------------------------------


def _ports(cloud: FakeCloud, s: Settings, queue: FakeQueue, sink: RecordingSink) -> Ports:
    clock = FakeClock()
    return Ports(cloud=cloud, settings=s, queue=queue, sinks=lambda _reply: [sink], clock=clock, sleep=clock.sleep)


def _fanout(cloud: FakeCloud) -> tuple[FanoutMessage, str, str]:
    pid, (iid,) = fleet(cloud, 1)
    target = BackupTarget(
        trigger=trigger("evt-9"), asked=f"computeInstanceId={iid}", compute_instance_id=iid, policy_id=pid
    )
    return FanoutMessage(target=target), pid, iid


def _tampered(cloud: FakeCloud) -> dict[str, Any]:
    message, _pid, _iid = _fanout(cloud)
    other = cloud.add_instance()
    cloud.apply_now(message.target.policy_id or "", other.id)
    body = message.signed(SECRET).to_json_dict()
    body["target"]["computeInstanceId"] = other.id  # signed for one instance, sent for another
    return body


@pytest.mark.parametrize(
    ("make", "secret", "words"),
    [
        (lambda c: _fanout(c)[0].to_json_dict(), SECRET, "signature"),  # unsigned
        (lambda c: _fanout(c)[0].signed("not-our-secret").to_json_dict(), SECRET, "signature"),  # forged
        (_tampered, SECRET, "signature"),
        (lambda c: _fanout(c)[0].signed(SECRET).to_json_dict(), None, "HANDOFF_SECRET"),  # no secret: none accepted
        (
            lambda c: {
                "kind": "fanout",
                "triggerId": "t",
                "source": "yc.timer",
                "computeInstanceId": "fhm1",
                "policyId": "p",
            },
            SECRET,
            "invalid fan-out message",
        ),  # version 1 (unsigned) shape
    ],
    ids=["unsigned", "forged", "tampered", "no-secret", "v1"],
)
def test_forged_fanout_message_is_refused_and_starts_nothing(make: Any, secret: str | None, words: str) -> None:
    cloud, queue, sink = FakeCloud(), FakeQueue(), RecordingSink("log")
    body = make(cloud)
    s = settings(**({"HANDOFF_SECRET": secret} if secret else {}))
    before = cloud.calls
    with pytest.raises(RequestInvalid, match=words):
        run_request(
            json.dumps(body), trigger("m-1", "yc.message-queue"), _ports(cloud, s, queue, sink), from_request_queue=True
        )
    assert cloud.calls == before  # not a single API call: nothing resolved, nothing started
    assert cloud.execute_log == [] and cloud.apply_log == [] and queue.sent == []
    # the refusal is reported as the queue message that carried it, never as what the message claims
    (event,) = sink.events
    assert event.data.status == "failed" and event.data.error is not None
    assert event.data.error.code == "INVALID_REQUEST"
    assert (event.data.trigger_id, event.data.compute_instance_id, event.data.target) == ("m-1", None, "request")


def test_signed_fanout_message_from_the_request_queue_starts_its_target() -> None:
    cloud, queue, sink = FakeCloud(), FakeQueue(), RecordingSink("log")
    message, pid, iid = _fanout(cloud)
    body = message.signed(SECRET).model_dump_json(by_alias=True, exclude_none=True)
    ports = _ports(cloud, settings(HANDOFF_SECRET=SECRET), queue, sink)
    report = run_request(body, trigger("m-1", "yc.message-queue"), ports, from_request_queue=True)
    assert [(s.target.policy_id, s.target.compute_instance_id) for s in report.started] == [(pid, iid)]
    assert report.trigger.trigger_id == "evt-9"
    # the same body from anywhere but the request queue is not a request
    with pytest.raises(RequestInvalid, match="request queue"):
        run_request(body, trigger("h-1", "yc.http"), ports)
    assert len(cloud.execute_log) == 1
