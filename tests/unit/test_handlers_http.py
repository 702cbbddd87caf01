"""The HTTP front without HTTP servers: `handle_http` called with built invocations, a fake cloud and fakes.

Given a request as a platform hands it over (an `Invocation`), when the front handles it, then the reply has the
documented status, headers and body shape. Attacker-style cases name the issue finding they guard.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from handlers.deps import Deps
from handlers.http import decide_route, handle_http, webhook_trigger_id
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backups.models import ResultEvent
from security.hmac_v1 import sign_webhook
from security.http_auth import authorize
from settings import Settings
from tests.fakes import EPOCH, FakeClock, FakeCloud, FakeQueue
from tests.signers import slack_headers
from triggers.model import HttpRequest, InboundMessage, Invocation
from ycloud.errors import CloudError

SECRET = "webhook-secret-0123456789"
SLACK_SECRET = "slack-signing-secret-abcdef"
FOLDER = "b1gfolder"
NOW = int(EPOCH.timestamp())
FORM = "application/x-www-form-urlencoded"


class RecordingSink:
    name = "recording"

    def __init__(self) -> None:
        self.events: list[ResultEvent] = []

    def emit(self, event: ResultEvent) -> None:
        self.events.append(event)


class World:
    """One fake cloud (a policy applied to one VM), a queue, a sink and a frozen clock."""

    def __init__(self, **env: str) -> None:
        self.cloud = FakeCloud()
        self.policy = self.cloud.add_policy("Default daily", folder_id=FOLDER)
        self.vm = self.cloud.add_instance(name="web1", folder_id=FOLDER)
        self.cloud.apply_now(self.policy.id, self.vm.id)
        self.queue = FakeQueue()
        self.sink = RecordingSink()
        self.clock = FakeClock()
        base = {"FOLDER_ID": FOLDER, "FOLLOWUP_QUEUE_URL": "https://queue.local/followup", "WEBHOOK_SECRET": SECRET}
        self.settings = Settings.from_env({k: v for k, v in (base | env).items() if v is not None})

    def deps(self) -> Deps:
        return Deps(
            settings=self.settings,
            cloud_factory=lambda settings, context: self.cloud,
            queue_factory=lambda: self.queue,
            clock=self.clock,
            sinks_factory=lambda reply_to: [self.sink],
        )

    def call(self, invocation: Invocation) -> tuple[int, dict[str, str], dict[str, Any]]:
        reply = handle_http(invocation, None, self.deps())
        assert set(reply) == {"statusCode", "headers", "body", "isBase64Encoded"}
        assert reply["headers"]["Content-Type"].startswith("application/json")
        assert reply["headers"]["X-Content-Type-Options"] == "nosniff"
        return reply["statusCode"], reply["headers"], json.loads(reply["body"])

    @property
    def executes(self) -> list[dict[str, Any]]:
        return self.cloud.execute_log


def invocation(
    method: str = "POST", path: str = "/backup", headers: dict[str, str] | None = None, body: bytes | str = b""
) -> Invocation:
    raw = body.encode() if isinstance(body, str) else body
    return Invocation(
        source="yc.api-gateway",
        platform="yandex",
        kind="http",
        messages=[InboundMessage(trigger_id="platform-request-1", body_text=raw.decode(), received_at=EPOCH)],
        http=HttpRequest(
            method=method,
            path=path,
            headers={k.lower(): v for k, v in (headers or {}).items()},
            body=raw,
            request_id="platform-request-1",
        ),
    )


def signed_post(
    body: dict[str, Any] | str, *, ts: int = NOW, path: str = "/backup", secret: str = SECRET
) -> Invocation:
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = sign_webhook(secret, raw, ts) | {"Content-Type": "application/json"}
    return invocation("POST", path, headers, raw)


def signed_get(operation_id: str, *, ts: int = NOW, signed_for: str | None = None) -> Invocation:
    message = f"GET /backup/{signed_for or operation_id}"
    return invocation("GET", f"/backup/{operation_id}", sign_webhook(SECRET, message, ts))


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    """The documented error shape, asserted: {"error": {"code": str, "message": non-empty str}}."""
    error = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    return error["code"], error["message"]


# --- the route is decided in one place ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "route", "operation_id"),
    [
        ("/backup", {}, "backup", None),
        ("/prod/backup/", {}, "backup", None),
        ("/BACKUP", {}, "backup", None),
        ("/slack", {}, "slack", None),
        ("/api/slack/", {}, "slack", None),
        ("/backup/op123", {}, "status", "op123"),
        ("/stage/backup/op123/", {}, "status", "op123"),
        ("/backup/..", {}, "status", ".."),  # a route, whose id is then refused
        ("/", {}, "backup", None),
        ("/", {"content-type": FORM}, "backup", None),
        ("/", {"content-type": FORM, "x-slack-signature": "v0=x"}, "slack", None),
        ("/", {"content-type": "application/json", "x-slack-signature": "v0=x"}, "backup", None),
        ("/backup", {"content-type": FORM, "x-slack-signature": "v0=x"}, "backup", None),
    ],
)
def test_decide_route(path: str, headers: dict[str, str], route: str, operation_id: str | None) -> None:
    decision = decide_route(HttpRequest(method="POST", path=path, headers=headers, request_id="r"))
    assert decision is not None
    assert (decision.route, decision.operation_id) == (route, operation_id)


@pytest.mark.parametrize("path", ["/admin", "/backup/a/b", "/backup/../../etc/passwd", "/backups", "/slackx"])
def test_unknown_routes_are_404(path: str) -> None:
    w = World()
    assert decide_route(HttpRequest(method="POST", path=path, request_id="r")) is None
    status, _, body = w.call(signed_post({"computeInstanceId": w.vm.id}, path=path))
    assert status == 404 and error_of(body)[0] == "NOT_FOUND"
    assert w.executes == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/backup", "POST"),
        ("DELETE", "/backup", "POST"),
        ("GET", "/slack", "POST"),
        ("POST", "/backup/op1", "GET"),
    ],
)
def test_other_methods_are_405_with_allow(method: str, path: str, allow: str) -> None:
    status, headers, body = World().call(invocation(method, path))
    assert status == 405 and headers["Allow"] == allow and error_of(body)[0] == "METHOD_NOT_ALLOWED"


def test_a_slack_looking_request_to_post_backup_is_a_backup_request() -> None:
    """Issue 10: a form with X-Slack-Signature sent to POST /backup was handled as a Slack command."""
    w = World(SLACK_SIGNING_SECRET=SLACK_SECRET, CHAT_ALLOWED_INSTANCES="*")
    form = "team_id=T1&channel_id=C1&user_id=U1&command=%2Fbackup&text=web1&trigger_id=1.2.3&response_url=" + (
        "https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fx"
    )
    headers = {"Content-Type": FORM} | slack_headers(SLACK_SECRET, NOW, form)
    status, _, body = w.call(invocation("POST", "/backup", headers, form))
    assert status == 401 and error_of(body) == ("UNAUTHENTICATED", "missing X-Backup-Timestamp header")
    assert w.executes == []
    # the same request on /slack, or on a direct call without a path, is Slack's
    help_form = form.replace("text=web1", "text=help")
    help_headers = {"Content-Type": FORM} | slack_headers(SLACK_SECRET, NOW, help_form)
    status, _, body = w.call(invocation("POST", "/", help_headers, help_form))
    assert status == 200 and body["response_type"] == "ephemeral"


# --- POST /backup -------------------------------------------------------------------------------------------


def test_started_is_202_with_the_operations() -> None:
    w = World()
    status, _, body = w.call(signed_post({"computeInstanceId": w.vm.id, "policyId": w.policy.id}))
    assert status == 202 and body["ok"] is True
    [execute] = w.executes
    assert body["started"][0]["operationId"] == execute["operationId"]
    assert "error" not in body


def test_dry_run_is_200_with_the_plan() -> None:
    w = World()
    status, _, body = w.call(signed_post({"computeInstanceId": w.vm.id, "dryRun": True}))
    assert status == 200 and body["dryRun"] is True and body["plan"][0]["policyId"] == w.policy.id
    assert w.executes == []


def test_nothing_could_start_is_422_in_the_documented_error_shape() -> None:
    """Issue 11 finding 11: the 422 body was the per-target report without `error`."""
    w = World()
    other = w.cloud.add_instance(name="db1", folder_id=FOLDER)  # the policy is not applied to it
    status, _, body = w.call(signed_post({"computeInstanceId": other.id, "policyId": w.policy.id}))
    assert status == 422
    code, message = error_of(body)
    assert code == "NOTHING_STARTED" and "POLICY_NOT_APPLIED" in message
    [failed] = body["failed"]  # the per-target detail stays beside `error`
    assert failed["code"] == "POLICY_NOT_APPLIED" and "trigger" not in failed and "key" not in failed
    assert body["ok"] is False
    assert [e.data.error.code for e in w.sink.events if e.data.error] == ["POLICY_NOT_APPLIED"]


def test_transient_target_failures_are_503_with_retry_after_in_the_documented_shape() -> None:
    w = World()
    w.cloud.fail("policies.execute", CloudError(14, "backend down"), times=None)
    status, headers, body = w.call(signed_post({"computeInstanceId": w.vm.id, "policyId": w.policy.id}))
    assert status == 503 and headers["Retry-After"]
    code, message = error_of(body)
    assert code == "RETRY_LATER" and "UNAVAILABLE" in message
    assert body["retryable"][0]["code"] == "UNAVAILABLE"


@pytest.mark.parametrize(
    ("build", "status", "code"),
    [
        (lambda w: signed_post('{"computeInstanceId": '), 400, "INVALID_BODY"),
        (lambda w: signed_post({"computeInstanceId": 42}), 400, "INVALID_REQUEST"),
        (lambda w: signed_post({"computeInstanceId": "fhmnosuchinstance099", "policyId": w.policy.id}), 404, None),
        (lambda w: invocation("POST", "/backup", {"Content-Type": "application/json"}, "{}"), 401, "UNAUTHENTICATED"),
        (lambda w: signed_post({"computeInstanceId": w.vm.id}, secret="wrong"), 401, "UNAUTHENTICATED"),
        (lambda w: signed_post({"computeInstanceId": w.vm.id}, ts=NOW - 301), 401, "UNAUTHENTICATED"),
        (lambda w: signed_post({"reason": "x" * 70000}), 413, "BAD_REQUEST"),
    ],
)
def test_refusals_have_the_documented_shape(build: Any, status: int, code: str | None) -> None:
    w = World()
    got, _, body = w.call(build(w))
    assert got == status
    assert error_of(body)[0] == code or code is None
    assert w.executes == [] and SECRET not in json.dumps(body)


def test_closed_without_secrets() -> None:
    w = World(WEBHOOK_SECRET="")
    status, _, body = w.call(signed_post({"computeInstanceId": w.vm.id}))
    assert status == 401 and "closed" in error_of(body)[1]


# --- replays: one signed request, one trigger id ----------------------------------------------------------


@pytest.mark.parametrize("forms", [["{}", "0{}", "00{}", " {}", "{} ", "00{}\t"]])
def test_a_replay_with_a_reformatted_timestamp_starts_nothing_new(forms: list[str]) -> None:
    """Issue 11 finding 5: the trigger id was hashed from the header as sent, so `0<ts>` started another backup."""
    w = World()
    raw = json.dumps({"computeInstanceId": w.vm.id, "policyId": w.policy.id})
    signed = sign_webhook(SECRET, raw, NOW)
    ops = set()
    for form in forms:
        headers = signed | {"X-Backup-Timestamp": form.format(NOW), "Content-Type": "application/json"}
        status, _, body = w.call(invocation("POST", "/backup", headers, raw))
        assert status == 202, body
        ops.add(body["started"][0]["operationId"])
    assert len(w.executes) == 1 and len(ops) == 1


forms = st.tuples(st.sampled_from(["", " ", "\t", "  "]), st.integers(0, 3), st.sampled_from(["", " ", "\t"])).map(
    lambda t: (t[0], "0" * t[1], t[2])
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    form=forms,
    ts=st.integers(NOW - 300, NOW + 300),
    body=st.dictionaries(st.sampled_from(["computeInstanceId", "reason", "dryRun"]), st.text(max_size=20)),
)
def test_every_header_form_that_verifies_maps_to_one_trigger_id(form: tuple[str, str, str], ts: int, body: Any) -> None:
    s = Settings.from_env({"WEBHOOK_SECRET": SECRET})
    raw = json.dumps(body).encode()
    signed = sign_webhook(SECRET, raw, ts)
    canonical = webhook_trigger_id(authorize(s, "backup", signed, raw, now=NOW), body, raw)
    lead, zeros, tail = form
    header = f"{lead}{zeros}{ts}{tail}"
    try:
        auth = authorize(s, "backup", signed | {"X-Backup-Timestamp": header}, raw, now=NOW)
    except Exception:  # a form that does not verify starts nothing; only what verifies matters here
        return
    assert webhook_trigger_id(auth, body, raw) == canonical


def test_the_correlation_id_is_the_identity_when_given() -> None:
    w = World()
    body = {"computeInstanceId": w.vm.id, "policyId": w.policy.id, "correlationId": "ci-42"}
    w.call(signed_post(body, ts=NOW - 10))
    w.call(signed_post(body, ts=NOW))  # re-signed later: the same request
    assert len(w.executes) == 1


# --- GET /backup/{operationId} -----------------------------------------------------------------------------


def started(w: World) -> str:
    _, _, body = w.call(signed_post({"computeInstanceId": w.vm.id, "policyId": w.policy.id}))
    operation_id: str = body["started"][0]["operationId"]
    return operation_id


def test_status_of_a_running_then_succeeded_backup() -> None:
    w = World()
    op = started(w)
    status, _, body = w.call(signed_get(op))
    assert status == 200
    assert body == {
        "operationId": op,
        "status": "running",
        "progressPercentage": 0.0,
        "computeInstanceId": w.vm.id,
        "policyId": w.policy.id,
        "createdAt": body["createdAt"],
        "modifiedAt": body["modifiedAt"],
    }
    assert body["createdAt"].endswith("+00:00")
    w.cloud.complete(op)
    status, _, body = w.call(signed_get(op))
    assert (status, body["status"], body["progressPercentage"]) == (200, "succeeded", 100.0) and "error" not in body


def test_status_of_a_failed_backup_carries_the_error() -> None:
    w = World()
    op = started(w)
    w.cloud.fail_operation(op, 9, "the agent went away")
    status, _, body = w.call(signed_get(op))
    assert status == 200 and body["status"] == "failed"
    assert body["error"] == {"code": "FAILED_PRECONDITION", "message": "the agent went away", "grpcCode": 9}


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda op: invocation("GET", f"/backup/{op}"), id="unsigned"),
        pytest.param(lambda op: signed_get(op, ts=NOW - 301), id="stale"),
        pytest.param(lambda op: signed_get(op, ts=NOW + 301), id="future"),
        pytest.param(lambda op: signed_get(op, signed_for="cdg00000000000000001"), id="signed-for-another-id"),
        pytest.param(
            lambda op: invocation("GET", f"/backup/{op}", sign_webhook(SECRET, b"", NOW)), id="post-scheme-empty-body"
        ),
        pytest.param(
            lambda op: invocation("GET", f"/backup/{op}", sign_webhook(SECRET, f"POST /backup/{op}", NOW)),
            id="another-method",
        ),
    ],
)
def test_status_refuses_what_is_not_signed_for_it(build: Any) -> None:
    w = World()
    op = started(w)
    calls = w.cloud.count("operations.get")
    status, _, body = w.call(build(op))
    assert status == 401 and error_of(body)[0] == "UNAUTHENTICATED"
    assert w.cloud.count("operations.get") == calls  # refused before any cloud call


@pytest.mark.parametrize("bad", ["..", "OP1", "op-1", "a" * 51, "%2e%2e", "op1;x"])
def test_status_validates_the_id_before_anything_else(bad: str) -> None:
    w = World()
    status, _, body = w.call(invocation("GET", f"/backup/{bad}", sign_webhook(SECRET, f"GET /backup/{bad}", NOW)))
    assert status == 400 and error_of(body)[0] == "INVALID_OPERATION_ID"
    assert w.cloud.calls == 0


def test_status_of_an_unknown_operation_is_404() -> None:
    status, _, body = World().call(signed_get("cdg00000000000000001"))
    assert status == 404 and error_of(body)[0] == "NOT_FOUND"


def test_status_of_an_operation_that_is_not_an_execute_is_404() -> None:
    w = World()
    op = started(w)
    meta = w.cloud.operation_store[op].metadata
    meta.policy_id = None  # e.g. an instance operation: no ExecuteMetadata
    meta.type_url = "type.googleapis.com/yandex.cloud.compute.v1.StopInstanceMetadata"
    status, _, body = w.call(signed_get(op))
    assert status == 404 and error_of(body)[0] == "NOT_FOUND" and w.vm.id not in json.dumps(body)


def test_status_of_an_apply_operation_is_404_though_it_names_the_same_ids() -> None:
    w = World()
    apply = w.cloud.backup_policies.apply(w.policy.id, w.vm.id).id
    status, _, body = w.call(signed_get(apply))
    assert status == 404 and error_of(body)[0] == "NOT_FOUND"


@pytest.mark.parametrize(("code", "status"), [(7, 404), (3, 404), (14, 503), (4, 503), (13, 503), (12, 502)])
def test_status_cloud_errors(code: int, status: int) -> None:
    w = World()
    w.cloud.fail("operations.get", CloudError(code, "boom"))
    got, headers, body = w.call(signed_get("cdg00000000000000001"))
    assert got == status and error_of(body)[0] in {"NOT_FOUND", "CLOUD_UNAVAILABLE", "CLOUD_FAILED"}
    assert ("Retry-After" in headers) == (status == 503)


def test_status_unsigned_only_when_the_trigger_is_open_for_local_runs() -> None:
    w = World(WEBHOOK_SECRET="", ALLOW_UNSIGNED_HTTP="true")
    op = w.cloud.backup_policies.execute(w.policy.id, w.vm.id).id
    status, _, body = w.call(invocation("GET", f"/backup/{op}"))
    assert status == 200 and body["operationId"] == op


def test_the_clock_window_is_the_deps_clock() -> None:
    w = World()
    op = started(w)
    w.clock.advance(timedelta(minutes=6).total_seconds())
    status, _, _ = w.call(signed_get(op))
    assert status == 401
    assert abs(time.time() - NOW) > 300  # the frozen clock, not the system's, decided
