"""Slack's v0 request signature: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
"v0:<X-Slack-Request-Timestamp>:<raw body>")>`, the timestamp within 5 minutes.

The HMAC is the project's one signer (security.hmac_v1.hmac_hex) over Slack's documented base string
(https://api.slack.com/authentication/verifying-requests-from-slack), compared in constant time against every
configured secret (rotation). slack_sdk's `SignatureVerifier` was used here before; it costs ~55 ms of import on the
cold Slack ack (docs/BENCHMARKS.md, figure 8) for four lines of hashing, so it is now the tests' oracle instead
(tests/unit/test_security_slack.py checks that both agree). The header shapes are checked first, so that odd input
only ever yields 401.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from security import common
from security.common import DEFAULT_MAX_BODY_BYTES, Now, Unauthorized
from security.hmac_v1 import hmac_hex

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

    base = b"v0:" + str(ts).encode("ascii") + b":" + body
    given = signature.lower().encode("ascii")
    valid = False
    for candidate in secrets:  # no early exit: the time taken does not depend on which secret matched
        valid |= hmac.compare_digest(("v0=" + hmac_hex(candidate, base)).encode("ascii"), given)
    if not valid:
        raise Unauthorized("the X-Slack-Signature does not match the body and timestamp")
    return ts
