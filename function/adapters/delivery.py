"""HTTP delivery for the result sinks: a retrying `requests` session that says what went wrong, and where.

- `http_session(max_attempts, sink=...)`: retries POSTs through urllib3's `Retry` (connection errors, read
  timeouts, 429/500/502/503/504; back-off 0.2 s, 0.4 s ..., at most 2 s; `Retry-After` is not waited for).
  Every failed attempt is one warning `sink attempt failed` with `sink`, `host`, `reason`, `attempt` and
  `maxAttempts`, logged by the `Retry` subclass itself: `increment` is the one place that sees every failed
  attempt, status or connection error, with its pool's host.
- `deliver(...)`: one POST through such a session; unless a 2xx comes back, one warning `sink delivery failed`
  (sink, host, reason, attempts) and a `SinkError` whose message names the host and the status or the kind of
  connection error, never the URL's path or query (Slack URLs carry their token there), a secret or a signature.
- `quiet_urllib3_retries()`: urllib3 logs its own "Retrying ... after connection broken by ...: <path>" warning,
  path included; a filter drops it (the attempt line above replaces it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backups.ports import SinkError
from observability import get_logger

if TYPE_CHECKING:
    import requests

RETRY_STATUSES = (429, 500, 502, 503, 504)
BACKOFF_FACTOR = 0.2
BACKOFF_MAX = 2.0
TIMEOUT = (3.05, 10.0)  # connect, read
USER_AGENT = "yc-backup-runner (result sink)"


def host_of(url: str) -> str:
    """What an error message may say about a URL: its host, never its path or query (tokens live there)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


# Why a request got no answer, by the exception urllib3 / requests raised (never its text: it quotes the URL).
CONNECTION_REASONS = {
    "NameResolutionError": "host name not resolved",
    "NewConnectionError": "connection refused or unreachable",
    "ConnectTimeoutError": "connect timeout",
    "ConnectTimeout": "connect timeout",
    "ReadTimeoutError": "read timeout",
    "ReadTimeout": "read timeout",
    "SSLError": "TLS error",
    "ProtocolError": "connection dropped",
    "ProxyError": "proxy error",
}


def failure_reason(error: BaseException | None) -> str:
    """The innermost cause of a failed request, as a short name (requests wraps urllib3 wraps the socket)."""
    inner = error
    for _ in range(4):
        nested = getattr(inner, "reason", None)
        if not isinstance(nested, BaseException):
            args = getattr(inner, "args", ())
            nested = args[0] if args and isinstance(args[0], BaseException) else None
        if nested is None:
            break
        inner = nested
    if inner is None:
        return "no answer"
    name = type(inner).__name__
    return CONNECTION_REASONS.get(name, name)


def _attempt_logging_retry() -> type:
    """urllib3's `Retry`, plus one warning per failed attempt. Subclassed rather than wrapped: `increment` is the
    one place that sees every failed attempt (status or connection error) with its pool's host."""
    from urllib3.util.retry import Retry

    class _AttemptLoggingRetry(Retry):
        sink = "sink"
        max_attempts = 1

        def new(self, **kw: Any) -> _AttemptLoggingRetry:
            fresh = super().new(**kw)
            fresh.sink, fresh.max_attempts = self.sink, self.max_attempts
            return fresh

        def increment(  # type: ignore[override]
            self,
            method: str | None = None,
            url: str | None = None,
            response: Any = None,
            error: Exception | None = None,
            _pool: Any = None,
            _stacktrace: Any = None,
        ) -> Retry:
            reason = f"HTTP {response.status}" if response is not None else failure_reason(error)
            get_logger().warning(
                "sink attempt failed",
                extra={
                    "sink": self.sink,
                    "host": str(getattr(_pool, "host", None) or "?"),
                    "reason": reason,
                    "attempt": len(self.history) + 1,
                    "maxAttempts": self.max_attempts,
                },
            )
            return super().increment(method, url, response, error, _pool, _stacktrace)

    return _AttemptLoggingRetry


_RETRY_CLASS: type | None = None


class _NoRetryUrls(logging.Filter):
    """Drops urllib3's own "Retrying (...) after connection broken by ...: <url>" warning: it quotes the request
    path (a Slack response_url carries its token there), and `sink attempt failed` says the same without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying (")


def quiet_urllib3_retries() -> None:
    """Install `_NoRetryUrls` on urllib3's connection pool logger, once per process."""
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _NoRetryUrls) for f in pool_logger.filters):
        pool_logger.addFilter(_NoRetryUrls())


def http_session(max_attempts: int, sink: str = "sink") -> requests.Session:
    """A session that retries POSTs `max_attempts - 1` times on connection errors and 429/5xx (urllib3 Retry),
    logging each failed attempt with `sink`'s name."""
    import requests
    from requests.adapters import HTTPAdapter

    global _RETRY_CLASS
    quiet_urllib3_retries()
    if _RETRY_CLASS is None:
        _RETRY_CLASS = _attempt_logging_retry()
    retries = max(0, max_attempts - 1)
    retry = _RETRY_CLASS(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        allowed_methods=frozenset({"POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX,
        respect_retry_after_header=False,
        raise_on_status=False,
        raise_on_redirect=False,
    )
    retry.sink, retry.max_attempts = sink, max(1, max_attempts)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False  # no proxies or .netrc credentials from the environment
    session.headers["User-Agent"] = USER_AGENT
    return session


class Refused(SinkError):
    """The receiver answered, with a status that is not 2xx (`status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def delivery_failed(
    sink: str, host: str, reason: str, attempts: int | None, message: str, status: int | None = None
) -> SinkError:
    """The one `sink delivery failed` warning of a sink that gave up, and the SinkError it raises."""
    fields: dict[str, Any] = {"sink": sink, "host": host, "reason": reason}
    if attempts is not None:
        fields["attempts"] = attempts
    get_logger().warning("sink delivery failed", extra=fields)
    return SinkError(message) if status is None else Refused(message, status)


def deliver(session: requests.Session, url: str, what: str, sink: str, **kwargs: Any) -> None:
    """POST; SinkError (host and status or reason only) unless a 2xx came back."""
    import requests

    host = host_of(url)
    max_attempts = getattr(_retry_of(session), "max_attempts", None)
    try:
        response = session.post(url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        reason = "too many failed attempts" if isinstance(exc, requests.exceptions.RetryError) else failure_reason(exc)
        raise delivery_failed(sink, host, reason, max_attempts, f"{what} at {host} unreachable: {reason}") from None
    with response:
        status = response.status_code
        history = getattr(getattr(response.raw, "retries", None), "history", None)
    if not 200 <= status < 300:
        attempts = len(history) + 1 if history is not None else None
        message = f"{what} at {host} answered HTTP {status}"
        raise delivery_failed(sink, host, f"HTTP {status}", attempts, message, status=status)


def _retry_of(session: requests.Session) -> Any:
    adapter = session.adapters.get("https://")
    return getattr(adapter, "max_retries", None)
