"""The v1 scheme (X-Backup-Timestamp / X-Backup-Signature) and the HTTP gate `security.http_auth.authorize`."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from security.common import BadRequest, PayloadTooLarge, Unauthorized
from security.hmac_v1 import request_fingerprint, sign, sign_webhook, status_message, verify_signature, verify_webhook
from security.http_auth import HttpAuthorization, Route, authorize
from settings import Settings
from tests.signers import slack_headers as signed_by_slack
from tests.signers import v1_hex

SECRET = "s3cr3t-webhook-key-0123456789"
OLD_SECRET = "old-webhook-key-abcdef"
NOW = 1_760_000_000
BODY = b'{"instanceName":"web1","reason":"nightly CI"}'


hmac_hex = v1_hex


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


class TestSignAndVerify:
    def test_round_trip(self) -> None:
        verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=NOW)

    def test_the_scheme_is_exactly_hmac_of_timestamp_dot_body(self) -> None:
        headers = sign_webhook(SECRET, BODY, NOW)
        assert headers == {"X-Backup-Timestamp": str(NOW), "X-Backup-Signature": "v1=" + hmac_hex(SECRET, NOW, BODY)}
        hand_made = {"x-backup-timestamp": str(NOW), "x-backup-signature": "v1=" + hmac_hex(SECRET, NOW, BODY)}
        verify_webhook(hand_made, BODY, SECRET, now=lambda: NOW)

    def test_str_body_and_secretstr(self) -> None:
        verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY.decode(), SecretStr(SECRET), now=NOW)

    def test_uppercase_hex_is_accepted(self) -> None:
        headers = {"x-backup-timestamp": str(NOW), "x-backup-signature": "v1=" + hmac_hex(SECRET, NOW, BODY).upper()}
        verify_webhook(headers, BODY, SECRET, now=NOW)

    def test_now_may_be_a_datetime_or_a_clock(self) -> None:
        from datetime import UTC, datetime

        from backups.ports import SystemClock

        at = datetime.fromtimestamp(NOW, UTC)
        verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=at)
        verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=lambda: at)
        verify_webhook(sign_webhook(SECRET, BODY), BODY, SECRET, now=SystemClock().now)
        with pytest.raises(Unauthorized, match="old"):
            verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=SystemClock().now)

    def test_default_timestamp_is_now(self) -> None:
        headers = sign_webhook(SECRET, BODY)
        assert abs(int(headers["X-Backup-Timestamp"]) - time.time()) < 5
        verify_webhook(headers, BODY, SECRET)

    def test_empty_secret_cannot_sign(self) -> None:
        with pytest.raises(ValueError):
            sign_webhook("", BODY, NOW)

    def test_tampered_body(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY.replace(b"web1", b"web2"), SECRET, now=NOW)

    def test_tampered_signature(self) -> None:
        headers = sign_webhook(SECRET, BODY, NOW)
        sig = headers["X-Backup-Signature"]
        headers["X-Backup-Signature"] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        with pytest.raises(Unauthorized, match="does not match"):
            verify_webhook(headers, BODY, SECRET, now=NOW)

    def test_wrong_secret(self) -> None:
        with pytest.raises(Unauthorized):
            verify_webhook(sign_webhook("another", BODY, NOW), BODY, SECRET, now=NOW)

    @pytest.mark.parametrize("offset", [-300, 0, 300])
    def test_window_edges(self, offset: int) -> None:
        verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=NOW + offset)

    def test_stale(self) -> None:
        with pytest.raises(Unauthorized, match="old"):
            verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=NOW + 301)

    def test_future(self) -> None:
        with pytest.raises(Unauthorized, match="future"):
            verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=NOW - 301)

    def test_replayed_with_a_new_timestamp(self) -> None:
        headers = sign_webhook(SECRET, BODY, NOW)
        headers["X-Backup-Timestamp"] = str(NOW + 3600)
        with pytest.raises(Unauthorized, match="does not match"):
            verify_webhook(headers, BODY, SECRET, now=NOW + 3600)

    def test_authorization_header_plays_no_part(self) -> None:
        # Yandex strips Authorization on direct calls: the scheme must not need it, and must not accept it instead.
        with pytest.raises(Unauthorized, match="missing"):
            verify_webhook({"Authorization": "Bearer " + SECRET}, BODY, SECRET, now=NOW)
        headers = sign_webhook(SECRET, BODY, NOW) | {"Authorization": "garbage"}
        verify_webhook(headers, BODY, SECRET, now=NOW)

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-Backup-Timestamp": str(NOW)},
            {"X-Backup-Signature": "v1=" + "0" * 64},
            {"X-Backup-Timestamp": "", "X-Backup-Signature": "v1=" + "0" * 64},
            {"X-Backup-Timestamp": str(NOW), "X-Backup-Signature": "  "},
        ],
    )
    def test_missing_headers(self, headers: dict[str, str]) -> None:
        with pytest.raises(Unauthorized, match="missing"):
            verify_webhook(headers, BODY, SECRET, now=NOW)

    @pytest.mark.parametrize("ts", ["abc", f"{NOW}.5", f"-{NOW}", "1e9", "\u0661\u0662", "1_000", "9" * 13])
    def test_malformed_timestamp(self, ts: str) -> None:
        with pytest.raises(Unauthorized, match="unix seconds"):
            verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": "v1=" + "0" * 64}, BODY, SECRET, now=NOW)

    @pytest.mark.parametrize(
        "sig",
        ["0" * 64, "v0=" + "0" * 64, "v1=" + "0" * 63, "v1=" + "g" * 64, "v1=" + "\u00e9" * 64, "v1=", "sha256=abc"],
    )
    def test_malformed_signature(self, sig: str) -> None:
        with pytest.raises(Unauthorized, match="v1="):
            verify_webhook({"X-Backup-Timestamp": str(NOW), "X-Backup-Signature": sig}, BODY, SECRET, now=NOW)

    def test_body_over_the_limit(self) -> None:
        with pytest.raises(PayloadTooLarge):
            verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=NOW, max_body_bytes=len(BODY) - 1)
        assert issubclass(PayloadTooLarge, BadRequest) and issubclass(BadRequest, ValueError)

    @pytest.mark.parametrize("secret", ["", None, [], [""], SecretStr("")])
    def test_no_secret_refuses(self, secret: Any) -> None:
        with pytest.raises(Unauthorized, match="WEBHOOK_SECRET"):
            verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, secret, now=NOW)

    def test_messages_never_carry_secret_signature_or_body(self) -> None:
        good = sign_webhook(SECRET, BODY, NOW)
        sig = good["X-Backup-Signature"][3:]
        cases: list[tuple[dict[str, str], bytes, Any, int]] = [
            (good, BODY + b" ", SECRET, NOW),
            (good, BODY, SECRET, NOW + 1000),
            (good, BODY, OLD_SECRET, NOW),
            (good | {"X-Backup-Signature": "v1=" + sig[:-2]}, BODY, SECRET, NOW),
        ]
        for headers, body, secret, at in cases:
            with pytest.raises(Unauthorized) as info:
                verify_webhook(headers, body, secret, now=at)
            text = str(info.value)
            assert SECRET not in text and OLD_SECRET not in text and sig[:16] not in text and "web1" not in text


class TestRotation:
    def test_sender_signs_with_both_secrets(self) -> None:
        headers = sign_webhook([OLD_SECRET, SECRET], BODY, NOW)
        assert headers["X-Backup-Signature"].count("v1=") == 2
        verify_webhook(headers, BODY, SECRET, now=NOW)  # server already on the new secret
        verify_webhook(headers, BODY, OLD_SECRET, now=NOW)  # server still on the old one

    def test_server_accepts_either_of_its_secrets(self) -> None:
        verify_webhook(sign_webhook(OLD_SECRET, BODY, NOW), BODY, [SECRET, OLD_SECRET], now=NOW)
        verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, [SECRET, OLD_SECRET], now=NOW)

    def test_none_of_several_matching_is_refused(self) -> None:
        headers = sign_webhook(["a", "b", "c"], BODY, NOW)
        with pytest.raises(Unauthorized):
            verify_webhook(headers, BODY, SECRET, now=NOW)

    def test_unknown_schemes_are_ignored_next_to_v1(self) -> None:
        good = sign_webhook(SECRET, BODY, NOW)["X-Backup-Signature"]
        verify_webhook(
            {"X-Backup-Timestamp": str(NOW), "X-Backup-Signature": f"v2=whatever, {good}"}, BODY, SECRET, now=NOW
        )

    def test_too_many_signatures_are_refused(self) -> None:
        good = sign_webhook(SECRET, BODY, NOW)["X-Backup-Signature"]
        many = ", ".join(["v1=" + "0" * 64] * 8 + [good])
        with pytest.raises(Unauthorized, match="more than"):
            verify_webhook({"X-Backup-Timestamp": str(NOW), "X-Backup-Signature": many}, BODY, SECRET, now=NOW)

    def test_overlong_header_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="too long"):
            verify_webhook(
                {"X-Backup-Timestamp": str(NOW), "X-Backup-Signature": "v1=" + "0" * 2000}, BODY, SECRET, now=NOW
            )


class TestFingerprint:
    def test_fingerprint_is_stable_and_covers_timestamp_and_body(self) -> None:
        fp = request_fingerprint(NOW, BODY)
        assert fp == request_fingerprint(int(str(NOW)), BODY.decode())
        assert fp != request_fingerprint(NOW + 1, BODY) and fp != request_fingerprint(NOW, BODY + b" ")
        assert len(fp) == 64


# --- the gate ---------------------------------------------------------------------------------------------------

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_FORM = urlencode(
    {
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "user_name": "ann",
        "command": "/backup",
        "text": "web1",
        "response_url": "https://hooks.slack.com/commands/T1/1/x",
        "trigger_id": "1.2.3",
    }
).encode()


def slack_headers(body: bytes = SLACK_FORM, ts: int = NOW, secret: str = SLACK_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/x-www-form-urlencoded"} | signed_by_slack(secret, ts, body)


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


OP_ID = "fhm0b28lgfp4tkoa3jl6"


def check(s: Settings, route: Route, headers: Any, body: Any, **kw: Any) -> HttpAuthorization:
    return authorize(s, route, headers, body, now=NOW, **kw)


class TestAuthorize:
    def test_closed_when_no_secret_is_set(self) -> None:
        cases: list[tuple[Route, dict[str, str], bytes]] = [
            ("backup", sign_webhook(SECRET, BODY, NOW), BODY),
            ("slack", slack_headers(), SLACK_FORM),
            ("status", {}, b""),
        ]
        for route, headers, body in cases:
            with pytest.raises(Unauthorized, match="the HTTP trigger is closed: set WEBHOOK_SECRET"):
                check(settings(), route, headers, body, operation_id=OP_ID)

    def test_empty_env_values_count_as_unset(self) -> None:
        with pytest.raises(Unauthorized, match="closed"):
            check(settings(WEBHOOK_SECRET="  ", SLACK_SIGNING_SECRET=""), "backup", {}, BODY)

    def test_allow_unsigned_opens_only_when_no_secret_is_set(self) -> None:
        s = settings(ALLOW_UNSIGNED_HTTP="true")
        assert check(s, "backup", {}, BODY) == HttpAuthorization(route="backup", signed=False)
        assert check(s, "slack", {}, SLACK_FORM) == HttpAuthorization(route="slack", signed=False)
        with pytest.raises(Unauthorized):
            check(settings(ALLOW_UNSIGNED_HTTP="true", WEBHOOK_SECRET=SECRET), "backup", {}, BODY)

    def test_the_slack_route_is_closed_without_its_secret_even_when_unsigned_is_allowed(self) -> None:
        # Webhook secret set, Slack not configured, unsigned allowed by mistake: the Slack route stays closed.
        s = settings(ALLOW_UNSIGNED_HTTP="true", WEBHOOK_SECRET=SECRET)
        fake = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Signature": "v0=" + "0" * 64}
        with pytest.raises(Unauthorized, match="SLACK_SIGNING_SECRET"):
            check(s, "slack", fake, SLACK_FORM)

    def test_backup_route_uses_the_webhook_secret(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET=SLACK_SECRET)
        assert check(s, "backup", sign_webhook(SECRET, BODY, NOW), BODY) == HttpAuthorization("backup", True, NOW)
        with pytest.raises(Unauthorized):  # signed with the Slack secret: wrong secret for this route
            check(s, "backup", sign_webhook(SLACK_SECRET, BODY, NOW), BODY)

    def test_slack_headers_do_not_prove_the_backup_route(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET=SLACK_SECRET)
        with pytest.raises(Unauthorized, match="X-Backup"):
            check(s, "backup", slack_headers(), SLACK_FORM)

    def test_slack_route_uses_slacks_signature(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET=SLACK_SECRET)
        assert check(s, "slack", slack_headers(), SLACK_FORM) == HttpAuthorization("slack", True, NOW)
        with pytest.raises(Unauthorized):  # a webhook signature is no good on the Slack route
            check(s, "slack", sign_webhook(SECRET, SLACK_FORM, NOW), SLACK_FORM)
        with pytest.raises(Unauthorized, match="does not match"):
            check(s, "slack", slack_headers(secret="other"), SLACK_FORM)

    def test_status_route_signs_method_and_path(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET)
        headers = sign_webhook(SECRET, f"GET /backup/{OP_ID}", NOW)
        assert headers["X-Backup-Signature"] == "v1=" + v1_hex(SECRET, NOW, f"GET /backup/{OP_ID}")
        assert check(s, "status", headers, b"", operation_id=OP_ID) == HttpAuthorization("status", True, NOW)
        for other in ["fhm0b28lgfp4tkoa3jl7", OP_ID + "0"]:  # a signature made for another operation
            with pytest.raises(Unauthorized, match="method, path"):
                check(s, "status", headers, b"", operation_id=other)
        with pytest.raises(Unauthorized):  # signed over the path without the method
            check(s, "status", sign_webhook(SECRET, f"/backup/{OP_ID}", NOW), b"", operation_id=OP_ID)
        with pytest.raises(Unauthorized):  # POST's scheme (the empty body) is no good for a GET
            check(s, "status", sign_webhook(SECRET, b"", NOW), b"", operation_id=OP_ID)
        with pytest.raises(Unauthorized, match="old"):
            authorize(s, "status", headers, b"", operation_id=OP_ID, now=NOW + 301)
        assert status_message(OP_ID) == f"GET /backup/{OP_ID}".encode()

    def test_route_whose_secret_is_missing_is_closed(self) -> None:
        with pytest.raises(Unauthorized, match="WEBHOOK_SECRET is not set"):
            check(settings(SLACK_SIGNING_SECRET=SLACK_SECRET), "backup", sign_webhook(SECRET, BODY, NOW), BODY)
        with pytest.raises(Unauthorized, match="WEBHOOK_SECRET is not set"):
            check(settings(SLACK_SIGNING_SECRET=SLACK_SECRET), "status", {}, b"", operation_id=OP_ID)
        with pytest.raises(Unauthorized, match="SLACK_SIGNING_SECRET is not set"):
            check(settings(WEBHOOK_SECRET=SECRET), "slack", slack_headers(), SLACK_FORM)

    def test_oversized_body_is_refused_first(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, MAX_BODY_BYTES="1024")
        big = b"x" * 1025
        with pytest.raises(PayloadTooLarge):
            check(s, "backup", sign_webhook(SECRET, big, NOW), big)
        with pytest.raises(PayloadTooLarge):  # even before the closed-trigger answer
            check(settings(MAX_BODY_BYTES="1024"), "backup", {}, big)

    def test_messages_carry_no_secret(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET=SLACK_SECRET)
        cases: list[tuple[Route, dict[str, str], bytes]] = [
            ("backup", {}, BODY),
            ("backup", sign_webhook("x", BODY, NOW), BODY),
            ("slack", slack_headers(secret="x"), SLACK_FORM),
        ]
        for route, headers, body in cases:
            with pytest.raises(Unauthorized) as info:
                check(s, route, headers, body)
            assert SECRET not in str(info.value) and SLACK_SECRET not in str(info.value)

    def test_non_string_header_values_are_ignored(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET)
        headers: dict[Any, Any] = {"X-Backup-Timestamp": NOW, "X-Backup-Signature": None, 5: "x"}
        with pytest.raises(Unauthorized, match="missing"):
            check(s, "backup", headers, BODY)


class TestReformattedTimestamps:
    """Issue 11 finding 5: a captured request replayed with its timestamp header rewritten."""

    @pytest.mark.parametrize("form", ["0{}", "00{}", " {}", "{} ", "\t{}"])
    def test_any_form_that_verifies_yields_the_parsed_timestamp(self, form: str) -> None:
        headers = sign_webhook(SECRET, BODY, NOW) | {"X-Backup-Timestamp": form.format(NOW)}
        assert verify_webhook(headers, BODY, SECRET, now=NOW) == NOW

    def test_the_signature_covers_the_canonical_form_only(self) -> None:
        # Signing the reformatted text literally does not verify: there is one signed message per request.
        headers = {"X-Backup-Timestamp": f"0{NOW}", "X-Backup-Signature": "v1=" + v1_hex(SECRET, f"0{NOW}", BODY)}
        with pytest.raises(Unauthorized, match="does not match"):
            verify_webhook(headers, BODY, SECRET, now=NOW)


class TestResultWebhookReceiver:
    """adapters.sinks re-exports these: the sender and receiver halves of the signed result webhook."""

    def test_sign_is_the_same_signer(self) -> None:
        assert sign(SECRET, NOW, BODY) == sign_webhook(SECRET, BODY, NOW)["X-Backup-Signature"]
        assert sign(SECRET.encode(), str(NOW), BODY.decode()) == "v1=" + v1_hex(SECRET, NOW, BODY)

    def test_verify_signature(self) -> None:
        good = sign(SECRET, NOW, BODY)
        assert verify_signature(SECRET, str(NOW), BODY, good, now=NOW)
        assert verify_signature(SECRET.encode(), str(NOW), BODY.decode(), f"v1={'0' * 64}, {good}", now=NOW)
        assert not verify_signature("other", str(NOW), BODY, good, now=NOW)
        assert not verify_signature(SECRET, str(NOW), BODY + b" ", good, now=NOW)
        assert not verify_signature(SECRET, str(NOW), BODY, good, now=NOW + 301)
        assert not verify_signature("", str(NOW), BODY, sign("", NOW, BODY), now=NOW)

    @pytest.mark.parametrize(
        ("ts", "sig"), [("abc", None), ("\u0661\u0662", None), (str(NOW), "v1=zz"), (str(NOW), "x" * 5000)]
    )
    def test_hostile_input_is_false_not_an_error(self, ts: str, sig: str | None) -> None:
        assert not verify_signature(SECRET, ts, BODY, sig or sign(SECRET, NOW, BODY), now=NOW)
