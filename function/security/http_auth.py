"""The gate every HTTP request passes before anything reads its body: `authorize(settings, route, ...)`.

The route is decided by the front (handlers.http) from the path, and for a direct call without one from the
headers; this module only checks that route's proof. Fails closed:

- a body over `settings.max_body_bytes` -> PayloadTooLarge (checked first: nothing is hashed or parsed);
- `slack` -> Slack's v0 signature with SLACK_SIGNING_SECRET; `backup` and `status` -> the v1 signature with
  WEBHOOK_SECRET, over the raw body (`backup`) or over `GET /backup/<operationId>` (`status`);
- a route whose secret is not set is closed (Unauthorized);
- ALLOW_UNSIGNED_HTTP=true lets unsigned requests through only when NEITHER secret is set (local runs): once a
  secret is configured it is always enforced, so a spoofed header cannot move a request to an open route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from security.common import Now, Unauthorized, check_body_size, secret_values
from security.hmac_v1 import status_message, verify_webhook
from security.slack import verify_slack

if TYPE_CHECKING:
    from settings import Settings

Route = Literal["backup", "slack", "status"]


@dataclass(frozen=True)
class HttpAuthorization:
    """What the gate proved: the route, whether a signature proved it, and the verified timestamp (signed only)."""

    route: Route
    signed: bool
    timestamp: int | None = None


def authorize(
    settings: Settings,
    route: Route,
    headers: Mapping[Any, Any] | None,
    raw_body: bytes | str | None,
    *,
    operation_id: str | None = None,
    now: Now | float | datetime | None = None,
) -> HttpAuthorization:
    """Unauthorized / PayloadTooLarge, or what was proved. `operation_id`: the `status` route's id (validated by
    the caller before it gets here)."""
    check_body_size(raw_body, settings.max_body_bytes)
    slack_secrets = secret_values(settings.slack_signing_secret)
    webhook_secrets = secret_values(settings.webhook_secret)
    if not slack_secrets and not webhook_secrets:
        if settings.allow_unsigned_http:
            return HttpAuthorization(route=route, signed=False)
        raise Unauthorized(
            "the HTTP trigger is closed: set WEBHOOK_SECRET (signed JSON requests) or SLACK_SIGNING_SECRET "
            "(Slack commands); ALLOW_UNSIGNED_HTTP=true is for local runs only"
        )
    limit = settings.max_body_bytes
    if route == "slack":
        if not slack_secrets:
            raise Unauthorized("Slack commands are not enabled: SLACK_SIGNING_SECRET is not set")
        ts = verify_slack(headers, raw_body, slack_secrets, now, max_body_bytes=limit)
        return HttpAuthorization(route=route, signed=True, timestamp=ts)
    if not webhook_secrets:
        raise Unauthorized("signed JSON requests are not enabled: WEBHOOK_SECRET is not set")
    if route == "status":
        if operation_id is None:
            raise ValueError("the status route needs its operation id")
        ts = verify_webhook(headers, status_message(operation_id), webhook_secrets, now, what="method, path")
    else:
        ts = verify_webhook(headers, raw_body, webhook_secrets, now, max_body_bytes=limit)
    return HttpAuthorization(route=route, signed=True, timestamp=ts)
