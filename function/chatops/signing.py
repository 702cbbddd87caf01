"""The signed JSON webhook (CI and other tools) and the one gate every HTTP request passes: `authorize_http`.

Scheme (docs/WEBHOOK.md):

    X-Backup-Timestamp: <unix seconds>
    X-Backup-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>[, v1=<...>]

It never depends on `Authorization` (Yandex strips that header on direct function calls). The timestamp must be
within 300 s of now (either side); signatures are compared in constant time; several comma-separated `v1=` values
are accepted, so a sender can sign with the old and the new secret while a secret is rotated.

Errors: `Unauthorized` (401: missing, malformed, stale or wrong signature; the trigger is closed) and `BadRequest`
(a `ValueError`, 400/413: input that is too big or unreadable). Neither message ever carries a secret, a signature
or the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from settings import Settings

TIMESTAMP_HEADER = "x-backup-timestamp"
SIGNATURE_HEADER = "x-backup-signature"
SLACK_SIGNATURE_HEADER = "x-slack-signature"
TOLERANCE_SECONDS = 300
MAX_SIGNATURES = 8  # comma-separated values looked at in one header
MAX_SIGNATURE_HEADER = 1024  # characters
DEFAULT_MAX_BODY_BYTES = 65536

_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)
_V1_RE = re.compile(r"v1=([0-9a-fA-F]{64})", re.ASCII)
_FORM_TYPE = "application/x-www-form-urlencoded"

Now = Callable[[], float] | Callable[[], datetime]


class Unauthorized(Exception):
    """The request is not proven to come from a holder of the secret (HTTP 401). The message is safe to return."""

    status_code = 401


class BadRequest(ValueError):
    """The request itself is unusable (HTTP 400). The message is safe to return and never carries a secret."""

    status_code = 400


class PayloadTooLarge(BadRequest):
    status_code = 413


def now_seconds(now: Now | float | datetime | None) -> float:
    """`now` as unix seconds: a number or an aware datetime, a callable returning one (a clock), or None for the
    system clock."""
    if now is None:
        return time.time()
    value = now() if callable(now) else now
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def normalize_headers(headers: Mapping[Any, Any] | None) -> dict[str, str]:
    """Lower-cased header names; values that are not strings (a malformed event) are dropped."""
    if not headers:
        return {}
    out: dict[str, str] = {}
    for key, value in headers.items():
        if isinstance(key, str) and isinstance(value, str):
            out[key.lower()] = value
    return out


def as_bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8", errors="surrogatepass")
    return bytes(body)


def check_body_size(raw_body: bytes | str | None, max_body_bytes: int) -> None:
    size = len(as_bytes(raw_body))
    if size > max_body_bytes:
        raise PayloadTooLarge(f"the request body is {size} bytes; at most {max_body_bytes} are accepted")


def check_timestamp(value: str | None, now: float, *, header: str, tolerance: int = TOLERANCE_SECONDS) -> int:
    """The header's unix-seconds value, or Unauthorized when absent, malformed or outside the window."""
    if value is None or not value.strip():
        raise Unauthorized(f"missing {header} header")
    value = value.strip()
    if not _TIMESTAMP_RE.fullmatch(value):
        raise Unauthorized(f"{header} must be unix seconds (digits only)")
    ts = int(value)
    skew = now - ts
    if skew > tolerance:
        raise Unauthorized(f"{header} is more than {tolerance} seconds old: the request is stale (or replayed)")
    if skew < -tolerance:
        raise Unauthorized(f"{header} is more than {tolerance} seconds in the future: check the sender's clock")
    return ts


def webhook_signature(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}.{body}" under `secret` (without the `v1=` prefix)."""
    message = str(timestamp).encode("ascii") + b"." + as_bytes(body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_webhook(secret: str | Sequence[str], body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers a client sends. Several secrets (rotation) give several comma-separated `v1=` values."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("a webhook secret must not be empty")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signatures = ", ".join(f"v1={webhook_signature(s, ts, body)}" for s in secrets)
    return {"X-Backup-Timestamp": str(ts), "X-Backup-Signature": signatures}


def _secret_list(secret: Any) -> list[str]:
    """Accepts a str, a pydantic SecretStr, or a sequence of them (the secrets valid right now)."""
    items = [secret] if isinstance(secret, str) or hasattr(secret, "get_secret_value") else list(secret or [])
    out = []
    for item in items:
        value = item.get_secret_value() if hasattr(item, "get_secret_value") else item
        if isinstance(value, str) and value:
            out.append(value)
    return out


class ReplayCache:
    """Optional: remembers signatures seen by this warm instance until their window closes, and refuses repeats.

    Only a convenience. A cold start forgets it, and a replay inside the window is harmless anyway when the trigger
    id is derived from the signed request (`request_fingerprint`): the same fingerprint gives the same idempotency
    keys, so Yandex Cloud Backup does not start a second backup.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check_and_remember(self, key: str, expires_at: float, now: float) -> None:
        while self._seen:  # drop expired entries (oldest first)
            oldest_key, oldest_expiry = next(iter(self._seen.items()))
            if oldest_expiry > now:
                break
            del self._seen[oldest_key]
        expiry = self._seen.get(key)
        if expiry is not None and expiry > now:
            raise Unauthorized("this signed request was already received (replay)")
        self._seen[key] = expires_at
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)


def request_fingerprint(timestamp: str | int, raw_body: bytes | str) -> str:
    """A stable id of a signed request (sha256 of what was signed): use it as the trigger id of a webhook call."""
    return hashlib.sha256(str(timestamp).encode("ascii") + b"." + as_bytes(raw_body)).hexdigest()


def verify_webhook(
    headers: Mapping[Any, Any] | None,
    raw_body: bytes | str | None,
    secret: Any,
    now: Now | float | datetime | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    replay_cache: ReplayCache | None = None,
) -> None:
    """Raises Unauthorized unless one `v1=` signature matches one of the secrets, within the 300 s window.

    `secret`: a str, a SecretStr, or a sequence of them (server-side rotation). An empty secret refuses everything.
    Raises PayloadTooLarge (a ValueError) for a body over `max_body_bytes`, checked before any hashing.
    """
    secrets = _secret_list(secret)
    if not secrets:
        raise Unauthorized("signed JSON requests are not enabled: WEBHOOK_SECRET is not set")
    check_body_size(raw_body, max_body_bytes)
    h = normalize_headers(headers)
    current = now_seconds(now)
    ts = check_timestamp(h.get(TIMESTAMP_HEADER), current, header="X-Backup-Timestamp")

    header = h.get(SIGNATURE_HEADER)
    if header is None or not header.strip():
        raise Unauthorized("missing X-Backup-Signature header")
    if len(header) > MAX_SIGNATURE_HEADER:
        raise Unauthorized("X-Backup-Signature is too long")
    parts = [p.strip() for p in header.split(",") if p.strip()]
    if len(parts) > MAX_SIGNATURES:
        raise Unauthorized(f"X-Backup-Signature carries more than {MAX_SIGNATURES} signatures")
    given = [m.group(1).lower().encode("ascii") for p in parts if (m := _V1_RE.fullmatch(p))]
    if not given:
        raise Unauthorized("X-Backup-Signature must carry v1=<64 hex digits>")

    body = as_bytes(raw_body)
    expected = [webhook_signature(s, ts, body).encode("ascii") for s in secrets]
    matched = False
    for exp in expected:  # no early exit: the time taken does not depend on which one matched
        for sig in given:
            matched |= hmac.compare_digest(exp, sig)
    if not matched:
        raise Unauthorized("the X-Backup-Signature does not match the body and timestamp")
    if replay_cache is not None:
        replay_cache.check_and_remember(request_fingerprint(ts, body), ts + TOLERANCE_SECONDS + 1, current)


# --- the gate --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpAuthorization:
    """What `authorize_http` decided: which parser the body goes to, and whether a signature proved it."""

    route: Literal["slack", "json"]
    signed: bool


def is_slack_request(headers: Mapping[str, str], path: str | None) -> bool:
    """Slack route: a path ending in /slack, or a form body that carries X-Slack-Signature (direct Yandex calls
    have no path)."""
    if path and path.rstrip("/").lower().endswith("/slack"):
        return True
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type == _FORM_TYPE and SLACK_SIGNATURE_HEADER in headers


def _secret_value(secret: Any) -> str | None:
    values = _secret_list(secret) if secret is not None else []
    return values[0] if values else None


def authorize_http(
    settings: Settings,
    headers: Mapping[Any, Any] | None,
    raw_body: bytes | str | None,
    path: str | None = None,
    now: Now | float | datetime | None = None,
    *,
    replay_cache: ReplayCache | None = None,
) -> HttpAuthorization:
    """Decide whether an HTTP request may go on, before anything reads its body. Fails closed.

    - body over `settings.max_body_bytes` -> PayloadTooLarge (checked first: nothing is hashed or parsed);
    - Slack route -> the Slack v0 signature with SLACK_SIGNING_SECRET; other routes -> the v1 webhook signature
      with WEBHOOK_SECRET;
    - a route whose secret is not set is closed (Unauthorized);
    - ALLOW_UNSIGNED_HTTP=true lets unsigned requests through only when NEITHER secret is set (local runs): once a
      secret is configured it is always enforced, so a spoofed header cannot move a request to an open route.
    """
    check_body_size(raw_body, settings.max_body_bytes)
    h = normalize_headers(headers)
    route: Literal["slack", "json"] = "slack" if is_slack_request(h, path) else "json"
    slack_secret = _secret_value(settings.slack_signing_secret)
    webhook_secret = _secret_value(settings.webhook_secret)

    if slack_secret is None and webhook_secret is None:
        if settings.allow_unsigned_http:
            return HttpAuthorization(route=route, signed=False)
        raise Unauthorized(
            "the HTTP trigger is closed: set WEBHOOK_SECRET (signed JSON requests) or SLACK_SIGNING_SECRET "
            "(Slack commands); ALLOW_UNSIGNED_HTTP=true is for local runs only"
        )
    if route == "slack":
        if slack_secret is None:
            raise Unauthorized("Slack commands are not enabled: SLACK_SIGNING_SECRET is not set")
        from chatops.slack import verify_slack

        verify_slack(h, raw_body, slack_secret, now, max_body_bytes=settings.max_body_bytes, replay_cache=replay_cache)
        return HttpAuthorization(route="slack", signed=True)
    if webhook_secret is None:
        raise Unauthorized("signed JSON requests are not enabled: WEBHOOK_SECRET is not set")
    verify_webhook(h, raw_body, webhook_secret, now, max_body_bytes=settings.max_body_bytes, replay_cache=replay_cache)
    return HttpAuthorization(route="json", signed=True)
