"""HTTP for the Yandex Cloud client: one pooled session, timeouts, retries bounded by the invocation's deadline.

The retry loop is ours rather than urllib3's `Retry` on the adapter or tenacity:
- whether a POST may be retried depends on its `Idempotency-Key` header, and the session is shared by threads,
  so the policy has to be per request (an adapter's `max_retries` is per session);
- every sleep, `Retry-After` included, must fit in what is left of the invocation, which urllib3 cannot see
  while it sleeps inside `urlopen`;
- a 401 is retried once with a fresh token, and attempts are counted: both need the loop in our hands.
urllib3's `Retry.parse_retry_after` still parses the header (seconds or HTTP date). Tenacity would be one more
dependency (and import) for a 40-line loop.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from ycloud.errors import CloudError, code_for_http

if TYPE_CHECKING:
    from ycloud.auth import TokenProvider

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MIN_ATTEMPT_SECONDS = 0.25  # do not start an attempt (or sleep before one) with less time than this left
MAX_RETRY_AFTER_SECONDS = 60.0  # without a deadline, a Retry-After longer than this is not waited for
USER_AGENT = "yc-backup-runner (python-requests)"

# gRPC codes used for transport failures.
UNKNOWN, DEADLINE_EXCEEDED, UNAVAILABLE = 2, 4, 14

_session: requests.Session | None = None
_session_lock = threading.Lock()


def get_session() -> requests.Session:
    """The process-wide pooled session, built on first use (never at import: cold start and test isolation)."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                # We retry ourselves; the adapter must not (its default already is 0 retries, say so).
                adapter = HTTPAdapter(pool_connections=8, pool_maxsize=32, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                # No proxies or .netrc from the environment: .netrc credentials would replace our Authorization.
                session.trust_env = False
                session.headers["User-Agent"] = USER_AGENT
                _session = session
    return _session


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: base * 2**retry, capped, times U[1 - jitter, 1 + jitter)."""

    max_retries: int = 5
    backoff_base: float = 0.25
    backoff_cap: float = 20.0
    jitter: float = 0.5

    def backoff(self, retry: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * (2**retry))
        return delay * (1.0 + self.jitter * (2.0 * random.random() - 1.0))


class Transport:
    """Sends one logical call, with retries, and returns the decoded JSON object or raises CloudError."""

    def __init__(
        self,
        *,
        auth: TokenProvider | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 20.0,
        retry: RetryPolicy | None = None,
        remaining_time: Callable[[], float | None] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.auth = auth
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry or RetryPolicy()
        self._remaining = remaining_time or (lambda: None)
        self._session = session
        self._sleep = sleep
        self._count_lock = threading.Lock()
        self.calls = 0  # logical API calls
        self.attempts = 0  # HTTP attempts for them (retries and the 401 re-try included)
        self.auth_calls = 0  # token requests (IAM exchange, metadata): not in calls/attempts

    @property
    def session(self) -> requests.Session:
        return self._session or get_session()

    # -- public -------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        timeout: tuple[float, float] | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        method = method.upper()
        client_request_id = str(uuid.uuid4())  # one per logical call, kept across its retries
        base_headers = {"x-client-request-id": client_request_id, "Accept": "application/json"}
        if idempotency_key:
            base_headers["Idempotency-Key"] = idempotency_key
        if headers:
            base_headers.update(headers)
        may_retry_any = method in IDEMPOTENT_METHODS or bool(idempotency_key)
        retries_allowed = self.retry.max_retries if max_retries is None else max_retries
        ctx = _CallContext(method, url, client_request_id)
        self._count(call=authenticated)

        retries = 0
        refreshed = False
        while True:
            left = self._left()
            if left is not None and left < MIN_ATTEMPT_SECONDS:
                raise ctx.error(DEADLINE_EXCEEDED, "no time left in this invocation for the call", http_status=0)
            send_headers = dict(base_headers)
            token: SecretStr | None = None
            if authenticated and self.auth is not None:
                token = self.auth.token()
                send_headers["Authorization"] = "Bearer " + token.get_secret_value()
            self._count(attempt=authenticated)
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=_clean(params),
                    json=json_body,
                    headers=send_headers,
                    timeout=self._timeouts(timeout, left),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                error, connect_failed = _transport_error(exc, ctx)
                self._debug(ctx, status=0, attempt=retries + 1, started=started, error=error.name)
                retryable = error.transient and (may_retry_any or connect_failed)
                if retryable and retries < retries_allowed and self._wait(ctx, retries, None):
                    retries += 1
                    continue
                raise error from None

            request_id = response.headers.get("x-request-id", "")
            self._debug(ctx, status=response.status_code, attempt=retries + 1, started=started, request_id=request_id)
            if 200 <= response.status_code < 300:
                return _decode_ok(response, ctx, request_id)

            error = _http_error(response, ctx, request_id)
            auth = self.auth
            if (
                response.status_code == 401
                and not refreshed
                and token is not None
                and auth is not None
                and auth.refreshable
            ):
                # Refused before any work: retrying once with a fresh token is safe for any verb.
                auth.invalidate(token)
                refreshed = True
                continue
            if (
                response.status_code in RETRY_STATUSES
                and may_retry_any
                and retries < retries_allowed
                and self._wait(ctx, retries, response.headers.get("Retry-After"))
            ):
                retries += 1
                continue
            raise error

    def fetch(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """An unauthenticated call for the token providers (`ycloud.auth.Fetch`). A token exchange creates
        nothing, so a POST here may be retried."""
        self._count(auth=True)
        return self.request(
            method,
            url,
            json_body=json_body,
            headers=headers,
            authenticated=False,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=None if method.upper() in IDEMPOTENT_METHODS else str(uuid.uuid4()),
        )

    # -- internals ----------------------------------------------------------------------------------------

    def _count(self, *, call: bool = False, attempt: bool = False, auth: bool = False) -> None:
        with self._count_lock:
            self.calls += call
            self.attempts += attempt
            self.auth_calls += auth

    def _left(self) -> float | None:
        try:
            left = self._remaining()
        except Exception:  # a broken clock must not break the call: run unbounded
            return None
        return None if left is None else float(left)

    def _timeouts(self, override: tuple[float, float] | None, left: float | None) -> tuple[float, float]:
        connect, read = override or (self.connect_timeout, self.read_timeout)
        if left is not None:  # never wait on a socket past the deadline
            connect, read = min(connect, left), min(read, left)
        return connect, read

    def _wait(self, ctx: _CallContext, retries: int, retry_after: str | None) -> bool:
        """Sleep before the next attempt if that attempt still fits in the deadline; False means give up."""
        delay = self.retry.backoff(retries)
        if retry_after:
            parsed = _parse_retry_after(retry_after)
            if parsed is not None:
                delay = parsed
        left = self._left()
        if left is None:
            if delay > MAX_RETRY_AFTER_SECONDS:
                return False
        elif delay + MIN_ATTEMPT_SECONDS > left:
            _log("debug", "not retrying: the next attempt would not fit in the invocation", ctx, delay=delay, left=left)
            return False
        _log("info", "retrying", ctx, retry=retries + 1, delay=round(delay, 3))
        self._sleep(delay)
        return True

    def _debug(self, ctx: _CallContext, *, status: int, attempt: int, started: float, **fields: Any) -> None:
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        _log("debug", "yandex cloud call", ctx, status=status, attempt=attempt, elapsedMs=elapsed_ms, **fields)


@dataclass(frozen=True)
class _CallContext:
    method: str
    url: str
    client_request_id: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def error(self, code: int, message: str, **kwargs: Any) -> CloudError:
        return CloudError(
            code, message, method=self.method, path=self.path, client_request_id=self.client_request_id, **kwargs
        )


def _clean(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _parse_retry_after(value: str) -> float | None:
    from urllib3.util.retry import Retry

    try:
        return max(0.0, float(Retry(retry_after_max=86400).parse_retry_after(value)))
    except Exception:  # an unparseable header is ignored, the backoff applies
        return None


def _decode_ok(response: requests.Response, ctx: _CallContext, request_id: str) -> dict[str, Any]:
    if not response.content:
        return {}  # google.protobuf.Empty may come back as an empty body
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ctx.error(
            UNKNOWN, "the response is not a JSON object", http_status=response.status_code, request_id=request_id
        )
    return body


def _http_error(response: requests.Response, ctx: _CallContext, request_id: str) -> CloudError:
    """google.rpc.Status when the body is one; otherwise the code that the HTTP status stands for."""
    status = response.status_code
    code = code_for_http(status)
    message = f"HTTP {status} {response.reason or ''}".rstrip()
    details: list[dict[str, Any]] = []
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = _status_code(body.get("code"), code)
        if isinstance(body.get("message"), str) and body["message"]:
            message = body["message"]
        raw_details = body.get("details")
        if isinstance(raw_details, list):
            details = [d for d in raw_details if isinstance(d, dict)]
    if not request_id:  # fall back on the RequestInfo detail
        for detail in details:
            if isinstance(detail.get("requestId"), str):
                request_id = detail["requestId"]
                break
    return ctx.error(code, message, http_status=status, details=details, request_id=request_id)


def _status_code(value: Any, fallback: int) -> int:
    from ycloud.errors import CODE_BY_NAME

    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 16:
        return value
    if isinstance(value, str):
        if value.isdigit() and 0 < int(value) <= 16:
            return int(value)
        return CODE_BY_NAME.get(value.upper(), fallback)
    return fallback


def _transport_error(exc: requests.RequestException, ctx: _CallContext) -> tuple[CloudError, bool]:
    """Map a requests exception; the flag says the request never left (connect failure), so any verb may retry."""
    kind = type(exc).__name__
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ctx.error(DEADLINE_EXCEEDED, "timed out connecting", http_status=0), True
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ctx.error(DEADLINE_EXCEEDED, "timed out waiting for the response", http_status=0), False
    if isinstance(exc, requests.exceptions.SSLError):
        return ctx.error(UNAVAILABLE, "TLS handshake failed", http_status=0), False
    if isinstance(exc, requests.exceptions.ConnectionError):
        connect_failed = _is_connect_failure(exc)
        what = "could not connect" if connect_failed else "the connection was dropped"
        return ctx.error(UNAVAILABLE, what, http_status=0), connect_failed
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return ctx.error(UNAVAILABLE, f"the response was cut short ({kind})", http_status=0), False
    return ctx.error(UNKNOWN, f"request failed ({kind})", http_status=0), False


def _is_connect_failure(exc: Exception) -> bool:
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError | NameResolutionError)


def _log(level: str, message: str, ctx: _CallContext, **fields: Any) -> None:
    from observability import get_logger

    getattr(get_logger(), level)(
        message, extra={"method": ctx.method, "path": ctx.path, "clientRequestId": ctx.client_request_id, **fields}
    )
