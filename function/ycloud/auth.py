"""IAM token providers, tried in the documented order: static token, function context, authorized key, metadata.

Tokens never reach a log line, an exception message or a repr: they are kept as `SecretStr` and only turned
into text when the `Authorization` header is built. PyJWT and cryptography are imported inside the key
provider only: most invocations run on the context token and should not pay for them at cold start.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr, ValidationError

from ycloud.errors import CloudError
from ycloud.models import IamToken, ServiceAccountKey

IAM_AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"  # documented constant, whatever host we call
JWT_LIFETIME_SECONDS = 3600  # the documented maximum for exp - iat
REFRESH_MARGIN_SECONDS = 300.0  # refresh when less than 5 minutes ...
REFRESH_FRACTION = 0.1  # ... or 10 % of the lifetime is left
MAX_TOKEN_AGE_SECONDS = 3600.0  # "we recommend requesting a token more often, e.g., every hour"
HARD_MARGIN_SECONDS = 30.0  # a token this close to expiry is never used, even if a refresh fails
METADATA_TIMEOUT = (1.0, 1.0)  # connect, read: as the Python SDK does
METADATA_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
UNAUTHENTICATED = 16


class Fetch(Protocol):
    """An unauthenticated JSON call (the transport provides it): returns the decoded body or raises CloudError."""

    def __call__(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]: ...


class TokenProvider(Protocol):
    name: str
    # False when a fresh token cannot differ from the one we have (static or context token):
    # the transport then does not retry a 401.
    refreshable: bool

    def token(self) -> SecretStr: ...

    def invalidate(self, used: SecretStr) -> None: ...


@dataclass(frozen=True)
class Token:
    value: SecretStr = field(repr=False)
    obtained_at: float  # epoch seconds (clock of the provider)
    expires_at: float

    def needs_refresh(self, now: float) -> bool:
        lifetime = max(self.expires_at - self.obtained_at, 0.0)
        left = self.expires_at - now
        return (
            left <= max(REFRESH_MARGIN_SECONDS, REFRESH_FRACTION * lifetime)
            or now - self.obtained_at >= MAX_TOKEN_AGE_SECONDS
        )

    def usable(self, now: float) -> bool:
        return self.expires_at - now > HARD_MARGIN_SECONDS


# --- process-wide cache for the providers that fetch tokens (key and metadata) -----------------------

_cache: dict[str, Token] = {}
_locks: dict[str, threading.Lock] = {}
_cache_guard = threading.Lock()


def clear_token_cache() -> None:
    """Forget every cached token (tests; a rotated key)."""
    with _cache_guard:
        _cache.clear()
        _locks.clear()


def _lock_for(key: str) -> threading.Lock:
    with _cache_guard:
        return _locks.setdefault(key, threading.Lock())


class _CachingProvider:
    """Shared logic: one fetch at a time per cache key, refresh ahead of expiry, keep a still-valid token if a
    refresh fails (the API is then tried with it rather than failing outright)."""

    name = "abstract"
    refreshable = True

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def _cache_key(self) -> str:
        raise NotImplementedError

    def _fetch(self) -> Token:
        raise NotImplementedError

    def token(self) -> SecretStr:
        key = self._cache_key()
        cached = _cache.get(key)
        if cached is not None and not cached.needs_refresh(self._clock()):
            return cached.value
        with _lock_for(key):
            cached = _cache.get(key)  # another thread may have refreshed it meanwhile
            now = self._clock()
            if cached is not None and not cached.needs_refresh(now):
                return cached.value
            try:
                fresh = self._fetch()
            except CloudError as exc:
                if cached is not None and cached.usable(now):
                    _log_warning("token refresh failed, using the cached token", provider=self.name, error=exc.name)
                    return cached.value
                raise
            _cache[key] = fresh
            return fresh.value

    def invalidate(self, used: SecretStr) -> None:
        key = self._cache_key()
        with _lock_for(key):
            cached = _cache.get(key)
            # Only drop the token the failed call used: another thread may already hold a fresh one.
            if cached is not None and cached.value.get_secret_value() == used.get_secret_value():
                del _cache[key]


# --- the four providers ------------------------------------------------------------------------------


class StaticTokenProvider:
    """`YC_IAM_TOKEN`: used as given, never refreshed."""

    name = "static"
    refreshable = False

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def token(self) -> SecretStr:
        return self._token

    def invalidate(self, used: SecretStr) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticTokenProvider()"


class ContextTokenProvider:
    """The function's service-account token the platform hands to each invocation in `context.token`."""

    name = "context"
    refreshable = False  # the platform refreshes it between invocations, we cannot

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    @staticmethod
    def from_context(context: Any) -> ContextTokenProvider | None:
        raw = getattr(context, "token", None) if context is not None else None
        # Documented as a dict; an object with the same attribute is accepted too.
        value = raw.get("access_token") if isinstance(raw, Mapping) else getattr(raw, "access_token", None)
        if isinstance(value, str) and value.strip():
            return ContextTokenProvider(SecretStr(value.strip()))
        return None

    def token(self) -> SecretStr:
        return self._token

    def invalidate(self, used: SecretStr) -> None:
        return None

    def __repr__(self) -> str:
        return "ContextTokenProvider()"


class KeyTokenProvider(_CachingProvider):
    """An authorized key (`YC_SERVICE_ACCOUNT_KEY`: the JSON itself or a path to it) exchanged for an IAM token."""

    name = "service-account-key"

    def __init__(
        self,
        key_source: SecretStr,
        *,
        iam_base: str,
        fetch: Fetch,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self._source = key_source
        self._url = iam_base.rstrip("/") + "/iam/v1/tokens"
        self._fetch_json = fetch
        self._key: ServiceAccountKey | None = None

    def __repr__(self) -> str:
        return f"KeyTokenProvider(url={self._url!r})"

    @property
    def key(self) -> ServiceAccountKey:
        if self._key is None:
            self._key = load_service_account_key(self._source)
        return self._key

    def _cache_key(self) -> str:
        # A digest of everything that makes the token: never the key itself as a dict key in memory dumps.
        key = self.key
        material = "\0".join((self._url, key.id, key.service_account_id, key.private_key))
        return "key:" + hashlib.sha256(material.encode()).hexdigest()

    def signed_jwt(self) -> str:
        """A PS256 JWT for the token exchange (exposed for tests)."""
        import jwt  # heavy (cryptography): only the key provider needs it

        key = self.key
        now = int(self._clock())
        payload = {"iss": key.service_account_id, "aud": IAM_AUDIENCE, "iat": now, "exp": now + JWT_LIFETIME_SECONDS}
        try:
            return jwt.encode(
                payload, _pem_only(key.private_key), algorithm="PS256", headers={"kid": key.id, "typ": "JWT"}
            )
        except Exception:  # a malformed PEM: say so without echoing it
            raise CloudError(
                UNAUTHENTICATED, "the authorized key's private_key cannot be used to sign (PS256)", http_status=0
            ) from None

    def _fetch(self) -> Token:
        obtained = self._clock()
        body = self._fetch_json("POST", self._url, json_body={"jwt": self.signed_jwt()})
        try:
            parsed = IamToken.model_validate(body)
        except ValidationError:
            raise CloudError(2, "the IAM token response has no iamToken/expiresAt", http_status=200) from None
        return Token(SecretStr(parsed.iam_token), obtained, _epoch(parsed.expires_at))


class MetadataTokenProvider(_CachingProvider):
    """The metadata service of the VM or function: `Metadata-Flavor: Google`, 1 s timeouts."""

    name = "metadata"

    def __init__(self, addr: str, *, fetch: Fetch, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._url = f"http://{addr}{METADATA_PATH}"
        self._fetch_json = fetch

    def __repr__(self) -> str:
        return f"MetadataTokenProvider(url={self._url!r})"

    def _cache_key(self) -> str:
        return "metadata:" + self._url

    def _fetch(self) -> Token:
        obtained = self._clock()
        try:
            body = self._fetch_json(
                "GET", self._url, headers={"Metadata-Flavor": "Google"}, timeout=METADATA_TIMEOUT, max_retries=2
            )
        except CloudError as exc:
            raise CloudError(
                exc.code,
                "no credentials: YC_IAM_TOKEN, context.token and YC_SERVICE_ACCOUNT_KEY are unset, and the "
                f"metadata service failed ({exc.name}: {exc.message})",
                http_status=exc.http_status,
                request_id=exc.request_id,
                method="GET",
                path=METADATA_PATH,
            ) from None
        value = body.get("access_token")
        expires_in = body.get("expires_in")
        if not isinstance(value, str) or not value or not isinstance(expires_in, int | float | str):
            raise CloudError(2, "the metadata token response has no access_token/expires_in", http_status=200)
        try:
            seconds = float(expires_in)
        except ValueError:
            raise CloudError(2, "the metadata token response has a bad expires_in", http_status=200) from None
        return Token(SecretStr(value), obtained, obtained + seconds)


# --- selection and helpers ---------------------------------------------------------------------------


def select_provider(
    *,
    static_token: SecretStr | None,
    context: Any,
    service_account_key: SecretStr | None,
    metadata_addr: str,
    iam_base: str,
    fetch: Fetch,
    clock: Callable[[], float] = time.time,
) -> TokenProvider:
    """The first credential available, in the documented order."""
    if static_token is not None and static_token.get_secret_value().strip():
        return StaticTokenProvider(SecretStr(static_token.get_secret_value().strip()))
    from_context = ContextTokenProvider.from_context(context)
    if from_context is not None:
        return from_context
    if service_account_key is not None and service_account_key.get_secret_value().strip():
        return KeyTokenProvider(service_account_key, iam_base=iam_base, fetch=fetch, clock=clock)
    return MetadataTokenProvider(metadata_addr, fetch=fetch, clock=clock)


def load_service_account_key(source: SecretStr) -> ServiceAccountKey:
    """The key JSON itself, or a path to a file holding it. Errors never quote the key."""
    text = source.get_secret_value().strip()
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise CloudError(
                UNAUTHENTICATED,
                f"YC_SERVICE_ACCOUNT_KEY is neither key JSON nor a readable file ({type(exc).__name__})",
                http_status=0,
            ) from None
    try:
        return ServiceAccountKey.model_validate(json.loads(text))
    except (ValueError, ValidationError):  # JSONDecodeError is a ValueError; neither message is echoed
        raise CloudError(
            UNAUTHENTICATED,
            "YC_SERVICE_ACCOUNT_KEY is not an authorized key (need id, service_account_id, private_key)",
            http_status=0,
        ) from None


def _pem_only(private_key: str) -> str:
    # Key files written by `yc` may carry a comment line before the PEM block; the PEM parser wants the block.
    start = private_key.find("-----BEGIN")
    return private_key[start:] if start > 0 else private_key


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _log_warning(message: str, **fields: Any) -> None:
    from observability import get_logger

    get_logger().warning(message, extra=fields)
