"""Authentication and authorization in the emulator, and the IAM JWT -> token exchange (real HTTP, loopback)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.emulator import EmulatorHandle, ManualClock
from local.emulator import seed as demo

AUD = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
TOKEN_RE = re.compile(r"^t1\.[A-Z0-9a-z_-]+[=]{0,2}\.[A-Z0-9a-z_-]{86}[=]{0,2}$")


@pytest.fixture(scope="module")
def sa_key_pair() -> tuple[str, str]:
    """(private PEM, public PEM) of an RSA-2048 key, generated once for the module."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture()
def key(emu: EmulatorHandle, sa_key_pair: tuple[str, str]) -> dict[str, str]:
    """An authorized key of the demo service account, registered in the emulator."""
    private_pem, public_pem = sa_key_pair
    emu.state.register_key("ajekey00000000000001", demo.DEMO_SA_ID, public_pem)
    return {"id": "ajekey00000000000001", "service_account_id": demo.DEMO_SA_ID, "private_key": private_pem}


def sign(key: dict[str, str], now: float, **overrides: Any) -> str:
    payload: dict[str, Any] = {"iss": key["service_account_id"], "aud": AUD, "iat": int(now), "exp": int(now) + 3600}
    headers = {"kid": overrides.pop("kid", key["id"])}
    algorithm = overrides.pop("algorithm", "PS256")
    private_key = overrides.pop("private_key", key["private_key"])
    payload.update(overrides)
    return jwt.encode(payload, private_key, algorithm=algorithm, headers=headers)


def assert_error(resp: requests.Response, http_status: int, code: int) -> None:
    assert resp.status_code == http_status, resp.text
    body = resp.json()
    assert body["code"] == code and body["message"]
    assert body["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.RequestInfo",
        "requestId": resp.headers["x-request-id"],
    }


def get_instance(emu: EmulatorHandle, token: str | None, instance: str = demo.INSTANCE_PROD_DB) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(f"{emu.url}/compute/v1/instances/{instance}", headers=headers)


# --- 401 / 403 ---------------------------------------------------------------------------------------------


def test_demo_token_works(emu: EmulatorHandle) -> None:
    assert TOKEN_RE.match(emu.token)
    assert get_instance(emu, emu.token).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer t1.unknown.token"}],
)
def test_missing_or_unknown_token_is_401(emu: EmulatorHandle, headers: dict[str, str]) -> None:
    for path in (
        f"/compute/v1/instances/{demo.INSTANCE_PROD_DB}",
        f"/backup/v1/policies?folderId={demo.DEMO_FOLDER_ID}",
        f"/backup/v1/resources/{demo.INSTANCE_PROD_DB}",
        "/operations/cdgnosuchoperation00",
    ):
        assert_error(requests.get(emu.url + path, headers=headers), 401, 16)
    resp = requests.post(
        f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}:execute",
        json={"computeInstanceId": demo.INSTANCE_PROD_DB},
        headers=headers,
    )
    assert_error(resp, 401, 16)
    assert emu.state.execute_log == []


def test_expired_token_is_401(emu: EmulatorHandle, clock: ManualClock) -> None:
    token, expires_at = emu.state.issue_token(demo.DEMO_USER_ID, lifetime=60)
    assert TOKEN_RE.match(token)
    assert expires_at == clock() + 60
    assert get_instance(emu, token).status_code == 200
    clock.advance(60)
    assert_error(get_instance(emu, token), 401, 16)


def test_subject_without_the_folder_is_403(emu: EmulatorHandle) -> None:
    assert_error(get_instance(emu, demo.OTHER_TOKEN), 403, 7)
    assert get_instance(emu, demo.OTHER_TOKEN, demo.INSTANCE_OTHER_FOLDER).status_code == 200
    assert_error(get_instance(emu, emu.token, demo.INSTANCE_OTHER_FOLDER), 403, 7)
    resp = requests.get(
        f"{emu.url}/compute/v1/instances",
        params={"folderId": demo.DEMO_FOLDER_ID},
        headers={"Authorization": f"Bearer {demo.OTHER_TOKEN}"},
    )
    assert_error(resp, 403, 7)


def test_read_only_subject_cannot_run_backups(emu: EmulatorHandle) -> None:
    viewer = {"Authorization": f"Bearer {demo.VIEWER_TOKEN}"}
    assert requests.get(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}", headers=viewer).status_code == 200
    for verb in ("execute", "apply"):
        resp = requests.post(
            f"{emu.url}/backup/v1/policies/{demo.POLICY_MONTHLY}:{verb}",
            json={"computeInstanceId": demo.INSTANCE_PROD_DB},
            headers=viewer,
        )
        assert_error(resp, 403, 7)


# --- IAM -----------------------------------------------------------------------------------------------------


def test_jwt_exchange_issues_a_working_token(emu: EmulatorHandle, key: dict[str, str], clock: ManualClock) -> None:
    resp = requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": sign(key, clock())})  # no Authorization needed
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"]
    body = resp.json()
    assert set(body) == {"iamToken", "expiresAt"}
    assert TOKEN_RE.match(body["iamToken"])
    expires = datetime.fromisoformat(body["expiresAt"]).timestamp()
    assert expires == clock() + 12 * 3600
    assert get_instance(emu, body["iamToken"]).status_code == 200
    # the service account sees only its folders
    assert_error(get_instance(emu, body["iamToken"], demo.INSTANCE_OTHER_FOLDER), 403, 7)


def test_issued_token_lifetime_is_configurable(emu: EmulatorHandle, key: dict[str, str], clock: ManualClock) -> None:
    emu.state.set_settings(token_lifetime=120)
    first = requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": sign(key, clock())}).json()
    assert datetime.fromisoformat(first["expiresAt"]).timestamp() == clock() + 120
    clock.advance(121)
    assert_error(get_instance(emu, first["iamToken"]), 401, 16)
    second = requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": sign(key, clock())}).json()
    assert second["iamToken"] != first["iamToken"]
    assert get_instance(emu, second["iamToken"]).status_code == 200


def test_generated_authorized_key_round_trip(emu: EmulatorHandle, clock: ManualClock) -> None:
    key = emu.state.create_authorized_key("ajenewsa000000000001", folders=[demo.DEMO_FOLDER_ID])
    assert set(key) >= {"id", "service_account_id", "created_at", "key_algorithm", "public_key", "private_key"}
    assert key["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    resp = requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": sign(key, clock())})
    assert resp.status_code == 200
    assert get_instance(emu, resp.json()["iamToken"]).status_code == 200


def test_jwt_bad_signature(emu: EmulatorHandle, key: dict[str, str], clock: ManualClock) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = sign(key, clock(), private_key=pem)
    assert_error(requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": token}), 401, 16)
    # a tampered payload fails the signature too
    head, _, rest = sign(key, clock()).partition(".")
    payload, _, sig = rest.partition(".")
    tampered = f"{head}.{payload[:-2]}xx.{sig}"
    assert requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": tampered}).status_code in (400, 401)


@pytest.mark.parametrize(
    ("overrides", "advance"),
    [
        ({"aud": "https://example.com/tokens"}, 0),  # wrong audience
        ({}, 3601),  # expired by the time it arrives
        ({"exp": 0}, 0),  # expired
        ({"kid": "ajeunknownkey0000001"}, 0),  # unknown key id
        ({"iss": "ajesomeoneelse000001"}, 0),  # not the key's service account
        ({"algorithm": "RS256"}, 0),  # only PS256 is supported
    ],
)
def test_jwt_refused(
    emu: EmulatorHandle, key: dict[str, str], clock: ManualClock, overrides: dict[str, Any], advance: float
) -> None:
    token = sign(key, clock(), **overrides)
    clock.advance(advance)
    assert_error(requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": token}), 401, 16)


def test_jwt_lifetime_and_issue_time_are_checked(emu: EmulatorHandle, key: dict[str, str], clock: ManualClock) -> None:
    now = clock()
    too_long = sign(key, now, exp=int(now) + 7200)
    assert_error(requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": too_long}), 401, 16)
    future = sign(key, now, iat=int(now) + 1800, exp=int(now) + 3600)
    assert_error(requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": future}), 401, 16)


@pytest.mark.parametrize(
    "body", [{}, {"jwt": ""}, {"jwt": "not-a-jwt"}, {"jwt": 5}, {"jwt": "a" * 8001}, {"jwt": "x", "other": 1}]
)
def test_iam_malformed_requests(emu: EmulatorHandle, body: dict[str, Any]) -> None:
    resp = requests.post(f"{emu.url}/iam/v1/tokens", json=body)
    if "other" in body:
        assert resp.status_code in (400, 401)
    else:
        assert_error(resp, 400, 3)


def test_oauth_exchange_is_not_emulated(emu: EmulatorHandle) -> None:
    resp = requests.post(f"{emu.url}/iam/v1/tokens", json={"yandexPassportOauthToken": "y0_x"})
    assert_error(resp, 401, 16)
    both = requests.post(f"{emu.url}/iam/v1/tokens", json={"yandexPassportOauthToken": "y0_x", "jwt": "a.b.c"})
    assert_error(both, 400, 3)
