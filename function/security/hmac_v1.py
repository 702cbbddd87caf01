"""The ONE HMAC-SHA256 `v1=` scheme, used three ways (docs/WEBHOOK.md):

    X-Backup-Timestamp: <unix seconds>            (result webhook: X-Signature-Timestamp)
    X-Backup-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{message}")>[, v1=<...>]

- `POST /backup`: the message is the raw body;
- `GET /backup/{operationId}`: the message is `GET /backup/<operationId>` (`status_message`);
- the result webhook (adapters.sinks): the message is the event body; `sign` / `verify_signature` are the sender
  and receiver halves.

It never depends on `Authorization` (Yandex strips that header on direct function calls). The timestamp must be
within 300 s of now (either side); signatures are compared in constant time; several comma-separated `v1=` values
are accepted (at most 8, 1024 characters), so a sender can sign with the old and the new secret during a rotation.
The signed timestamp is always the canonical decimal form of the parsed header value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from security.common import (
    DEFAULT_MAX_BODY_BYTES,
    TOLERANCE_SECONDS,
    Now,
    Unauthorized,
    as_bytes,
    check_timestamp,
    now_seconds,
    prepare,
)

TIMESTAMP_HEADER = "x-backup-timestamp"
SIGNATURE_HEADER = "x-backup-signature"
MAX_SIGNATURES = 8  # comma-separated values looked at in one header
MAX_SIGNATURE_HEADER = 1024  # characters

_V1_RE = re.compile(r"v1=([0-9a-fA-F]{64})", re.ASCII)


def hmac_hex(secret: str | bytes, message: bytes) -> str:
    """The project's one HMAC: hex HMAC-SHA256 of `message` under `secret` (every scheme below builds on it)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_hex(secret: str | bytes, timestamp: int | str, message: bytes | str) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}.{message}" under `secret` (without the `v1=` prefix)."""
    return hmac_hex(secret, str(timestamp).encode("ascii") + b"." + as_bytes(message))


def sign(secret: str | bytes, timestamp: int | str, message: bytes | str) -> str:
    """`v1=<hex HMAC-SHA256(secret, f"{timestamp}.{message}")>`: one header value."""
    return "v1=" + signature_hex(secret, timestamp, message)


def sign_webhook(secret: str | Sequence[str], body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers a client sends. Several secrets (rotation) give several comma-separated `v1=` values."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("a webhook secret must not be empty")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signatures = ", ".join(sign(s, ts, body) for s in secrets)
    return {"X-Backup-Timestamp": str(ts), "X-Backup-Signature": signatures}


def status_message(operation_id: str) -> bytes:
    """What a `GET /backup/{operationId}` signature covers after "<timestamp>.": the method and canonical path."""
    return f"GET /backup/{operation_id}".encode()


def request_fingerprint(timestamp: int, raw_body: bytes | str) -> str:
    """A stable id of a signed request: sha256 of what was signed ("<timestamp>.<body>", the timestamp as the
    verified int). Used as the trigger id of a webhook call, so a replay inside the window names the same request
    however its timestamp header is written."""
    return hashlib.sha256(str(int(timestamp)).encode("ascii") + b"." + as_bytes(raw_body)).hexdigest()


def _given_signatures(header: str | None, name: str) -> list[bytes]:
    if header is None or not header.strip():
        raise Unauthorized(f"missing {name} header")
    if len(header) > MAX_SIGNATURE_HEADER:
        raise Unauthorized(f"{name} is too long")
    parts = [p.strip() for p in header.split(",") if p.strip()]
    if len(parts) > MAX_SIGNATURES:
        raise Unauthorized(f"{name} carries more than {MAX_SIGNATURES} signatures")
    given = [m.group(1).lower().encode("ascii") for p in parts if (m := _V1_RE.fullmatch(p))]
    if not given:
        raise Unauthorized(f"{name} must carry v1=<64 hex digits>")
    return given


def _matches(secrets: Sequence[str | bytes], ts: int, message: bytes, given: list[bytes]) -> bool:
    matched = False
    for secret in secrets:  # no early exit: the time taken does not depend on which one matched
        expected = signature_hex(secret, ts, message).encode("ascii")
        for sig in given:
            matched |= hmac.compare_digest(expected, sig)
    return matched


def verify_webhook(
    headers: Mapping[Any, Any] | None,
    message: bytes | str | None,
    secret: Any,
    now: Now | float | datetime | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    what: str = "body",
) -> int:
    """The verified timestamp, or Unauthorized unless one `v1=` signature matches one of the secrets, in the window.

    `message`: the raw body (`POST /backup`) or `status_message(id)`; `what` names it in the mismatch message.
    `secret`: a str, a SecretStr, or a sequence of them (server-side rotation). An empty secret refuses everything.
    Raises PayloadTooLarge (a ValueError) for a message over `max_body_bytes`, checked before any hashing.
    """
    disabled = "signed JSON requests are not enabled: WEBHOOK_SECRET is not set"
    secrets, h = prepare(headers, message, secret, max_body_bytes, disabled)
    ts = check_timestamp(h.get(TIMESTAMP_HEADER), now_seconds(now), header="X-Backup-Timestamp")
    given = _given_signatures(h.get(SIGNATURE_HEADER), "X-Backup-Signature")
    if not _matches(secrets, ts, as_bytes(message), given):
        raise Unauthorized(f"the X-Backup-Signature does not match the {what} and timestamp")
    return ts


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: str | bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """The result-webhook receiver's check (adapters.sinks docstring): a fresh timestamp and a matching `v1=`
    signature, compared in constant time. True or False, never raises on hostile input."""
    try:
        ts = check_timestamp(timestamp, time.time() if now is None else now, header="timestamp", tolerance=tolerance)
        given = _given_signatures(signature, "signature")
    except Unauthorized:
        return False
    return bool(secret) and _matches([secret], ts, as_bytes(body), given)
