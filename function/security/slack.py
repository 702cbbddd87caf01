"""Slack's v0 request signature: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
"v0:<X-Slack-Request-Timestamp>:<raw body>")>`, the timestamp within 5 minutes.

The HMAC itself is slack_sdk's `SignatureVerifier` (the maintained implementation of Slack's rule); the header
shapes are checked here first, so that odd input only ever yields 401. slack_sdk is imported when a Slack request
is verified, not when this module is: the other routes never pay its import (cold start).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from security import common
from security.common import DEFAULT_MAX_BODY_BYTES, Now, Unauthorized

SLACK_SIGNATURE_HEADER = "x-slack-signature"
SLACK_TIMESTAMP_HEADER = "x-slack-request-timestamp"
_SLACK_SIG_RE = re.compile(r"v0=[0-9a-fA-F]{64}", re.ASCII)


def verify_slack(
    headers: Mapping[Any, Any] | None,
    raw_body: bytes | str | None,
    secret: Any,
    now: Now | float | datetime | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> int:
    """The verified timestamp, or Unauthorized (PayloadTooLarge for a body over `max_body_bytes`).

    `headers`: the request headers (any case); `secret`: the signing secret (str or SecretStr); `now`: unix seconds
    or a callable returning them (tests freeze it), default the system clock.
    """
    disabled = "Slack commands are not enabled: SLACK_SIGNING_SECRET is not set"
    secrets, h = common.prepare(headers, raw_body, secret, max_body_bytes, disabled)
    signature = (h.get(SLACK_SIGNATURE_HEADER) or "").strip()
    if not signature:
        raise Unauthorized("missing X-Slack-Signature header")
    current = common.now_seconds(now)
    ts = common.check_timestamp(
        h.get(SLACK_TIMESTAMP_HEADER), current, header="X-Slack-Request-Timestamp", tolerance=common.TOLERANCE_SECONDS
    )
    if not _SLACK_SIG_RE.fullmatch(signature):
        raise Unauthorized("X-Slack-Signature must be v0=<64 hex digits>")
    body = common.as_bytes(raw_body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unauthorized("the body is not UTF-8, so it is not a signed Slack request") from None

    from slack_sdk.signature import Clock, SignatureVerifier

    class _FrozenClock(Clock):
        def now(self) -> float:
            return current

    try:
        verifier = SignatureVerifier(signing_secret=secrets[0], clock=_FrozenClock())
        valid = verifier.is_valid(body=body, timestamp=str(ts), signature=signature.lower())
    except (ValueError, TypeError):  # defensive: inputs are pre-checked, so this should not happen
        valid = False
    if not valid:
        raise Unauthorized("the X-Slack-Signature does not match the body and timestamp")
    return ts
