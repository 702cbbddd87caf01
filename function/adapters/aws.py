"""A small client for AWS's JSON protocol (SQS, Secrets Manager) over requests, signed with Signature Version 4
(adapters.sigv4).

Hand-written, not botocore, because of what botocore costs a cold start. Measured with perf_counter in a fresh
process on a full core: `import botocore.session` ~50-65 ms, parsing its SQS model, endpoint rules and partitions
(the old `adapters.sqs.preload`) ~60-75 ms (the endpoint resolver alone parses the 1.25 MB endpoints.json,
~30 ms), a client ~9 ms; and the secrets came through powertools' parameters, i.e. boto3 imported and a second
client built inside the (CPU-throttled) invocation. This module needs only requests (already loaded for the
Yandex Cloud client), hashlib and hmac; its own import is ~5 ms. botocore stays the tests' oracle:
tests/unit/test_aws_sigv4.py signs the same requests with botocore's own `SigV4Auth` and compares.

The rules (the README's configuration table, `AWS_*` rows):
- credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` from the environment only.
  That is what Lambda gives a function (its role's temporary keys) and what deploy-yc.sh gives the Yandex
  functions (a static key of the queue service account, from Lockbox). No profiles, files or metadata service.
- endpoint: the one given to the client (tests), else `AWS_ENDPOINT_URL_<SERVICE>` (`AWS_ENDPOINT_URL_SQS`,
  `AWS_ENDPOINT_URL_SECRETS_MANAGER`), else `AWS_ENDPOINT_URL`, else the call's own (SQS: the queue URL's origin,
  which is right for Amazon SQS and for Yandex Message Queue), else `https://<service>.<region>.amazonaws.com`.
- region (the signature's scope): the one the endpoint's host names (`sqs.<region>.amazonaws.com`;
  `message-queue.api.cloud.yandex.net` is `ru-central1`), else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else
  `us-east-1`. Host first: a request signed for another region than its endpoint's is refused anyway.
- retries like botocore's "standard" mode, without its retry quota and `x-amz-retry-after`: at most 4 attempts,
  on throttling codes, 429/500/502/503/504 and connection errors or timeouts (not on a refused TLS certificate or
  an invalid URL), after `random() * 2 ** attempt` seconds (at most 20); connect timeout 3 s, read 10 s; all of
  one call within BUDGET_SECONDS (25 s: each attempt's timeouts are cut to what is left).
- the connection: https, or plain http to loopback only (`check_endpoint`); nothing from the environment
  (`trust_env` off: no proxies, no .netrc).
- errors: `AwsError` with the code from the JSON body's `__type` (or, for SQS, the legacy code of the
  `x-amzn-query-error` header) and the service's message, both escaped and shortened. No credential, signature
  or signed header is ever in an exception text: they are redacted from whatever the endpoint sends back.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from adapters.sigv4 import Credentials, sign_v4

T = TypeVar("T")

MAX_ATTEMPTS = 4
MAX_BACKOFF_SECONDS = 20.0
# One call's attempts and pauses together (each attempt's timeouts are cut to what is left): well inside the
# follow-up's 60-s timeout, so a slow queue never kills an invocation half-way through its batch.
BUDGET_SECONDS = 25.0
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a batch of 20 secrets of 64 KiB each fits; an endless body does not
MAX_TEXT = 300  # characters of a service's error message kept in an exception
# botocore's retry tables (botocore/retries/standard.py): throttling and transient error codes.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_CODE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SIGNATURE = re.compile(r"(Signature=|Credential=)[^\s,;\"']*", re.IGNORECASE)


@dataclass(frozen=True)
class Service:
    """One AWS service's JSON-protocol facts: its signing name, environment name, target prefix, JSON version."""

    name: str  # the signing name and the endpoint's first label: "sqs"
    env_name: str  # AWS_ENDPOINT_URL_<env_name>
    target_prefix: str  # X-Amz-Target: <target_prefix>.<Operation>
    json_version: str  # Content-Type: application/x-amz-json-<json_version>
    query_compatible: bool = False  # SQS: sends x-amzn-query-mode and maps x-amzn-query-error


SQS = Service("sqs", "SQS", "AmazonSQS", "1.0", query_compatible=True)
SECRETS_MANAGER = Service("secretsmanager", "SECRETS_MANAGER", "secretsmanager", "1.1")


class AwsError(Exception):
    """A call that failed: `code` (the service's error code, or ours), `status` (HTTP, None: no answer)."""

    def __init__(
        self, operation: str, code: str, message: str = "", status: int | None = None, json_code: str = ""
    ) -> None:
        self.operation, self.code, self.message, self.status = operation, code, message, status
        self.json_code = json_code or code  # SQS: the JSON `__type` when `code` is the legacy query code
        super().__init__(f"{operation}: {code}" + (f": {message}" if message else ""))

    @property
    def retryable(self) -> bool:
        codes = {self.code, self.json_code}
        return bool(codes & THROTTLING_CODES or codes & TRANSIENT_CODES) or self.status in RETRY_STATUSES


class AwsUnreachable(AwsError):
    """No answer: connection refused or reset, DNS, timeout (`code` is the exception's class name)."""

    @property
    def retryable(self) -> bool:
        return True


def clean(text: str, secrets: Sequence[str] = (), limit: int = MAX_TEXT) -> str:
    """Text from a remote end, safe for an exception or a log line: credentials and signatures redacted,
    control and non-ASCII characters escaped (no forged log lines or terminal escapes), at most `limit` chars."""
    # Cut first (a 4-MiB error body must not cost its whole escape), keeping enough for any secret at the cut.
    text = text[: limit + 2 * max((len(x) for x in secrets), default=0) + 256]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SIGNATURE.sub(r"\1***", text)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------ the client


def _session() -> requests.Session:
    """A session that takes nothing from the environment: no proxies, no .netrc (whose Basic credentials would
    replace the SigV4 Authorization header), no CA bundle override but the system's."""
    session = requests.Session()
    session.trust_env = False
    return session


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def check_endpoint(url: str) -> str | None:
    """Why signed requests must not go to `url` (None: they may). https only, plain http to loopback only (tests,
    a local emulator): the body carries the session token and Secrets Manager's answers carry the function's
    keys. No user information (it would replace the signature), no query or fragment. Never quotes the URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return "not an http(s) URL"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return f"plain http to {host} (https is required except on loopback)"
    if "@" in parts.netloc or parts.query or parts.fragment:
        return f"the endpoint for {host} carries user information, a query or a fragment"
    return None


def origin(url: str) -> str:
    """scheme://host[:port] of a URL (an SQS queue URL's endpoint)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def region_of_host(host: str) -> str | None:
    """The region an endpoint's host names: `<service>.<region>.amazonaws.com[.cn]`, Yandex Message Queue."""
    host = host.lower()
    if host == "message-queue.api.cloud.yandex.net":
        return "ru-central1"
    match = re.fullmatch(r"[a-z0-9-]+\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?", host)
    return match.group(1) if match else None


class AwsJsonClient:
    """Calls one service's JSON-protocol operations: `client.call("SendMessageBatch", {...}, endpoint=...)`.

    The environment (`environ`, default os.environ) is read per call, so one cached client per process follows
    what the invocation's environment says. The `requests.Session` keeps the connections across warm calls.
    """

    def __init__(
        self,
        service: Service,
        *,
        endpoint: str | None = None,
        environ: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        budget_seconds: float = BUDGET_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.endpoint = endpoint
        self._environ = environ
        self.session = session or _session()
        self.max_attempts = max(1, max_attempts)
        self.timeouts = timeouts
        self.budget_seconds = budget_seconds
        self._sleep, self._jitter, self._now, self._clock = sleep, jitter, now, clock

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def resolve(self, default_endpoint: str | None = None) -> tuple[str, str]:
        """(endpoint URL, signing region) by the module's rules."""
        env = self.environ
        endpoint = (
            self.endpoint
            or env.get(f"AWS_ENDPOINT_URL_{self.service.env_name}")
            or env.get("AWS_ENDPOINT_URL")
            or default_endpoint
        )
        # The region the endpoint's host names comes first: a signature for another region is refused anyway
        # (a queue in eu-west-1 called from a function in us-east-1, whose AWS_REGION says us-east-1).
        named = region_of_host(urlsplit(endpoint).hostname or "") if endpoint else None
        region = named or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        if not endpoint:
            suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
            endpoint = f"https://{self.service.name}.{region}.{suffix}"
        return endpoint, region

    def call(self, operation: str, params: Mapping[str, Any], *, endpoint: str | None = None) -> dict[str, Any]:
        """One JSON-protocol operation, retried as the module says; its JSON answer, or AwsError (AwsUnreachable:
        no answer)."""
        body = json.dumps(params, separators=(",", ":")).encode()
        headers = {
            "Content-Type": f"application/x-amz-json-{self.service.json_version}",
            "X-Amz-Target": f"{self.service.target_prefix}.{operation}",
        }
        if self.service.query_compatible:
            headers["x-amzn-query-mode"] = "true"
        return self.request(operation, body, headers, _parse_json, endpoint=endpoint)

    def request(
        self,
        operation: str,
        body: bytes,
        headers: Mapping[str, str],
        parse: Callable[[str, Answer, Credentials], T],
        *,
        endpoint: str | None = None,
    ) -> T:
        """POST `body` signed, retried as the module says; `parse` reads the answer (adapters.sqs_query: the query
        protocol). AwsError, AwsUnreachable when there was no answer."""
        credentials = Credentials.from_env(self.environ)
        if credentials is None:
            raise AwsError(operation, "NoCredentials", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
        url, region = self.resolve(endpoint)
        refused = check_endpoint(url)
        if refused is not None:
            raise AwsError(operation, "InvalidEndpoint", clean(refused))
        deadline = self._clock() + self.budget_seconds
        for attempt in range(self.max_attempts):
            signed = sign_v4(
                "POST", url, dict(headers), body, credentials=credentials, region=region, service=self.service.name,
                now=self._now(),
            )  # fmt: skip
            left = deadline - self._clock()
            timeouts = (min(self.timeouts[0], max(left, 0.1)), min(self.timeouts[1], max(left, 0.1)))
            try:
                return parse(operation, self._send(operation, url, signed, body, timeouts, deadline), credentials)
            except AwsError as error:
                if not error.retryable or attempt + 1 >= self.max_attempts:
                    raise
                pause = min(self._jitter() * 2**attempt, MAX_BACKOFF_SECONDS)
                if self._clock() + pause >= deadline:  # no time for another attempt: the call's budget is spent
                    raise
            self._sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover  (the loop returns or raises)

    def _send(
        self,
        operation: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        timeouts: tuple[float, float],
        deadline: float,
    ) -> Answer:
        try:
            with self.session.post(
                url, data=body, headers=headers, timeout=timeouts, allow_redirects=False, stream=True
            ) as response:
                content = _read(response, operation, lambda: self._clock() > deadline)
                return Answer(response.status_code, content, dict(response.headers))
        except requests.exceptions.SSLError:
            raise AwsError(operation, "SSLError", "the endpoint's TLS certificate was refused") from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise AwsUnreachable(operation, type(exc).__name__) from None
        except requests.RequestException as exc:  # an invalid URL or header: trying again would not help
            raise AwsError(operation, type(exc).__name__) from None


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered: status, body (at most MAX_RESPONSE_BYTES), headers (names lowercased)."""

    status: int
    content: bytes
    headers: Mapping[str, str]

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name), "")


def _parse_json(operation: str, answer: Answer, credentials: Credentials) -> dict[str, Any]:
    try:
        parsed = json.loads(answer.content) if answer.content.strip() else {}
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        parsed = None
    if 200 <= answer.status < 300:
        if not isinstance(parsed, dict):
            raise AwsError(operation, "InvalidResponse", "the answer is not a JSON object", answer.status)
        return parsed
    raise _error(operation, answer.status, parsed, answer.header("x-amzn-query-error"), credentials)


def _read(response: requests.Response, operation: str, late: Callable[[], bool] = lambda: False) -> bytes:
    """The body, at most MAX_RESPONSE_BYTES, and only while the call's budget lasts (a read timeout bounds the gap
    between two bytes, not the whole body: an endpoint that drips a byte every few seconds is cut off here)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(65536):
        if late():
            raise AwsUnreachable(operation, "BudgetExceeded")
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise AwsError(operation, "ResponseTooLarge", f"more than {MAX_RESPONSE_BYTES} bytes", response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _error(operation: str, status: int, parsed: Any, query_error: str, credentials: Credentials) -> AwsError:
    """botocore's reading of a JSON-protocol error: `__type` (after its `#`, before its `:`), replaced by the
    legacy code of `x-amzn-query-error: <code>;<Sender|Receiver>` when present; the message of `message`."""
    body = parsed if isinstance(parsed, dict) else {}
    code = str(body.get("__type") or body.get("code") or "")
    code = json_code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    legacy = query_error.split(";")
    if len(legacy) == 2 and legacy[0]:
        code = legacy[0]
    fallback = f"HTTP{status}"
    code = code if _CODE.fullmatch(code) else fallback
    json_code = json_code if _CODE.fullmatch(json_code) else fallback
    message = body.get("message") or body.get("Message") or ""
    return AwsError(operation, code, clean(str(message), credentials.secrets()), status, json_code)
