"""`GET /backup/{operationId}` end to end: a signed POST starts a backup on the emulator, then the status route
(through app.trigger_handler, for every HTTP source with a path) follows it to its end."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.emulator.seed import INSTANCE_PROD_DB, POLICY_DAILY
from security.hmac_v1 import sign_webhook
from tests.e2e.conftest import Harness, http_event, reply_json, set_headers, set_method, set_path, sign_http

SOURCES = ["yc-api-gateway", "aws-api-gateway-rest", "aws-http-api", "aws-function-url"]
REQUEST = {"policyId": POLICY_DAILY, "computeInstanceId": INSTANCE_PROD_DB, "reason": "before the deploy"}


def status_event(
    h: Harness, name: str, operation_id: str, *, signed_for: str | None = None, ts: int | None = None
) -> Any:
    event = set_method(set_path(http_event(name, ""), f"/backup/{operation_id}"), "GET")
    message = f"GET /backup/{signed_for or operation_id}"
    return set_headers(event, sign_webhook(h.webhook_secret, message, ts or int(time.time())))


def start(h: Harness, name: str) -> str:
    reply = h.trigger(sign_http(http_event(name, json.dumps(REQUEST)), h.webhook_secret))
    assert reply["statusCode"] == 202, reply["body"]
    operation_id: str = reply_json(reply)["started"][0]["operationId"]
    return operation_id


@pytest.mark.parametrize("name", SOURCES)
def test_a_started_backup_is_followed_to_its_end(e2e: Harness, name: str) -> None:
    op = start(e2e, name)
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = e2e.trigger(status_event(e2e, name, op))
        assert reply["statusCode"] == 200, reply["body"]
        body = reply_json(reply)
        assert (body["operationId"], body["computeInstanceId"], body["policyId"]) == (
            op,
            INSTANCE_PROD_DB,
            POLICY_DAILY,
        )
        seen.append(body["status"])
        if body["status"] != "running":
            break
        time.sleep(0.3)
    assert seen[0] == "running" and seen[-1] == "succeeded", seen
    assert body["createdAt"] and body["modifiedAt"] and "error" not in body
    assert len(e2e.executes()) == 1  # following it started nothing


@pytest.mark.parametrize(
    ("label", "status", "code"),
    [("unsigned", 401, "UNAUTHENTICATED"), ("stale", 401, "UNAUTHENTICATED"), ("other id", 401, "UNAUTHENTICATED")],
)
def test_refused_status_requests(e2e: Harness, label: str, status: int, code: str) -> None:
    op = start(e2e, "aws-http-api")
    if label == "unsigned":
        event = set_method(set_path(http_event("aws-http-api", ""), f"/backup/{op}"), "GET")
    elif label == "stale":
        event = status_event(e2e, "aws-http-api", op, ts=int(time.time()) - 600)
    else:
        event = status_event(e2e, "aws-http-api", op, signed_for="cdgnosuchoperation01")
    reply = e2e.trigger(event)
    assert reply["statusCode"] == status
    assert reply_json(reply)["error"]["code"] == code


def test_an_unknown_operation_is_404(e2e: Harness) -> None:
    reply = e2e.trigger(status_event(e2e, "yc-api-gateway", "cdgnosuchoperation01"))
    assert reply["statusCode"] == 404 and reply_json(reply)["error"]["code"] == "NOT_FOUND"
