"""What a sender signs, written out by hand for tests (independent of the code under test).

- `slack_signature`: Slack's v0 scheme, `v0=<hex HMAC-SHA256(secret, "v0:<timestamp>:<raw body>")>`;
- `slack_headers`: the two headers Slack sends with it;
- `v1_hex`: our v1 scheme, hex HMAC-SHA256(secret, "<timestamp>.<message>").
"""

from __future__ import annotations

import hashlib
import hmac


def _raw(body: str | bytes) -> bytes:
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body


def slack_signature(secret: str, timestamp: int | str, body: str | bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + _raw(body), hashlib.sha256).hexdigest()


def slack_headers(secret: str, timestamp: int | str, body: str | bytes) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": slack_signature(secret, timestamp, body)}


def v1_hex(secret: str, timestamp: int | str, message: str | bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + _raw(message), hashlib.sha256).hexdigest()
