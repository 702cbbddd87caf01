"""Slack's v0 request signature (security.slack) and the response_url check (security.urls)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security.common import PayloadTooLarge, Unauthorized
from security.slack import verify_slack
from security.urls import UnsafeUrl, check_response_url, is_slack_url
from tests.signers import slack_signature

# Slack's published example (Slack API docs, "Verifying requests from Slack").
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TS = 1531420618
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
RESPONSE_URL = "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN"


def headers(ts: int | str = TS, sig: str = SIGNATURE) -> dict[str, str]:
    return {"x-slack-request-timestamp": str(ts), "x-slack-signature": sig}


def frozen(at: float = TS + 10) -> Any:
    return lambda: at


slack_sign = slack_signature


def test_the_test_signer_reproduces_slacks_published_example() -> None:
    assert slack_signature(SECRET, TS, BODY) == SIGNATURE


# --- verification ---------------------------------------------------------------------------------------------


class TestVerifySlack:
    def test_published_example_verifies_with_the_clock_frozen_near_its_timestamp(self) -> None:
        verify_slack(headers(), BODY, SECRET, now=frozen())
        verify_slack(headers(), BODY, SECRET, now=TS)  # a number works too

    def test_published_example_is_stale_on_the_real_clock(self) -> None:
        with pytest.raises(Unauthorized, match="old"):
            verify_slack(headers(), BODY, SECRET)

    def test_header_names_in_any_case(self) -> None:
        verify_slack({"X-Slack-Request-Timestamp": str(TS), "X-Slack-Signature": SIGNATURE}, BODY, SECRET, now=frozen())

    def test_body_as_str_verifies(self) -> None:
        verify_slack(headers(), BODY.decode(), SECRET, now=frozen())

    def test_secret_as_secretstr(self) -> None:
        from pydantic import SecretStr

        verify_slack(headers(), BODY, SecretStr(SECRET), now=frozen())

    @pytest.mark.parametrize("offset", [-300, 0, 300])
    def test_window_edges_are_accepted(self, offset: int) -> None:
        verify_slack(headers(), BODY, SECRET, now=frozen(TS + offset))

    def test_tampered_body_is_refused(self) -> None:
        tampered = BODY.replace(b"text=&", b"text=prod-db&")
        with pytest.raises(Unauthorized, match="does not match"):
            verify_slack(headers(), tampered, SECRET, now=frozen())

    def test_one_byte_appended_is_refused(self) -> None:
        with pytest.raises(Unauthorized):
            verify_slack(headers(), BODY + b"&", SECRET, now=frozen())

    def test_tampered_signature_is_refused(self) -> None:
        flipped = SIGNATURE[:-1] + ("4" if SIGNATURE[-1] != "4" else "5")
        with pytest.raises(Unauthorized, match="does not match"):
            verify_slack(headers(sig=flipped), BODY, SECRET, now=frozen())

    def test_wrong_secret_is_refused(self) -> None:
        with pytest.raises(Unauthorized):
            verify_slack(headers(), BODY, SECRET + "x", now=frozen())

    def test_stale_timestamp_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="old"):
            verify_slack(headers(), BODY, SECRET, now=frozen(TS + 301))

    def test_future_timestamp_is_refused(self) -> None:
        with pytest.raises(Unauthorized, match="future"):
            verify_slack(headers(), BODY, SECRET, now=frozen(TS - 301))

    def test_replayed_with_a_new_timestamp_is_refused(self) -> None:
        # An attacker who captured the request moves its timestamp forward to pass the window: the signature
        # covers the timestamp, so it no longer matches.
        later = TS + 3600
        with pytest.raises(Unauthorized, match="does not match"):
            verify_slack(headers(ts=later), BODY, SECRET, now=frozen(later))

    def test_a_fresh_correct_signature_on_the_same_body_is_accepted(self) -> None:
        # The counterpart of the replay test: it is the stale signature that fails, not the new timestamp.
        later = TS + 3600
        verify_slack(headers(ts=later, sig=slack_sign(SECRET, later, BODY)), BODY, SECRET, now=frozen(later))

    @pytest.mark.parametrize(
        "hdrs",
        [
            {},
            {"x-slack-signature": SIGNATURE},
            {"x-slack-request-timestamp": str(TS)},
            {"x-slack-request-timestamp": "", "x-slack-signature": SIGNATURE},
            {"x-slack-request-timestamp": str(TS), "x-slack-signature": ""},
        ],
    )
    def test_missing_headers_are_refused(self, hdrs: dict[str, str]) -> None:
        with pytest.raises(Unauthorized, match="missing"):
            verify_slack(hdrs, BODY, SECRET, now=frozen())

    def test_none_headers_are_refused(self) -> None:
        with pytest.raises(Unauthorized):
            verify_slack(None, BODY, SECRET, now=frozen())

    @pytest.mark.parametrize("ts", ["abc", "1531420618.0", "-1531420618", "1e9", "\u0661\u0665\u0663", "1_531_420_618"])
    def test_malformed_timestamps_are_refused(self, ts: str) -> None:
        with pytest.raises(Unauthorized, match="unix seconds"):
            verify_slack(headers(ts=ts), BODY, SECRET, now=frozen())

    @pytest.mark.parametrize(
        "sig",
        [
            SIGNATURE.replace("v0=", "v1="),
            SIGNATURE[3:],
            SIGNATURE + "00",
            SIGNATURE[:-1] + "z",
            SIGNATURE[:-1] + "\u00e9",  # non-ASCII: hmac.compare_digest would raise TypeError on it
            "v0=" + "\uff10" * 64,  # fullwidth digits
        ],
    )
    def test_malformed_signatures_are_refused(self, sig: str) -> None:
        with pytest.raises(Unauthorized, match="v0=<64 hex digits>"):
            verify_slack(headers(sig=sig), BODY, SECRET, now=frozen())

    @pytest.mark.parametrize("secret", ["", "   ", None])
    def test_no_secret_refuses_everything(self, secret: Any) -> None:
        with pytest.raises(Unauthorized, match="SLACK_SIGNING_SECRET"):
            verify_slack(headers(), BODY, secret, now=frozen())

    def test_non_utf8_body_is_refused(self) -> None:
        body = BODY + b"\xff"
        with pytest.raises(Unauthorized, match="UTF-8"):
            verify_slack(headers(sig=slack_sign(SECRET, TS, body)), body, SECRET, now=frozen())

    def test_body_over_the_limit_is_refused_before_hashing(self) -> None:
        with pytest.raises(PayloadTooLarge):
            verify_slack(headers(), BODY, SECRET, now=frozen(), max_body_bytes=len(BODY) - 1)

    def test_no_message_carries_the_secret_or_the_signature(self) -> None:
        cases = [
            (headers(), BODY + b"x", SECRET, TS),
            (headers(), BODY, SECRET, TS + 999),
            (headers(sig=SIGNATURE + "0"), BODY, SECRET, TS),
            (headers(), BODY, "", TS),
        ]
        for hdrs, body, secret, at in cases:
            with pytest.raises(Unauthorized) as info:
                verify_slack(hdrs, body, secret, now=frozen(at))
            text = str(info.value)
            assert SECRET not in text and SIGNATURE[3:] not in text and "xyzz0Wbap" not in text


# --- response_url -----------------------------------------------------------------------------------------------

REFUSED_URLS = [
    "http://hooks.slack.com/commands/T1/1/x",
    "https://evil.com/commands/T1/1/x",
    "https://hooks.slack.com.evil.com/commands/T1/1/x",
    "https://evilhooks.slack.com/commands/x",
    "https://hooks.slack.com@evil.com/commands/x",
    "https://user:pw@hooks.slack.com/commands/x",
    "https://evil.com#@hooks.slack.com/commands/x",
    "https://evil.com\\@hooks.slack.com/commands/x",
    "https://evil.com\\.hooks.slack.com/commands/x",
    "https://hooks.slack.com%2eevil.com/commands/x",
    "https://hooks.slack.com./commands/x",
    "https://hooks.slack.com:8443/commands/x",
    "https://hooks.slack.com:99999/commands/x",
    "https://[::1]/commands/x",
    "https://127.0.0.1/commands/x",
    "ftp://hooks.slack.com/commands/x",
    "javascript:alert(1)//hooks.slack.com/x",
    "//hooks.slack.com/commands/x",
    "hooks.slack.com/commands/x",
    "https://hooks.slack.com",
    "https://hooks.slack.com/",
    "https://hooks.slack.com/commands/x#frag",
    " https://hooks.slack.com/commands/x",
    "https://hooks.slack.com/commands/x\n",
    "https://hooks.slack.com/commands/\u00e9",
    "https://hooks.slack.com/" + "a" * 2100,
    "",
]


class TestResponseUrl:
    @pytest.mark.parametrize("url", REFUSED_URLS)
    def test_refused(self, url: str) -> None:
        with pytest.raises(UnsafeUrl):
            check_response_url(url)

    @pytest.mark.parametrize(
        "url", [RESPONSE_URL, "https://HOOKS.SLACK.COM/commands/x", "https://hooks.slack.com:443/commands/x"]
    )
    def test_accepted(self, url: str) -> None:
        assert check_response_url(url) == url

    def test_loopback_only_when_asked(self) -> None:
        with pytest.raises(UnsafeUrl):
            check_response_url("http://127.0.0.1:8080/hook")
        assert check_response_url("http://127.0.0.1:8080/hook", allow_loopback=True)
        with pytest.raises(UnsafeUrl):
            check_response_url("http://evil.com/hook", allow_loopback=True)

    def test_error_messages_never_show_the_path(self) -> None:
        for url in REFUSED_URLS:
            with pytest.raises(UnsafeUrl) as info:
                check_response_url(url.replace("commands", "SECRETPATH"))
            assert "SECRETPATH" not in str(info.value)

    def test_is_slack_url_is_the_same_rule(self) -> None:
        assert is_slack_url(RESPONSE_URL)
        for url in REFUSED_URLS:
            assert not is_slack_url(url), url


@settings(max_examples=150, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=40).filter(str.strip),
    body=st.binary(max_size=300).filter(lambda b: _utf8(b)),
    offset=st.integers(-400, 400),
    tamper=st.booleans(),
)
def test_verify_slack_agrees_with_slack_sdk(secret: str, body: bytes, offset: int, tamper: bool) -> None:
    """The standard-library check against the maintained implementation (slack_sdk, a test-only dependency)."""
    from slack_sdk.signature import Clock, SignatureVerifier

    class Frozen(Clock):
        def now(self) -> float:
            return float(TS)

    signature = slack_signature(secret, TS + offset, body)
    if tamper:
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    oracle = SignatureVerifier(signing_secret=secret, clock=Frozen()).is_valid(
        body=body, timestamp=str(TS + offset), signature=signature
    )
    try:
        verify_slack(headers(TS + offset, signature), body, secret, now=TS)
        ours = True
    except Unauthorized:
        ours = False
    assert ours == oracle


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_a_rotated_secret_verifies_with_either_value() -> None:
    sig = slack_signature("new-secret", TS, BODY)
    assert verify_slack(headers(TS, sig), BODY, ["old-secret", "new-secret"], now=TS) == TS
