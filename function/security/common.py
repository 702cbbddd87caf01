"""What every signature check shares: its errors, header and body normalising, the clock and the time window.

Errors: `Unauthorized` (401: missing, malformed, stale or wrong signature; the route is closed) and `BadRequest`
(a `ValueError`, 400; `PayloadTooLarge` 413). Their messages are safe to return: never a secret, a signature or
the body.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from triggers.model import DEFAULT_MAX_BODY_BYTES

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "TOLERANCE_SECONDS",
    "BadRequest",
    "Now",
    "PayloadTooLarge",
    "Unauthorized",
    "as_bytes",
    "check_body_size",
    "check_timestamp",
    "normalize_headers",
    "now_seconds",
    "secret_values",
]

TOLERANCE_SECONDS = 300  # both schemes (ours and Slack's): a timestamp more than 5 minutes away is refused
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)

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
    """The header's unix-seconds value, or Unauthorized when absent, malformed or outside the window.

    Surrounding whitespace and leading zeros are tolerated, but what counts from here on is the returned int:
    signatures are computed over its canonical decimal form, and so is a request's identity (a reformatted
    header can neither verify differently nor name another request)."""
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


def secret_values(secret: Any) -> list[str]:
    """The non-empty secrets in `secret`: a str, a pydantic SecretStr, or a sequence of them (rotation)."""
    if secret is None:
        return []
    items = [secret] if isinstance(secret, str) or hasattr(secret, "get_secret_value") else list(secret)
    out = []
    for item in items:
        value = item.get_secret_value() if hasattr(item, "get_secret_value") else item
        if isinstance(value, str) and value.strip():
            out.append(value)
    return out


def prepare(
    headers: Mapping[Any, Any] | None, body: bytes | str | None, secret: Any, max_body_bytes: int, disabled: str
) -> tuple[list[str], dict[str, str]]:
    """What every verifier does first: the secrets (Unauthorized with `disabled` when none is set), the body size
    (PayloadTooLarge, before any hashing), the headers by lower-case name."""
    secrets = secret_values(secret)
    if not secrets:
        raise Unauthorized(disabled)
    check_body_size(body, max_body_bytes)
    return secrets, normalize_headers(headers)
