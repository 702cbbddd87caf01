"""The HTTP front: which route a request is for (decided here and only here), its authentication, and the reply
for each outcome.

Routes (a path that ends with them, so API Gateway stage prefixes don't matter):
- `POST /backup`: a signed JSON backup request (X-Backup-Timestamp / X-Backup-Signature, docs/WEBHOOK.md);
- `GET /backup/{operationId}`: the state of a started backup (handlers.status), signed over the method and path;
- `POST /slack`: a Slack slash command (Slack's v0 signature; handlers.slack).
A direct Yandex function call has no path: it is `/slack` when it is a form carrying X-Slack-Signature, else
`/backup`. With a path, only the path decides: a Slack-looking request sent to `/backup` is a `/backup` request
(and fails its signature). Anything else: 404, or 405 with `Allow` for a known path with another method.

The request is authenticated (security.http_auth) for the decided route before its body is read, and fails
closed without a secret. Every reply is JSON; every error reply is `{"error": {"code", "message"}}` (the 422 and
503 of a report keep the per-target detail beside `error`), with a message that says what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from backups.errors import RedeliveryRequested, StartError
from backups.models import ID_PATTERN, TriggerInfo
from backups.report import StartReport
from backups.run import run_request
from handlers.deps import Deps
from handlers.slack import handle_slack
from handlers.status import handle_status
from metrics import Settled
from observability import get_logger
from security.common import BadRequest, Unauthorized
from security.hmac_v1 import request_fingerprint
from security.http_auth import HttpAuthorization, Route, authorize
from security.slack import SLACK_SIGNATURE_HEADER
from triggers.http import FORM_TYPE, decode_body, http_reply
from triggers.model import HttpRequest, Invocation, TriggerError

METHODS: dict[Route, str] = {"backup": "POST", "slack": "POST", "status": "GET"}
RETRY_AFTER = "30"
_STATUS_PATH = re.compile(r"(?:^|/)backup/([^/]*)$", re.IGNORECASE)
_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    operation_id: str | None = None  # the status route's path segment, as sent (validated later)


def decide_route(request: HttpRequest) -> RouteDecision | None:
    """The route of a request, or None (404). The one place that decides it."""
    trimmed = request.path.rstrip("/")
    lowered = trimmed.lower()
    if lowered == "":
        # A direct call (no path): Slack is recognised by its own headers on a form body.
        is_form = request.content_type == FORM_TYPE
        return RouteDecision("slack" if is_form and SLACK_SIGNATURE_HEADER in request.headers else "backup")
    if lowered.endswith("/backup"):
        return RouteDecision("backup")
    if lowered.endswith("/slack"):
        return RouteDecision("slack")
    match = _STATUS_PATH.search(trimmed)
    if match:
        return RouteDecision("status", operation_id=match.group(1))
    return None


def _error(
    invocation: Invocation, status: int, code: str, message: str, report: Any = None, **headers: str
) -> dict[str, Any]:
    """The documented error shape; `report` (a StartReport): what did start, beside the error."""
    detail = report.to_json_dict() if isinstance(report, StartReport) else {}
    return http_reply(invocation, status, {"error": {"code": code, "message": message}, **detail}, headers or None)


def _retry_hint(message: str, report: Any) -> str:
    """Operations started before the failure: a retry must carry the same correlationId to follow them."""
    if isinstance(report, StartReport) and report.started:
        return f"{message}; {len(report.started)} backup(s) started (started[]): retry with the same correlationId"
    return message


def handle_http(invocation: Invocation, context: Any, deps: Deps) -> dict[str, Any]:
    log = get_logger()
    request = invocation.http
    assert request is not None  # parse_event sets it for every HTTP source
    decision = decide_route(request)
    if decision is None:
        log.info("no such route", extra={"method": request.method})
        return _error(
            invocation, 404, "NOT_FOUND", "no such route: use POST /backup, GET /backup/{operationId} or POST /slack"
        )
    method = METHODS[decision.route]
    if request.method != method:
        log.info("method not allowed", extra={"method": request.method, "route": decision.route})
        return _error(invocation, 405, "METHOD_NOT_ALLOWED", f"use {method}", Allow=method)
    operation_id = decision.operation_id
    if operation_id is not None and not _ID_RE.fullmatch(operation_id):
        log.info("status route: not an operation id")
        return _error(
            invocation, 400, "INVALID_OPERATION_ID", "the operation id must be 1-50 lowercase letters and digits"
        )
    try:
        auth = authorize(
            deps.settings,
            decision.route,
            request.headers,
            request.body,
            operation_id=operation_id,
            now=deps.clock.now,
        )
    except Unauthorized as exc:
        log.warning("HTTP request refused", extra={"reason": str(exc), "route": decision.route})
        return _error(invocation, 401, "UNAUTHENTICATED", str(exc))
    except BadRequest as exc:
        log.warning("HTTP request refused", extra={"reason": str(exc), "route": decision.route})
        return _error(invocation, getattr(exc, "status_code", 400), "BAD_REQUEST", str(exc))

    if decision.route == "slack":
        return handle_slack(invocation, context, deps)
    if operation_id is not None:
        return handle_status(invocation, operation_id, context, deps)
    return _backup(invocation, auth, context, deps)


def webhook_trigger_id(auth: HttpAuthorization, body: dict[str, Any], raw_body: bytes) -> str | None:
    """The identity of a signed `POST /backup`, from what the signature covers: the body's `correlationId`, else a
    hash of the verified timestamp (the parsed int, however the header wrote it) and the body. None: unsigned."""
    if not auth.signed or auth.timestamp is None:
        return None
    correlation = body.get("correlationId")
    if isinstance(correlation, str) and correlation:
        return f"webhook:{correlation}"
    return f"webhook:{request_fingerprint(auth.timestamp, raw_body)}"


def _backup(invocation: Invocation, auth: HttpAuthorization, context: Any, deps: Deps) -> dict[str, Any]:
    log = get_logger()
    request = invocation.http
    assert request is not None
    try:
        body = decode_body(request)
    except TriggerError as exc:
        log.info("HTTP body refused", extra={"code": exc.code, "error": str(exc)})
        return _error(invocation, exc.http_status, exc.code, str(exc))
    # The platform's request id and the Idempotency-Key header are not signed: a replayed request would get a
    # new one and start again. A signed request takes its identity from what the signature covers instead.
    trigger_id = webhook_trigger_id(auth, body, request.body) or invocation.messages[0].trigger_id
    trigger = TriggerInfo(source=invocation.source, trigger_id=trigger_id)
    ports = deps.ports(context)
    settled = Settled(ports.metrics)  # held until the reply is known: a 503 is sent again, and counted then
    try:
        # A request-level problem is answered with the 4xx itself: no failed result event (handlers.trigger).
        report = run_request(body, trigger, replace(ports, metrics=settled), report_request_failure=False)
    except StartError as exc:
        log.warning("request not started", extra={"code": exc.code, "error": exc.message})
        if exc.http_status != 503:
            settled.commit()
        headers = {"Retry-After": RETRY_AFTER} if exc.http_status == 503 else {}
        started = getattr(exc, "report", None)  # HANDOFF_FAILED: operations may have started
        return _error(invocation, exc.http_status, exc.code, _retry_hint(exc.message, started), started, **headers)
    except RedeliveryRequested as exc:
        message = _retry_hint(str(exc), exc.report)
        return _error(invocation, 503, "RESULT_DELIVERY_FAILED", message, exc.report, **{"Retry-After": RETRY_AFTER})
    status = status_for(report)
    if status != 503:
        settled.commit()
    retry = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return http_reply(invocation, status, reply_body(report, status), retry)


def status_for(report: StartReport) -> int:
    if report.dry_run:
        return 200
    if report.started or report.fanned_out or report.queued:
        return 202  # queued[]: retried by the function itself (backups.retry), do not send the request again
    if report.retryable:
        return 503
    if report.failed:
        return 422  # nothing could start: the body says, per target, what to fix
    return 200  # every target opted out


def reply_body(report: StartReport, status: int) -> dict[str, Any]:
    """The report as the caller sees it; an error status puts the documented `error` at the top, the per-target
    detail (`failed`, `retryable`) beside it."""
    body = report.to_json_dict()
    if status == 422:
        first, what = report.failed[0], f"no backup could start ({len(report.failed)} target(s) failed; see failed[])"
        return {
            "error": {"code": "NOTHING_STARTED", "message": f"{what}: {first.error.code}: {first.error.message}"},
            **body,
        }
    if status == 503:
        again = report.retryable[0]
        what = f"the cloud failed transiently for {len(report.retryable)} target(s), try again"
        return {"error": {"code": "RETRY_LATER", "message": f"{what}: {again.code}: {again.message}"}, **body}
    return body
