"""Every trigger source, from the sample payloads in events/, against the emulator and the moto follow-up queue.

The HTTP samples are signed with WEBHOOK_SECRET as a CI client would sign them, and sent to the deployed route
(`/backup`; the samples' own path, `/backups`, is not a route: see test_sample_paths_are_not_routes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from backups.target import idempotency_key
from local.emulator import FaultRule
from local.emulator.seed import (
    INSTANCE_NO_POLICY,
    INSTANCE_PROD_DB,
    INSTANCE_PROD_WEB,
    POLICY_DAILY,
)
from tests.e2e.conftest import (
    ALL_EVENTS,
    HTTP_EVENTS,
    Harness,
    http_event,
    load_event,
    reply_json,
    set_method,
    set_path,
    sign_http,
)

SOURCES = {
    "yc-timer": "yc.timer",
    "yc-message-queue": "yc.message-queue",
    "yc-http": "yc.http",
    "yc-api-gateway": "yc.api-gateway",
    "aws-eventbridge-schedule": "aws.eventbridge",
    "aws-scheduler": "aws.scheduler",
    "aws-sqs": "aws.sqs",
    "aws-api-gateway-rest": "aws.api-gateway-rest",
    "aws-http-api": "aws.http-api",
    "aws-function-url": "aws.function-url",
}
# The trigger ids of the non-HTTP samples (events/README.md); signed HTTP requests derive theirs from the signature.
TRIGGER_IDS = {
    "yc-timer": "a1s41g2n5g0oqdemo001",
    "yc-message-queue": "cce76685-5828-4304-a83d-95643c0507a0",
    "aws-eventbridge-schedule": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "aws-scheduler": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly-backup|2026-09-01T02:00:00Z",
    "aws-sqs": "059f36b4-87a3-44ab-83d2-661975830a7d",
}
REQUEST = {"policyId": POLICY_DAILY, "computeInstanceId": INSTANCE_PROD_DB, "reason": "sample"}


def signed_sample(h: Harness, name: str) -> dict[str, Any]:
    event = load_event(name)
    if name in ("yc-api-gateway", "aws-api-gateway-rest", "aws-http-api"):
        event = set_path(event, "/backup")
    return sign_http(event, h.webhook_secret)


def sample(h: Harness, name: str) -> dict[str, Any]:
    return signed_sample(h, name) if name in HTTP_EVENTS else load_event(name)


# --- every source reaches Execute and hands off a ticket -----------------------------------------------------


@pytest.mark.parametrize("name", ALL_EVENTS)
def test_sample_starts_a_backup_and_queues_a_ticket(e2e: Harness, name: str) -> None:
    reply = e2e.trigger(sample(e2e, name))

    [execute] = e2e.executes()
    assert execute["policyId"] == POLICY_DAILY and execute["computeInstanceId"] == INSTANCE_PROD_DB
    if name in TRIGGER_IDS:
        assert execute["idempotencyKey"] == idempotency_key(TRIGGER_IDS[name], POLICY_DAILY, INSTANCE_PROD_DB)

    [ticket] = e2e.tickets()  # a real message on the SQS-protocol follow-up queue
    assert ticket["kind"] == "followup" and ticket["version"] == 2
    assert ticket["operationId"] == execute["operationId"]
    target = ticket["target"]  # the target's record, as resolution made it
    assert target["computeInstanceId"] == INSTANCE_PROD_DB and target["policyId"] == POLICY_DAILY
    assert target["trigger"]["source"] == SOURCES[name]
    assert target["trigger"]["reason"] == "sample"
    if name in TRIGGER_IDS:
        assert target["trigger"]["triggerId"] == TRIGGER_IDS[name]

    if name in HTTP_EVENTS:
        assert reply["statusCode"] == 202
        body = reply_json(reply)
        assert body["ok"] is True
        assert [s["operationId"] for s in body["started"]] == [execute["operationId"]]
    elif name == "aws-sqs":
        assert reply == {"batchItemFailures": []}
    elif name == "yc-message-queue":
        assert reply == {"ok": True}
    else:
        assert reply["ok"] is True
        assert [s["operationId"] for s in reply["started"]] == [execute["operationId"]]
    assert not e2e.take_results()  # nothing finished yet: the result comes from the follow-up


@pytest.mark.parametrize("name", ["yc-api-gateway", "aws-api-gateway-rest", "aws-http-api"])
def test_sample_paths_are_the_served_route(e2e: Harness, name: str) -> None:
    """The samples carry the deployed route, POST /backup (template.yaml, api-gateway.yaml): signed, they start."""
    reply = e2e.trigger(sign_http(load_event(name), e2e.webhook_secret))
    assert reply["statusCode"] == 202
    assert len(e2e.executes()) == 1


# --- HTTP replies, on every HTTP source ----------------------------------------------------------------------

Build = Callable[[Harness, str], dict[str, Any]]


def _signed(body: Any, **kw: Any) -> Build:
    def build(h: Harness, name: str) -> dict[str, Any]:
        return sign_http(http_event(name, body, **kw), h.webhook_secret)

    return build


def _unsigned(h: Harness, name: str) -> dict[str, Any]:
    return http_event(name, REQUEST)


def _bad_signature(h: Harness, name: str) -> dict[str, Any]:
    return sign_http(http_event(name, REQUEST), "not-the-secret")


def _stale(h: Harness, name: str) -> dict[str, Any]:
    return sign_http(http_event(name, REQUEST), h.webhook_secret, timestamp=int(time.time()) - 3600)


def _get(h: Harness, name: str) -> dict[str, Any]:
    return set_method(sign_http(http_event(name, REQUEST), h.webhook_secret), "GET")


def _unknown_route(h: Harness, name: str) -> dict[str, Any]:
    return sign_http(http_event(name, REQUEST, path="/backup/../admin"), h.webhook_secret)


def _oversize(h: Harness, name: str) -> dict[str, Any]:
    return sign_http(http_event(name, {**REQUEST, "reason": "x" * 70_000}), h.webhook_secret)


HTTP_CASES: list[tuple[str, Build, int, str | None]] = [
    ("dry-run plan", _signed({**REQUEST, "dryRun": True}), 200, None),
    ("malformed JSON", _signed('{"computeInstanceId": "fhmproddb0000'), 400, "INVALID_BODY"),
    ("JSON that is not an object", _signed("[1, 2, 3]"), 400, "INVALID_BODY"),
    ("wrong types", _signed({"computeInstanceId": 42, "dryRun": "yes"}), 400, "INVALID_REQUEST"),
    ("unsigned", _unsigned, 401, "UNAUTHENTICATED"),
    ("bad signature", _bad_signature, 401, "UNAUTHENTICATED"),
    ("stale timestamp", _stale, 401, "UNAUTHENTICATED"),
    ("unknown route", _unknown_route, 404, "NOT_FOUND"),
    ("GET", _get, 405, "METHOD_NOT_ALLOWED"),
    ("oversize body", _oversize, 413, "BODY_TOO_LARGE"),
    ("wrong content type", _signed(json.dumps(REQUEST), content_type="text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE"),
    (
        "instance not found",
        _signed({"computeInstanceId": "fhmnosuchinstance099", "policyId": POLICY_DAILY}),
        404,
        "NOTHING_MATCHED",
    ),
    ("policy not applied", _signed({"computeInstanceId": INSTANCE_NO_POLICY, "policyId": POLICY_DAILY}), 422, None),
]


@pytest.mark.parametrize("name", HTTP_EVENTS)
@pytest.mark.parametrize(("label", "build", "status", "code"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_http_reply(e2e: Harness, name: str, label: str, build: Build, status: int, code: str | None) -> None:
    if label == "unknown route" and name == "yc-http":
        pytest.skip("a direct Yandex function call has no path")
    reply = e2e.trigger(build(e2e, name))

    assert reply["statusCode"] == status, reply["body"]
    body = reply_json(reply)
    assert reply["headers"]["X-Content-Type-Options"] == "nosniff"
    assert e2e.executes() == []
    assert e2e.tickets() == []
    if code is not None:
        assert body["error"]["code"] == code
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if label == "GET":
        assert reply["headers"]["Allow"] == "POST"
    if label == "dry-run plan":
        [plan] = body["plan"]
        assert plan["computeInstanceId"] == INSTANCE_PROD_DB and plan["policyId"] == POLICY_DAILY
        assert body["dryRun"] is True and not body.get("started")
    if label == "policy not applied":
        [failed] = body["failed"]
        assert failed["code"] == "POLICY_NOT_APPLIED"
        # the body says how to fix it
        assert "yc backup policy apply" in failed["message"] and "applyIfMissing" in failed["message"]
        assert body["ok"] is False
        # a target that cannot start still ends in a failed result event
        [result] = e2e.take_results()
        assert result["data"]["error"]["code"] == "POLICY_NOT_APPLIED"
    else:
        # a request refused as a whole is answered by the 4xx alone: no result event (handlers.trigger)
        assert e2e.take_results() == []


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_http_503_when_the_cloud_is_down(e2e: Harness, name: str) -> None:
    e2e.setenv(YC_MAX_RETRIES=0)
    e2e.state.set_faults([FaultRule(rate_503=1.0)], seed=1)
    reply = e2e.trigger(sign_http(http_event(name, REQUEST), e2e.webhook_secret))

    assert reply["statusCode"] == 503, reply["body"]
    body = reply_json(reply)
    assert body["error"]["code"] == "CLOUD_UNAVAILABLE" and body["error"]["message"]
    assert reply["headers"]["Retry-After"]
    assert e2e.executes() == [] and e2e.tickets() == []


# --- redeliveries start nothing twice ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["yc-timer", "aws-eventbridge-schedule", "aws-scheduler"])
def test_redelivered_schedule_event_starts_one_backup(e2e: Harness, name: str) -> None:
    first = e2e.trigger(load_event(name))
    again = e2e.trigger(load_event(name))
    [execute] = e2e.executes()
    assert first["started"][0]["operationId"] == again["started"][0]["operationId"] == execute["operationId"]


@pytest.mark.parametrize("name", ["yc-message-queue", "aws-sqs"])
def test_redelivered_queue_message_starts_one_backup(e2e: Harness, name: str) -> None:
    e2e.trigger(load_event(name))
    e2e.trigger(load_event(name))  # the same message id, delivered again
    assert len(e2e.executes()) == 1
    tickets = e2e.tickets()
    assert {t["operationId"] for t in tickets} == {e2e.executes()[0]["operationId"]}


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_http_retry_with_the_same_correlation_id_starts_one_backup(e2e: Harness, name: str) -> None:
    body = json.dumps({**REQUEST, "correlationId": "ci-run-4711"})
    now = int(time.time())
    first = e2e.trigger(sign_http(http_event(name, body), e2e.webhook_secret, timestamp=now - 5))
    again = e2e.trigger(sign_http(http_event(name, body), e2e.webhook_secret, timestamp=now))  # re-signed

    assert first["statusCode"] == again["statusCode"] == 202
    [execute] = e2e.executes()
    ops = [reply_json(r)["started"][0]["operationId"] for r in (first, again)]
    assert ops == [execute["operationId"]] * 2


# --- queue batches: only transient failures come back --------------------------------------------------------


def _mixed_batch(h: Harness) -> tuple[dict[str, Any], list[str]]:
    """A batch of three: one that starts, one that cannot (no policy applied), one hitting a transient error."""
    h.setenv(YC_MAX_RETRIES=0)
    h.state.add_fault(path=f"/compute/v1/instances/{INSTANCE_PROD_WEB}", methods=["GET"], rate_503=1.0)
    bodies = [
        json.dumps({"computeInstanceId": INSTANCE_PROD_DB, "policyId": POLICY_DAILY}),
        json.dumps({"computeInstanceId": INSTANCE_NO_POLICY, "policyId": POLICY_DAILY}),
        json.dumps({"computeInstanceId": INSTANCE_PROD_WEB, "policyId": POLICY_DAILY}),
    ]
    event = h.queue_event("requests", bodies)
    records = event.get("Records") or event["messages"]
    ids = [r["messageId"] if "messageId" in r else r["details"]["message"]["message_id"] for r in records]
    by_body = {
        json.loads(r.get("body") or r["details"]["message"]["body"])["computeInstanceId"]: i
        for r, i in zip(records, ids, strict=True)
    }
    return event, [by_body[INSTANCE_PROD_DB], by_body[INSTANCE_NO_POLICY], by_body[INSTANCE_PROD_WEB]]


def _check_batch_effects(h: Harness) -> None:
    [execute] = h.executes()
    assert execute["computeInstanceId"] == INSTANCE_PROD_DB
    [ticket] = h.tickets()
    assert ticket["operationId"] == execute["operationId"]
    [result] = h.take_results()  # the permanent failure is reported at once, and not retried
    assert result["data"]["status"] == "failed"
    assert result["data"]["computeInstanceId"] == INSTANCE_NO_POLICY
    assert result["data"]["error"]["code"] == "POLICY_NOT_APPLIED"


def test_aws_batch_reports_only_the_transient_failure(e2e: Harness) -> None:
    e2e.platform.platform = "aws"
    event, (_ok, _permanent, transient) = _mixed_batch(e2e)
    reply = e2e.trigger(event)
    assert reply == {"batchItemFailures": [{"itemIdentifier": transient}]}
    _check_batch_effects(e2e)


def test_yandex_batch_sends_back_only_the_transient_message(e2e: Harness) -> None:
    # issue 11 #9: a failing message must not bring its healthy neighbours back (whole-batch redelivery)
    event, (_ok, _permanent, transient) = _mixed_batch(e2e)
    assert e2e.trigger(event) == {"ok": True}  # the batch is acknowledged: nothing comes back twice
    _check_batch_effects(e2e)
    time.sleep(1.5)  # sent back with the shortest delay the e2e settings allow (1 s)
    bodies = [json.loads(m["Body"]) for m in e2e.platform.drain("requests")]
    [again] = [b for b in bodies if b.get("kind") == "redelivery"]
    assert again["kind"] == "redelivery" and again["attempt"] == 1
    assert again["triggerId"] == transient and again["source"] == "yc.message-queue"  # the same keys next time
    assert json.loads(again["request"])["computeInstanceId"] == INSTANCE_PROD_WEB


def test_yandex_batch_raises_for_a_transient_failure_without_a_handoff_key(e2e: Harness) -> None:
    from backups.errors import RedeliveryRequested

    e2e.setenv(HANDOFF_SECRET=None)
    event, _ = _mixed_batch(e2e)
    with pytest.raises(RedeliveryRequested):
        e2e.trigger(event)
    _check_batch_effects(e2e)


@pytest.mark.parametrize("kind", ["yandex", "aws"])
def test_queue_batch_with_only_permanent_failures_is_acknowledged(e2e: Harness, kind: str) -> None:
    e2e.platform.platform = kind
    event = e2e.queue_event(
        "requests",
        [
            json.dumps({"computeInstanceId": INSTANCE_NO_POLICY, "policyId": POLICY_DAILY}),
            json.dumps({"computeInstanceId": 42}),
        ],
    )
    reply = e2e.trigger(event)
    assert reply == ({"batchItemFailures": []} if kind == "aws" else {"ok": True})
    assert e2e.executes() == []
    codes = sorted(r["data"]["error"]["code"] for r in e2e.take_results())
    assert codes == ["INVALID_REQUEST", "POLICY_NOT_APPLIED"]


def test_a_warm_invocation_logs_nothing_of_the_previous_one(e2e: Harness, log_lines: Any) -> None:
    """Keys appended for one invocation (source, platform, correlation id) must not label the next one's lines."""
    e2e.trigger(load_event("yc-timer"))
    e2e.trigger({"Records": []})  # refused before anything is appended
    [line] = log_lines.messages("event refused")
    assert line["source"] == "aws.sqs"
    assert "correlation_id" not in line and "trigger_id" not in line
    assert line.get("platform") != "yandex"
