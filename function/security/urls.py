"""Which URLs a message may make us post to. A Slack `response_url` arrives in a request and comes back in a
follow-up ticket: both ends check it with `check_response_url`, so nothing but `https://hooks.slack.com/...` is
ever called with a URL that came from outside. Error messages never include the URL (its path carries a token).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from security.common import BadRequest

SLACK_HOST = "hooks.slack.com"
SLACK_HOSTS: tuple[str, ...] = (SLACK_HOST,)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_URL_LENGTH = 2048


class UnsafeUrl(BadRequest):
    """A response URL we will not post to: not https, not an allowed host, user information, odd characters."""


def check_response_url(
    url: Any,
    *,
    allow_hosts: Sequence[str] = SLACK_HOSTS,
    allow_loopback: bool = False,
) -> str:
    """The URL itself if we may post to it, else UnsafeUrl: https only, the host exactly one of `allow_hosts`
    (no user information, port 443, no backslashes/spaces/control characters). `allow_loopback` (tests, local
    runs) also admits http://127.0.0.1, ::1 and localhost."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("the response URL is missing")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the response URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(ch.isspace() or ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeUrl("the response URL contains spaces, control characters, backslashes or non-ASCII")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = (parts.hostname or "").lower()
    except ValueError:
        raise UnsafeUrl("the response URL is not a valid URL") from None
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the response URL must not carry user information")
    scheme = parts.scheme.lower()
    loopback = allow_loopback and host in LOOPBACK_HOSTS
    if not (scheme == "https" or (loopback and scheme == "http")):
        raise UnsafeUrl("the response URL must use https")
    if not loopback:
        if host not in {h.lower() for h in allow_hosts}:
            raise UnsafeUrl(f"the response URL's host is not allowed (allowed: {', '.join(allow_hosts)})")
        if port not in (None, 443):
            raise UnsafeUrl("the response URL must use the default https port")
    if not parts.path.startswith("/") or parts.path == "/" or parts.fragment:
        raise UnsafeUrl("the response URL must have a path and no fragment")
    return url


def is_slack_url(url: str) -> bool:
    """Only `https://hooks.slack.com/...` (default port): what the chat sink may post to."""
    try:
        check_response_url(url)
    except UnsafeUrl:
        return False
    return True
