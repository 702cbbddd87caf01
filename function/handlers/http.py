"""The HTTP front: routes, authentication, and the reply for each outcome.

Routes (a path that ends with them, so API Gateway stage prefixes don't matter; a direct Yandex function call
has no path and is read as `/backup`, or as `/slack` when it carries Slack's signature headers):
- `POST /backup`: a signed JSON backup request (X-Backup-Timestamp / X-Backup-Signature, see docs/WEBHOOK.md);
- `POST /slack`: a Slack slash command (Slack's v0 signature).
Anything else: 404, or 405 with `Allow` for a known path with another method. The request is authenticated
before its body is read (fails closed without a secret); every reply is JSON with a message that says what
to fix, and never echoes the input unescaped.
"""

from __future__ import annotations

from typing import Any

from backups.errors import RedeliveryRequested, StartError
from backups.models import TriggerInfo
from backups.report import StartReport
from backups.run import run_request
from handlers.deps import Deps
from handlers.slack import handle_slack
from observability import get_logger
from triggers.http import decode_body, http_reply
from triggers.model import Invocation, TriggerError

ROUTES = {"/backup": "json", "/slack": "slack"}
METHODS = ("POST",)


def route_for(path: str) -> str | None:
    trimmed = path.rstrip("/").lower()
    if trimmed == "":
        return ""  # a direct call: the signature headers decide
    for suffix, route in ROUTES.items():
        if trimmed.endswith(suffix):
            return route
    return None


def _error(invocation: Invocation, status: int, code: str, message: str, **headers: str) -> dict[str, Any]:
    return http_reply(invocation, status, {"error": {"code": code, "message": message}}, headers or None)


def handle_http(invocation: Invocation, context: Any, deps: Deps) -> dict[str, Any]:
    from chatops.signing import BadRequest, Unauthorized, authorize_http, request_fingerprint

    log = get_logger()
    request = invocation.http
    assert request is not None  # parse_event sets it for every HTTP source
    route = route_for(request.path)
    if route is None:
        log.info("no such route", extra={"method": request.method})
        return _error(invocation, 404, "NOT_FOUND", "no such route: use POST /backup or POST /slack")
    if request.method not in METHODS:
        return _error(invocation, 405, "METHOD_NOT_ALLOWED", "use POST", Allow="POST")
    try:
        auth = authorize_http(deps.settings, request.headers, request.body, request.path, deps.clock.now)
    except Unauthorized as exc:
        log.warning("HTTP request refused", extra={"reason": str(exc)})
        return _error(invocation, 401, "UNAUTHENTICATED", str(exc))
    except BadRequest as exc:
        status = getattr(exc, "status_code", 400)
        return _error(invocation, status, "BAD_REQUEST", str(exc))

    if auth.route == "slack":
        return handle_slack(invocation, context, deps)

    try:
        body = decode_body(request)
    except TriggerError as exc:
        return _error(invocation, exc.http_status, exc.code, str(exc))
    message = invocation.messages[0]
    trigger_id = message.trigger_id
    if auth.signed:
        # The platform's request id and the Idempotency-Key header are not signed: a replayed request would get
        # a new one and start again. Take the identity from what the signature covers instead.
        correlation = body.get("correlationId") if isinstance(body.get("correlationId"), str) else None
        timestamp = request.header("x-backup-timestamp") or ""
        trigger_id = (
            f"webhook:{correlation}" if correlation else f"webhook:{request_fingerprint(timestamp, request.body)}"
        )
    trigger = TriggerInfo(source=invocation.source, trigger_id=trigger_id)
    try:
        # A request-level problem is answered with the 4xx itself: no failed result event (handlers.trigger).
        report = run_request(body, trigger, deps.ports(context), report_request_failure=False)
    except StartError as exc:
        log.warning("request not started", extra={"code": exc.code, "error": exc.message})
        headers = {"Retry-After": "30"} if exc.http_status == 503 else {}
        return _error(invocation, exc.http_status, exc.code, exc.message, **headers)
    except RedeliveryRequested as exc:
        return _error(invocation, 503, "RESULT_DELIVERY_FAILED", str(exc), **{"Retry-After": "30"})
    return http_reply(invocation, _status_for(report), _reply_body(report))


def _status_for(report: StartReport) -> int:
    if report.dry_run:
        return 200
    if report.started or report.fanned_out:
        return 202
    if report.retryable:
        return 503
    if report.failed:
        return 422  # nothing could start: the body says, per target, what to fix
    return 200  # every target opted out


def _reply_body(report: StartReport) -> dict[str, Any]:
    return report.to_json_dict()
