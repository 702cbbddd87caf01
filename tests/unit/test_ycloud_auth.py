"""Token providers: the JWT, the order of providers, caching and refresh on a fake clock, secrets kept out."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr

from ycloud import auth
from ycloud.auth import (
    IAM_AUDIENCE,
    ContextTokenProvider,
    KeyTokenProvider,
    MetadataTokenProvider,
    StaticTokenProvider,
    Token,
    select_provider,
)
from ycloud.errors import CloudError

HOUR = 3600.0
T0 = 1_700_000_000.0  # in the past: the claims are checked with exp verification off


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def key_json(rsa_key: rsa.RSAPrivateKey) -> str:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "id": "ajekeyid0000000000000",
            "service_account_id": "ajesa00000000000000",
            "created_at": "2026-01-01T00:00:00Z",
            "key_algorithm": "RSA_2048",
            "public_key": "-----BEGIN PUBLIC KEY-----\n...",
            "private_key": pem,
        }
    )


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    auth.clear_token_cache()
    yield
    auth.clear_token_cache()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeIam:
    """Stands in for the transport's fetch: answers the token exchange, records what it was sent."""

    def __init__(self, clock: Clock, lifetime: float = 12 * HOUR) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls: list[dict[str, Any]] = []
        self.fail: CloudError | None = None

    def __call__(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({"method": method, "url": url, **kwargs})
        if self.fail is not None:
            raise self.fail
        expires = datetime.fromtimestamp(self.clock() + self.lifetime, tz=UTC)
        return {"iamToken": f"t1.iam-{len(self.calls)}", "expiresAt": expires.isoformat().replace("+00:00", "Z")}


def key_provider(key_json: str, clock: Clock, iam: FakeIam, base: str = "https://iam.api.cloud.yandex.net") -> Any:
    return KeyTokenProvider(SecretStr(key_json), iam_base=base, fetch=iam, clock=clock)


# --- the JWT -------------------------------------------------------------------------------------------


def test_jwt_is_ps256_signed_with_kid_and_audience(rsa_key: rsa.RSAPrivateKey, key_json: str) -> None:
    # Given a provider with a freshly generated key
    clock = Clock()
    provider = key_provider(key_json, clock, FakeIam(clock))
    # When it signs a JWT
    token = provider.signed_jwt()
    # Then the header and claims are the documented ones, and the public key verifies it
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "PS256", "kid": "ajekeyid0000000000000", "typ": "JWT"}
    claims = jwt.decode(
        token, rsa_key.public_key(), algorithms=["PS256"], audience=IAM_AUDIENCE, options={"verify_exp": False}
    )
    assert claims["iss"] == "ajesa00000000000000"
    assert claims["aud"] == "https://iam.api.cloud.yandex.net/iam/v1/tokens"
    assert claims["iat"] == int(T0) and claims["exp"] - claims["iat"] == 3600


def test_jwt_signature_uses_pss_with_salt_length_equal_to_the_hash(rsa_key: rsa.RSAPrivateKey, key_json: str) -> None:
    clock = Clock()
    token = key_provider(key_json, clock, FakeIam(clock)).signed_jwt()
    signing_input, _, signature = token.rpartition(".")
    raw = jwt.utils.base64url_decode(signature.encode())
    # Raises InvalidSignature if the salt length or the hash were different.
    rsa_key.public_key().verify(
        raw,
        signing_input.encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


def test_a_wrong_key_does_not_verify(key_json: str) -> None:
    clock = Clock()
    token = key_provider(key_json, clock, FakeIam(clock)).signed_jwt()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["PS256"], audience=IAM_AUDIENCE, options={"verify_exp": False})


def test_the_audience_stays_the_documented_one_with_another_iam_host(key_json: str, rsa_key: rsa.RSAPrivateKey) -> None:
    clock, iam = Clock(), FakeIam(Clock())
    provider = key_provider(key_json, clock, iam, base="http://127.0.0.1:9/")
    provider.token()
    assert iam.calls[0]["url"] == "http://127.0.0.1:9/iam/v1/tokens"
    sent = iam.calls[0]["json_body"]["jwt"]
    assert jwt.decode(
        sent, rsa_key.public_key(), algorithms=["PS256"], audience=IAM_AUDIENCE, options={"verify_exp": False}
    )


def test_a_key_file_with_a_comment_line_before_the_pem_signs(key_json: str, tmp_path: Path) -> None:
    data = json.loads(key_json)
    data["private_key"] = "PLEASE DO NOT REMOVE THIS LINE! Yandex.Cloud SA Key ID <x>\n" + data["private_key"]
    path = tmp_path / "key.json"
    path.write_text(json.dumps(data))
    clock = Clock()
    # The path form of YC_SERVICE_ACCOUNT_KEY
    provider = key_provider(str(path), clock, FakeIam(clock))
    assert jwt.get_unverified_header(provider.signed_jwt())["kid"] == "ajekeyid0000000000000"


@pytest.mark.parametrize(
    "source",
    [
        "{not json",
        '{"id": "k"}',
        "/no/such/key.json",
        '{"id":"k","service_account_id":"s","private_key":"garbage-pem"}',
    ],
)
def test_bad_keys_fail_with_a_cloud_error_that_quotes_nothing(source: str) -> None:
    clock = Clock()
    provider = key_provider(source, clock, FakeIam(clock))
    with pytest.raises(CloudError) as info:
        provider.token()
    assert info.value.name == "UNAUTHENTICATED" and info.value.http_status == 0
    assert "garbage-pem" not in str(info.value) and info.value.__suppress_context__
    assert "YC_SERVICE_ACCOUNT_KEY" in str(info.value) or "private_key" in str(info.value)


# --- the order of providers -----------------------------------------------------------------------------


def _select(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "static_token": None,
        "context": None,
        "service_account_key": None,
        "metadata_addr": "169.254.169.254",
        "iam_base": "https://iam.api.cloud.yandex.net",
        "fetch": FakeIam(Clock()),
    }
    args.update(overrides)
    return select_provider(**args)


CTX = SimpleNamespace(token={"access_token": "ctx-token", "expires_in": 42299, "token_type": "Bearer"})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"static_token": SecretStr("static"), "context": CTX, "service_account_key": SecretStr("{}")}, "static"),
        ({"context": CTX, "service_account_key": SecretStr("{}")}, "context"),
        ({"service_account_key": SecretStr("{}")}, "service-account-key"),
        ({}, "metadata"),
        # empty values and a context without a token fall through
        ({"static_token": SecretStr("  "), "context": SimpleNamespace(token=None)}, "metadata"),
        ({"context": SimpleNamespace(token={"expires_in": 5})}, "metadata"),
        ({"context": SimpleNamespace()}, "metadata"),
    ],
)
def test_providers_are_tried_in_the_documented_order(overrides: dict[str, Any], expected: str) -> None:
    assert _select(**overrides).name == expected


def test_context_token_is_read_from_the_dict() -> None:
    provider = ContextTokenProvider.from_context(CTX)
    assert provider is not None and provider.token().get_secret_value() == "ctx-token"
    assert not provider.refreshable


def test_static_token_is_used_as_given() -> None:
    provider = _select(static_token=SecretStr("t1.static"))
    assert provider.token().get_secret_value() == "t1.static" and not provider.refreshable


# --- caching and refresh -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "age", "refresh"),
    [
        (40 * 60, 34 * 60, False),  # 6 min left, more than 5 min and 10 % (4 min)
        (40 * 60, 36 * 60, True),  # 4 min left
        (12 * HOUR, 59 * 60, False),  # plenty left, younger than an hour
        (12 * HOUR, HOUR, True),  # an hour old: refresh, as the docs recommend
        (2 * HOUR, 50 * 60, False),  # 70 min left > max(5 min, 12 min)
        (100 * 60, 89 * 60, True),  # 11 min left < 10 % of 100 min... and ≥ 5 min
    ],
)
def test_refresh_rule(lifetime: float, age: float, refresh: bool) -> None:
    token = Token(SecretStr("x"), T0, T0 + lifetime)
    assert token.needs_refresh(T0 + age) is refresh


def test_key_tokens_are_cached_process_wide_and_refreshed_hourly(key_json: str) -> None:
    clock = Clock()
    iam = FakeIam(clock)
    first = key_provider(key_json, clock, iam)
    # Given one token fetched
    assert first.token().get_secret_value() == "t1.iam-1"
    # When another provider object for the same key asks within the hour, then no new exchange happens
    clock.now += 30 * 60
    assert key_provider(key_json, clock, iam).token().get_secret_value() == "t1.iam-1"
    assert len(iam.calls) == 1
    # When an hour has passed, then it is exchanged again
    clock.now = T0 + HOUR
    assert first.token().get_secret_value() == "t1.iam-2"
    assert len(iam.calls) == 2


def test_a_short_lived_token_is_refreshed_before_it_expires(key_json: str) -> None:
    clock = Clock()
    iam = FakeIam(clock, lifetime=20 * 60)
    provider = key_provider(key_json, clock, iam)
    provider.token()
    clock.now += 14 * 60  # 6 min left
    provider.token()
    assert len(iam.calls) == 1
    clock.now += 2 * 60  # 4 min left
    assert provider.token().get_secret_value() == "t1.iam-2"


def test_different_keys_or_hosts_do_not_share_a_token(key_json: str) -> None:
    clock = Clock()
    iam = FakeIam(clock)
    key_provider(key_json, clock, iam).token()
    key_provider(key_json, clock, iam, base="http://127.0.0.1:1").token()
    other = json.loads(key_json) | {"id": "another-key"}
    key_provider(json.dumps(other), clock, iam).token()
    assert len(iam.calls) == 3


def test_a_failed_refresh_keeps_a_still_valid_token(key_json: str) -> None:
    clock = Clock()
    iam = FakeIam(clock)
    provider = key_provider(key_json, clock, iam)
    provider.token()
    clock.now += HOUR  # due for refresh, far from expiry
    iam.fail = CloudError(14, "IAM down")
    assert provider.token().get_secret_value() == "t1.iam-1"
    clock.now = T0 + 12 * HOUR - 10  # now past use
    with pytest.raises(CloudError) as info:
        provider.token()
    assert info.value.name == "UNAVAILABLE"


def test_invalidate_drops_only_the_token_that_failed(key_json: str) -> None:
    clock = Clock()
    iam = FakeIam(clock)
    provider = key_provider(key_json, clock, iam)
    old = provider.token()
    provider.invalidate(SecretStr("some-other-token"))  # a stale 401 from another thread
    assert provider.token().get_secret_value() == old.get_secret_value()
    provider.invalidate(old)
    assert provider.token().get_secret_value() == "t1.iam-2"


def test_metadata_token_is_fetched_with_the_flavor_header_and_short_timeouts() -> None:
    clock = Clock()
    calls: list[dict[str, Any]] = []

    def fetch(method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        calls.append({"method": method, "url": url, **kwargs})
        return {"access_token": "meta-1", "expires_in": 39944, "token_type": "Bearer"}

    provider = MetadataTokenProvider("10.0.0.1:8080", fetch=fetch, clock=clock)
    assert provider.token().get_secret_value() == "meta-1"
    provider.token()
    assert len(calls) == 1
    call = calls[0]
    assert call["method"] == "GET"
    assert call["url"] == "http://10.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/token"
    assert call["headers"] == {"Metadata-Flavor": "Google"} and call["timeout"] == (1.0, 1.0)


def test_no_metadata_service_says_which_credentials_were_looked_for() -> None:
    def fetch(method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        raise CloudError(14, "could not connect", http_status=0)

    with pytest.raises(CloudError) as info:
        MetadataTokenProvider("127.0.0.1:1", fetch=fetch, clock=Clock()).token()
    assert "YC_IAM_TOKEN" in info.value.message and info.value.http_status == 0


# --- secrets stay secret -------------------------------------------------------------------------------


def test_no_secret_in_reprs_or_logs(key_json: str, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    iam = FakeIam(clock)
    provider = key_provider(key_json, clock, iam)
    value = provider.token()
    clock.now += HOUR
    iam.fail = CloudError(14, "IAM down")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("yc-backup-runner").propagate = True
        try:
            provider.token()  # logs a warning about the failed refresh
        finally:
            logging.getLogger("yc-backup-runner").propagate = False
    private_key = json.loads(key_json)["private_key"]
    text = caplog.text + repr(provider) + repr(provider.key) + repr(value) + str(value)
    text += repr(StaticTokenProvider(SecretStr("s3cr3t"))) + repr(Token(SecretStr("s3cr3t"), 0, 1))
    assert "token refresh failed" in caplog.text
    for secret in ("t1.iam-1", "s3cr3t", private_key[40:80]):
        assert secret not in text


def test_key_provider_imports_jwt_only_when_signing() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.path[:0] = ['function', '.']\n"
        "import ycloud.auth, ycloud.client\n"
        "from pydantic import SecretStr\n"
        "ycloud.auth.KeyTokenProvider(SecretStr('{}'), iam_base='x', fetch=None)\n"
        "assert 'jwt' not in sys.modules and 'cryptography' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_expires_at_from_the_exchange_sets_the_token_lifetime(key_json: str) -> None:
    clock = Clock()
    token = key_provider(key_json, clock, FakeIam(clock, lifetime=2 * HOUR))._fetch()
    assert (token.obtained_at, token.expires_at) == (T0, T0 + 2 * HOUR)
