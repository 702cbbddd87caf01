"""The signed JSON webhook (X-Backup-Timestamp / X-Backup-Signature v1) and the HTTP gate `authorize_http`."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from chatops.signing import (
    BadRequest,
    HttpAuthorization,
    PayloadTooLarge,
    ReplayCache,
    Unauthorized,
    authorize_http,
    request_fingerprint,
    sign_webhook,
    verify_webhook,
)
from settings import Settings

SECRET = "s3cr3t-webhook-key-0123456789"
OLD_SECRET = "old-webhook-key-abcdef"
NOW = 1_760_000_000
BODY = b'{"instanceName":"web1","reason":"nightly CI"}'


def hmac_hex(secret: str, ts: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


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


class TestReplayCache:
    def test_same_request_twice_is_refused(self) -> None:
        cache = ReplayCache()
        headers = sign_webhook(SECRET, BODY, NOW)
        verify_webhook(headers, BODY, SECRET, now=NOW, replay_cache=cache)
        with pytest.raises(Unauthorized, match="replay"):
            verify_webhook(headers, BODY, SECRET, now=NOW + 10, replay_cache=cache)
        # a new request (new timestamp) with the same body is fine
        verify_webhook(sign_webhook(SECRET, BODY, NOW + 11), BODY, SECRET, now=NOW + 11, replay_cache=cache)

    def test_a_refused_request_is_not_remembered(self) -> None:
        cache = ReplayCache()
        with pytest.raises(Unauthorized):
            verify_webhook(sign_webhook("wrong", BODY, NOW), BODY, SECRET, now=NOW, replay_cache=cache)
        verify_webhook(sign_webhook(SECRET, BODY, NOW), BODY, SECRET, now=NOW, replay_cache=cache)

    def test_bounded_and_expiring(self) -> None:
        cache = ReplayCache(max_entries=3)
        for i in range(10):
            cache.check_and_remember(f"k{i}", expires_at=100, now=0)
        assert len(cache._seen) == 3
        cache.check_and_remember("k9-later", expires_at=300, now=200)  # everything else expired
        assert list(cache._seen) == ["k9-later"]
        cache.check_and_remember("k0", expires_at=400, now=200)  # k0 was evicted long ago

    def test_fingerprint_is_stable_and_covers_timestamp_and_body(self) -> None:
        fp = request_fingerprint(NOW, BODY)
        assert fp == request_fingerprint(str(NOW), BODY.decode())
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
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sig,
    }


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


class TestAuthorizeHttp:
    def test_closed_when_no_secret_is_set(self) -> None:
        for headers, body, path in [
            (sign_webhook(SECRET, BODY, NOW), BODY, "/backup"),
            (slack_headers(), SLACK_FORM, "/slack"),
            ({}, b"", None),
        ]:
            with pytest.raises(Unauthorized, match="the HTTP trigger is closed: set WEBHOOK_SECRET"):
                authorize_http(settings(), headers, body, path, now=NOW)

    def test_empty_env_values_count_as_unset(self) -> None:
        with pytest.raises(Unauthorized, match="closed"):
            authorize_http(settings(WEBHOOK_SECRET="  ", SLACK_SIGNING_SECRET=""), {}, BODY, None, now=NOW)

    def test_allow_unsigned_opens_only_when_no_secret_is_set(self) -> None:
        s = settings(ALLOW_UNSIGNED_HTTP="true")
        assert authorize_http(s, {}, BODY, None, now=NOW) == HttpAuthorization(route="json", signed=False)
        assert authorize_http(s, {}, SLACK_FORM, "/slack", now=NOW) == HttpAuthorization(route="slack", signed=False)
        with pytest.raises(Unauthorized):
            authorize_http(settings(ALLOW_UNSIGNED_HTTP="true", WEBHOOK_SECRET=SECRET), {}, BODY, None, now=NOW)

    def test_a_spoofed_slack_header_cannot_reach_an_open_route(self) -> None:
        # Webhook secret set, Slack not configured, unsigned allowed by mistake: dressing a request up as Slack
        # must not skip the webhook signature.
        s = settings(ALLOW_UNSIGNED_HTTP="true", WEBHOOK_SECRET=SECRET)
        fake = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Signature": "v0=" + "0" * 64}
        with pytest.raises(Unauthorized, match="SLACK_SIGNING_SECRET"):
            authorize_http(s, fake, SLACK_FORM, None, now=NOW)

    def test_json_route_uses_the_webhook_secret(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET=SLACK_SECRET)
        ok = authorize_http(s, sign_webhook(SECRET, BODY, NOW), BODY, "/backup", now=NOW)
        assert ok == HttpAuthorization(route="json", signed=True)
        with pytest.raises(Unauthorized):  # signed with the Slack secret: wrong secret for this route
            authorize_http(s, sign_webhook(SLACK_SECRET, BODY, NOW), BODY, "/backup", now=NOW)

    def test_slack_route_by_path(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET=SLACK_SECRET)
        for path in ["/slack", "/api/slack", "/api/slack/", "/SLACK"]:
            assert authorize_http(s, slack_headers(), SLACK_FORM, path, now=NOW).route == "slack"
        with pytest.raises(Unauthorized):  # a webhook signature is no good on the Slack route
            authorize_http(s, sign_webhook(SECRET, SLACK_FORM, NOW), SLACK_FORM, "/slack", now=NOW)

    def test_slack_route_by_content_type_and_header_on_a_direct_call(self) -> None:
        s = settings(SLACK_SIGNING_SECRET=SLACK_SECRET)
        headers = slack_headers() | {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        assert authorize_http(s, headers, SLACK_FORM, None, now=NOW) == HttpAuthorization(route="slack", signed=True)

    def test_slack_route_refuses_a_bad_slack_signature(self) -> None:
        s = settings(SLACK_SIGNING_SECRET=SLACK_SECRET)
        with pytest.raises(Unauthorized, match="does not match"):
            authorize_http(s, slack_headers(secret="other"), SLACK_FORM, "/slack", now=NOW)

    def test_route_whose_secret_is_missing_is_closed(self) -> None:
        with pytest.raises(Unauthorized, match="WEBHOOK_SECRET is not set"):
            authorize_http(
                settings(SLACK_SIGNING_SECRET=SLACK_SECRET), sign_webhook(SECRET, BODY, NOW), BODY, "/", now=NOW
            )
        with pytest.raises(Unauthorized, match="SLACK_SIGNING_SECRET is not set"):
            authorize_http(settings(WEBHOOK_SECRET=SECRET), slack_headers(), SLACK_FORM, "/slack", now=NOW)

    def test_oversized_body_is_refused_first(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, MAX_BODY_BYTES="1024")
        big = b"x" * 1025
        with pytest.raises(PayloadTooLarge):
            authorize_http(s, sign_webhook(SECRET, big, NOW), big, None, now=NOW)
        with pytest.raises(PayloadTooLarge):  # even before the closed-trigger answer
            authorize_http(settings(MAX_BODY_BYTES="1024"), {}, big, None, now=NOW)

    def test_messages_carry_no_secret(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET=SLACK_SECRET)
        for headers, body, path in [
            ({}, BODY, None),
            (sign_webhook("x", BODY, NOW), BODY, None),
            (slack_headers(secret="x"), SLACK_FORM, "/slack"),
        ]:
            with pytest.raises(Unauthorized) as info:
                authorize_http(s, headers, body, path, now=NOW)
            assert SECRET not in str(info.value) and SLACK_SECRET not in str(info.value)

    def test_non_string_header_values_are_ignored(self) -> None:
        s = settings(WEBHOOK_SECRET=SECRET)
        headers: dict[Any, Any] = {"X-Backup-Timestamp": NOW, "X-Backup-Signature": None, 5: "x"}
        with pytest.raises(Unauthorized, match="missing"):
            authorize_http(s, headers, BODY, None, now=NOW)


# --- docs/WEBHOOK.md: the openssl pipeline and the curl call, exactly as written there ---------------------------

PIPELINE = """ts=$(date +%s)
sig=$(printf '%s.%s' "$ts" "$(cat body.json)" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
printf '%s\\n%s\\n' "$ts" "$sig"
"""
ROBUST_PIPELINE = """ts=$(date +%s)
sig=$({ printf '%s.' "$ts"; cat body.json; } | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
printf '%s\\n%s\\n' "$ts" "$sig"
"""


def test_the_pipelines_tested_here_are_the_ones_in_the_doc() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "WEBHOOK.md").read_text()
    for script in (PIPELINE, ROBUST_PIPELINE):
        sig_line = script.splitlines()[1]
        assert sig_line in doc
    assert "ts=$(date +%s)" in doc
    assert "--data-binary @body.json" in doc and "X-Backup-Signature: v1=$sig" in doc


needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("bash") is None, reason="openssl and bash are needed"
)


def run_pipeline(script: str, workdir: Path, secret: str) -> tuple[str, str]:
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "SECRET": secret, "LC_ALL": "C"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    ts, sig = out.stdout.split()
    return ts, sig


@needs_openssl
class TestDocumentedOpensslPipeline:
    def test_the_documented_pipeline_is_accepted(self, tmp_path: Path) -> None:
        body = b'{"instanceName": "web1", "reason": "release 1.2 & hotfix"}'
        (tmp_path / "body.json").write_bytes(body)  # no trailing newline, as the doc says
        ts, sig = run_pipeline(PIPELINE, tmp_path, SECRET)
        assert len(sig) == 64
        verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, body, SECRET)

    def test_a_trailing_newline_breaks_the_short_pipeline_but_not_the_robust_one(self, tmp_path: Path) -> None:
        body = b'{"instanceName": "web1"}\n'  # what most editors save; curl --data-binary sends the newline
        (tmp_path / "body.json").write_bytes(body)
        ts, sig = run_pipeline(PIPELINE, tmp_path, SECRET)  # $(cat ...) drops the trailing newline
        with pytest.raises(Unauthorized):
            verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, body, SECRET)
        ts, sig = run_pipeline(ROBUST_PIPELINE, tmp_path, SECRET)
        verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, body, SECRET)

    def test_the_wrong_secret_in_the_pipeline_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "body.json").write_bytes(BODY)
        ts, sig = run_pipeline(PIPELINE, tmp_path, "not-the-secret")
        with pytest.raises(Unauthorized):
            verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, BODY, SECRET)


class _Gate(BaseHTTPRequestHandler):
    """A stand-in HTTP front: authorize_http, then 200 or 401 with the message."""

    gate_settings: Settings

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            authorize_http(self.gate_settings, dict(self.headers), body, self.path)
            status, answer = 200, b"accepted"
        except Unauthorized as exc:
            status, answer = 401, str(exc).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def gate() -> Iterator[str]:
    handler = type("Handler", (_Gate,), {"gate_settings": settings(WEBHOOK_SECRET=SECRET)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


CURL = PIPELINE.replace(
    'printf \'%s\\n%s\\n\' "$ts" "$sig"\n',
    'curl -sS -o /dev/null -w \'%{http_code}\' -H "X-Backup-Timestamp: $ts" -H "X-Backup-Signature: v1=$sig" '
    "-H 'Content-Type: application/json' --data-binary @body.json \"$URL/backup\"\n",
)


@needs_openssl
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is needed")
@pytest.mark.parametrize(("secret", "status"), [(SECRET, "200"), ("wrong", "401")])
def test_the_documented_curl_call_end_to_end(gate: str, tmp_path: Path, secret: str, status: str) -> None:
    (tmp_path / "body.json").write_bytes(BODY)
    out = subprocess.run(
        ["bash", "-c", CURL],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SECRET": secret, "URL": gate, "LC_ALL": "C", "NO_PROXY": "*"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout == status
