"""AWS Signature Version 4 for the JSON-protocol calls of adapters.aws, and the credentials it signs with.

Hand-written (hashlib and hmac) for the reason adapters.aws gives; tests/unit/test_aws_sigv4.py holds it against
botocore's own `SigV4Auth`. Credentials come from the environment only (adapters.aws's rules) and never show in a
repr.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Headers never signed (botocore's SIGNED_HEADERS_BLACKLIST): proxies and clients may change them.
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


@dataclass(frozen=True)
class Credentials:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials | None:
        key, secret = environ.get("AWS_ACCESS_KEY_ID", ""), environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not key or not secret:
            return None
        return cls(key, secret, environ.get("AWS_SESSION_TOKEN") or None)

    def secrets(self) -> list[str]:
        """Every value that must never appear in a text (the key id included: it names the account's key)."""
        return [value for value in (self.access_key, self.secret_key, self.token) if value]


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 with consecutive slashes collapsed, as AWS (and botocore's `remove_dot_segments`) do."""
    out: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part and part != ".":
            out.append(part)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def host_header(url: str) -> str:
    """The Host header of `url`: lower-case host, brackets for IPv6, the port unless it is the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    pairs = sorted((quote(key, safe="-_.~"), quote(str(value), safe="-_.~")) for key, value in params)
    return "&".join(f"{key}={value}" for key, value in pairs)


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime,
    params: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """The request's headers with `Host`, `X-Amz-Date`, `X-Amz-Security-Token` (temporary keys) and
    `Authorization` added. `url` carries no query: `params` are the query (sent as `canonical_query(params)`)."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = {name: value for name, value in headers.items() if name.lower() not in ("authorization", "host")}
    out["X-Amz-Date"] = stamp
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    signed = {name.lower(): " ".join(value.split()) for name, value in out.items()}
    signed = {name: value for name, value in signed.items() if name not in UNSIGNED_HEADERS}
    signed["host"] = host_header(url)
    names = sorted(signed)
    canonical = "\n".join(
        [
            method.upper(),
            quote(_remove_dot_segments(urlsplit(url).path) or "/", safe="/~"),
            canonical_query(params),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
        ]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Host"] = signed["host"]
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out
