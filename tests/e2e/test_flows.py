"""Whole flows through LocalPlatform: trigger -> follow-up -> result event, on both platform shapes, and each sink.

The trigger is a timer on Yandex and an EventBridge schedule on AWS; the follow-up queue and the request queue
(fan-out) are delivered to the handlers as the platform's queue trigger events.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from adapters.sinks import verify_signature
from backups.target import result_event_id, target_key
from local.emulator.seed import (
    DEMO_FOLDER_ID,
    INSTANCE_FLAKY,
    INSTANCE_NO_POLICY,
    INSTANCE_OFFLINE,
    INSTANCE_OPT_OUT,
    INSTANCE_PROD_DB,
    INSTANCE_PROD_WEB,
    INSTANCE_TWO_POLICIES,
    POLICY_DAILY,
)
from tests.e2e.conftest import Harness, Receiver, ShiftedClock, load_event

BOTH = pytest.mark.parametrize("platform_kind", ["yandex", "aws"])
REQUEST = {"computeInstanceId": INSTANCE_PROD_DB, "policyId": POLICY_DAILY, "reason": "e2e flow"}
CLOUDEVENT_ATTRIBUTES = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}


def schedule_event(kind: str, request: dict[str, Any], trigger_id: str) -> tuple[dict[str, Any], str, str]:
    """The platform's scheduled trigger carrying `request`; returns (event, source, trigger id)."""
    if kind == "yandex":
        event = load_event("yc-timer")
        event["messages"][0]["event_metadata"]["event_id"] = trigger_id
        event["messages"][0]["details"]["payload"] = json.dumps(request)
        return event, "yc.timer", trigger_id
    event = load_event("aws-eventbridge-schedule")
    event["id"] = trigger_id
    event["detail"] = copy.deepcopy(request)
    return event, "aws.eventbridge", trigger_id


def start(h: Harness, kind: str, request: dict[str, Any] = REQUEST, trigger_id: str = "flow-1") -> tuple[Any, str, str]:
    event, source, tid = schedule_event(kind, request, trigger_id)
    return h.trigger(event), source, tid


def no_leftovers(h: Harness) -> None:
    assert h.invocation_errors == []
    for name in ("requests", "followups", "results"):
        assert h.platform.drain(name, dead_letter=True) == []


# --- the outcomes --------------------------------------------------------------------------------------------


@BOTH
def test_success(e2e: Harness, platform_kind: str) -> None:
    reply, source, tid = start(e2e, platform_kind)
    [execute] = e2e.executes()
    assert reply["started"][0]["operationId"] == execute["operationId"]

    [event] = e2e.run_until_results(1, settle=True)

    assert set(event) >= CLOUDEVENT_ATTRIBUTES
    assert event["specversion"] == "1.0"
    assert event["id"] == result_event_id(target_key(tid, POLICY_DAILY, INSTANCE_PROD_DB))
    assert event["source"] == "urn:yc-backup-runner"
    assert event["type"] == "cloud.yandex.backup.execute.succeeded"
    assert event["subject"] == INSTANCE_PROD_DB
    assert event["datacontenttype"] == "application/json"
    data = event["data"]
    assert data["status"] == "succeeded" and "error" not in data
    assert data["operationId"] == execute["operationId"]
    assert data["policyId"] == POLICY_DAILY and data["computeInstanceId"] == INSTANCE_PROD_DB
    assert data["instanceName"] == "prod-db-1" and data["folderId"] == DEMO_FOLDER_ID
    assert data["source"] == source and data["triggerId"] == tid and data["reason"] == "e2e flow"
    assert data["startedAt"] <= data["finishedAt"] == event["time"]
    assert data["durationSeconds"] >= 0 and data["polls"] >= 1
    assert len(e2e.executes()) == 1
    no_leftovers(e2e)


@BOTH
def test_backup_failure(e2e: Harness, platform_kind: str) -> None:
    e2e.state.set_failure(INSTANCE_PROD_DB, code=13, message="backup failed: not enough space in the vault", at=0.4)
    start(e2e, platform_kind)
    [event] = e2e.run_until_results(1, settle=True)
    assert event["type"] == "cloud.yandex.backup.execute.failed"
    data = event["data"]
    assert data["status"] == "failed" and data["operationId"] == e2e.executes()[0]["operationId"]
    assert data["error"] == {
        "code": "INTERNAL",
        "message": "backup failed: not enough space in the vault",
        "grpcCode": 13,
    }
    no_leftovers(e2e)


@BOTH
def test_failure_reported_before_done(e2e: Harness, platform_kind: str) -> None:
    # The operation stays not-done for ~4 minutes (rollback) but carries its error after ~1 s: the result must
    # come from the error, well within run_until_results' timeout.
    e2e.state.set_backup_duration(INSTANCE_PROD_DB, 60_000)
    e2e.state.set_failure(INSTANCE_PROD_DB, code="DATA_LOSS", message="snapshot lost", at=0.004, before_done=True)
    start(e2e, platform_kind)
    [event] = e2e.run_until_results(1, timeout=15)
    assert event["data"]["status"] == "failed"
    assert event["data"]["error"]["code"] == "DATA_LOSS" and event["data"]["error"]["grpcCode"] == 15
    no_leftovers(e2e)


@BOTH
def test_timeout(e2e: Harness, platform_kind: str) -> None:
    """FOLLOWUP_DEADLINE_SECONDS (at least 60) passes for the function's clock, not the test's: the follow-up runs
    with a clock an hour ahead while the (long) backup is still running on the emulator."""
    from handlers.followup import handle

    e2e.setenv(FOLLOWUP_DEADLINE_SECONDS=60)
    e2e.state.set_backup_duration(INSTANCE_PROD_DB, 1_000_000)
    start(e2e, platform_kind)
    [ticket_op] = [e["operationId"] for e in e2e.executes()]

    def later(event: dict[str, Any], context: Any) -> Any:
        return handle(event, context, e2e.deps(clock=ShiftedClock(timedelta(hours=1))))

    [event] = e2e.run_until_results(1, followup=later, settle=True)
    assert event["type"] == "cloud.yandex.backup.execute.timed_out"
    data = event["data"]
    assert data["status"] == "timed_out" and data["operationId"] == ticket_op
    assert data["error"]["code"] == "DEADLINE_EXCEEDED" and "grpcCode" not in data["error"]
    no_leftovers(e2e)


@BOTH
def test_transient_errors_while_polling_still_end_succeeded(e2e: Harness, platform_kind: str) -> None:
    e2e.setenv(YC_MAX_RETRIES=0)  # let the follow-up itself see the 503s (no client retries)
    e2e.state.add_fault(path="/operations/*", methods=["GET"], rate_503=1.0, times=2)
    start(e2e, platform_kind)
    [event] = e2e.run_until_results(1, settle=True)
    assert event["data"]["status"] == "succeeded"
    assert event["data"]["polls"] >= 3
    faulted = [c for c in e2e.state.call_log if c["path"].startswith("/operations/") and c["status"] == 503]
    assert len(faulted) == 2
    no_leftovers(e2e)


@BOTH
def test_duplicate_ticket_gives_the_same_event_id(e2e: Harness, platform_kind: str) -> None:
    start(e2e, platform_kind)
    [ticket] = e2e.platform.drain("followups")
    for _ in range(2):  # at-least-once delivery: the ticket arrives twice
        e2e.platform.sqs.send_message(QueueUrl=e2e.platform.queues["followups"], MessageBody=ticket["Body"])
    first, second = e2e.run_until_results(2, settle=True)
    assert first["id"] == second["id"]
    assert first["data"]["status"] == second["data"]["status"] == "succeeded"
    assert len(e2e.executes()) == 1
    no_leftovers(e2e)


@BOTH
def test_target_that_cannot_start_gets_a_failed_result(e2e: Harness, platform_kind: str) -> None:
    reply, source, tid = start(e2e, platform_kind, {"computeInstanceId": INSTANCE_NO_POLICY})
    assert reply["ok"] is False and reply["failed"][0]["code"] == "POLICY_NOT_APPLIED"
    [event] = e2e.run_until_results(1, settle=True)
    data = event["data"]
    assert data["status"] == "failed" and "operationId" not in data
    assert data["computeInstanceId"] == INSTANCE_NO_POLICY and data["instanceName"] == "dev-db-1"
    assert data["error"]["code"] == "POLICY_NOT_APPLIED" and "yc backup policy apply" in data["error"]["message"]
    assert data["source"] == source and data["triggerId"] == tid
    assert event["id"] == result_event_id(target_key(tid, None, INSTANCE_NO_POLICY))
    assert e2e.executes() == []
    no_leftovers(e2e)


@BOTH
def test_opt_out_is_skipped_with_its_reason(e2e: Harness, platform_kind: str, log_lines: Any) -> None:
    reply, _, _ = start(e2e, platform_kind, {"computeInstanceId": INSTANCE_OPT_OUT, "policyId": POLICY_DAILY})
    [skipped] = reply["skipped"]
    assert skipped["computeInstanceId"] == INSTANCE_OPT_OUT
    assert skipped["reason"] == "opted out by label backup-opt-out=true"
    assert reply["started"] == [] and e2e.executes() == []
    assert e2e.platform.pending("followups") == 0 and e2e.take_results() == []
    [line] = log_lines.messages("skipped target")
    assert line["instanceId"] == INSTANCE_OPT_OUT and line["reason"] == skipped["reason"]


@BOTH
def test_fan_out_above_the_threshold(e2e: Harness, platform_kind: str) -> None:
    e2e.setenv(FANOUT_THRESHOLD=2)
    request = {"instanceLabels": {"env": "prod"}, "policyId": POLICY_DAILY}
    reply, source, tid = start(e2e, platform_kind, request, trigger_id="fanout-1")
    # prod-db-1, prod-web-1, prod-app-1 (agent offline) and prod-db-2; prod-db-legacy opted out
    assert reply["fannedOut"] == 4 and reply["started"] == []
    assert e2e.executes() == []
    assert e2e.platform.pending("requests") == 4

    events = e2e.run_until_results(4, settle=True)

    fanned = [i for i in e2e.platform.invocations if i.queue == "requests"]
    assert sum(len(i.message_ids) for i in fanned) == 4  # one request message per target
    by_instance = {e["data"]["computeInstanceId"]: e for e in events}
    assert set(by_instance) == {INSTANCE_PROD_DB, INSTANCE_PROD_WEB, INSTANCE_OFFLINE, INSTANCE_TWO_POLICIES}
    executed = sorted(e["computeInstanceId"] for e in e2e.executes())
    assert executed == sorted([INSTANCE_PROD_DB, INSTANCE_PROD_WEB, INSTANCE_TWO_POLICIES])
    for iid, event in by_instance.items():
        assert event["id"] == result_event_id(target_key(tid, POLICY_DAILY, iid))  # the original trigger's keys
        assert event["data"]["source"] == source and event["data"]["triggerId"] == tid
        expected = "failed" if iid == INSTANCE_OFFLINE else "succeeded"
        assert event["data"]["status"] == expected
    assert by_instance[INSTANCE_OFFLINE]["data"]["error"]["code"] == "AGENT_OFFLINE"
    no_leftovers(e2e)


# --- the sinks -----------------------------------------------------------------------------------------------


def test_webhook_sink_signs_the_event(e2e: Harness, receiver: Receiver) -> None:
    secret = "result-webhook-secret-1"
    e2e.setenv(RESULT_WEBHOOK_URL=f"{receiver.url}/results", RESULT_WEBHOOK_SECRET=secret)
    start(e2e, "yandex")
    [event] = e2e.run_until_results(1, settle=True)

    [post] = receiver.requests
    assert post.path == "/results"
    assert post.headers["content-type"] == "application/cloudevents+json"
    timestamp, signature = post.headers["x-signature-timestamp"], post.headers["x-signature"]
    assert verify_signature(secret, timestamp, post.body, signature)
    assert not verify_signature("another-secret", timestamp, post.body, signature)
    assert post.json() == event  # the same event on the queue and the webhook


def test_webhook_receiver_failure_makes_the_ticket_come_back(e2e: Harness, receiver: Receiver) -> None:
    e2e.setenv(RESULT_WEBHOOK_URL=f"{receiver.url}/results", RESULT_WEBHOOK_SECRET="s3")
    receiver.status = 500
    start(e2e, "yandex")
    e2e.run_until_results(1)
    receiver.status = 200
    e2e.run_until_results(2, settle=True)  # redelivered: the queue gets the event again, the webhook finally too
    ids = {r["id"] for r in e2e.results}
    assert len(ids) == 1
    assert receiver.requests[-1].json()["id"] in ids


def test_log_sink_line(e2e: Harness, log_lines: Any) -> None:
    start(e2e, "aws")
    [event] = e2e.run_until_results(1, settle=True)
    [line] = log_lines.messages("backup result")
    assert line["level"] == "INFO" and line["service"] == "yc-backup-runner"
    assert line["eventId"] == event["id"] and line["status"] == "succeeded"
    assert line["operationId"] == event["data"]["operationId"]
    assert line["computeInstanceId"] == INSTANCE_PROD_DB and line["triggerId"] == "flow-1"
    assert e2e.token not in log_lines.text and e2e.webhook_secret not in log_lines.text


def test_results_failures_only(e2e: Harness, receiver: Receiver, log_lines: Any) -> None:
    e2e.setenv(
        RESULTS_FAILURES_ONLY="true", RESULT_WEBHOOK_URL=f"{receiver.url}/results", RESULT_WEBHOOK_SECRET="s3cr3t"
    )
    start(e2e, "yandex", REQUEST, trigger_id="ok-1")
    start(e2e, "yandex", {"computeInstanceId": INSTANCE_FLAKY, "policyId": POLICY_DAILY}, trigger_id="flaky-1")
    assert len(e2e.executes()) == 2
    [event] = e2e.run_until_results(1, settle=True)  # only the failure reaches the queue ...
    assert event["data"]["computeInstanceId"] == INSTANCE_FLAKY and event["data"]["status"] == "failed"
    assert [p.json()["id"] for p in receiver.requests] == [event["id"]]  # ... and the webhook
    logged = {line["computeInstanceId"]: line["status"] for line in log_lines.messages("backup result")}
    assert logged == {INSTANCE_PROD_DB: "succeeded", INSTANCE_FLAKY: "failed"}  # the log sees both
    no_leftovers(e2e)
