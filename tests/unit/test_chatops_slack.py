"""Slack slash command: v0 verification, the form, the command grammar, replies, posting to response_url."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from backups.request import BackupRequest
from chatops.signing import BadRequest, PayloadTooLarge, ReplayCache, Unauthorized
from chatops.slack import (
    BackupCommand,
    BadSlackRequest,
    HelpCommand,
    SlackPostError,
    SlashCommand,
    StatusCommand,
    UnsafeUrl,
    check_response_url,
    escape_mrkdwn,
    help_text,
    looks_like_id,
    parse_command,
    parse_slash_form,
    post_to_slack,
    redact_url,
    reply_accepted,
    reply_dry_run,
    reply_error,
    reply_help,
    reply_started,
    reply_status,
    slack_reply_target,
    to_backup_request,
    verify_slack,
)
from ycloud.models import Operation

# Slack's published example (docs "Verifying requests from Slack"; /work/shared/reference/slack-signing-example.md).
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


def slack_sign(secret: str, ts: int, body: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()


def form(**overrides: str) -> bytes:
    fields = {
        "token": "legacy-verification-token",
        "team_id": "T1DC2JH3J",
        "channel_id": "C0123ABCD",
        "user_id": "U2CERLKJA",
        "user_name": "roadrunner",
        "command": "/backup",
        "text": "web1",
        "response_url": RESPONSE_URL,
        "trigger_id": "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
    }
    fields.update(overrides)
    return urlencode(fields).encode()


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

    def test_replay_cache_refuses_the_same_request_twice(self) -> None:
        cache = ReplayCache()
        verify_slack(headers(), BODY, SECRET, now=frozen(), replay_cache=cache)
        with pytest.raises(Unauthorized, match="replay"):
            verify_slack(headers(), BODY, SECRET, now=frozen(TS + 20), replay_cache=cache)

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


# --- the form ---------------------------------------------------------------------------------------------------


class TestParseSlashForm:
    def test_published_example_parses_and_drops_the_token(self) -> None:
        slash = parse_slash_form(BODY)
        assert slash.team_id == "T1DC2JH3J"
        assert slash.user_name == "roadrunner"
        assert slash.command == "/webhook-collect"
        assert slash.text == ""
        assert slash.response_url == RESPONSE_URL
        assert "xyzz0WbapA4vBCDEFasx0q6G" not in repr(slash) + json.dumps(slash.model_dump())

    def test_text_is_percent_decoded(self) -> None:
        slash = parse_slash_form(form(text='web1 "daily policy" --reason "a & b"'))
        assert slash.text == 'web1 "daily policy" --reason "a & b"'

    @pytest.mark.parametrize(
        "url",
        [
            "http://hooks.slack.com/commands/T1/1/x",
            "https://evil.com/commands/T1/1/x",
            "https://hooks.slack.com.evil.com/commands/T1/1/x",
            "https://hooks.slack.com@evil.com/commands/x",
        ],
    )
    def test_response_url_must_be_slack_over_https(self, url: str) -> None:
        with pytest.raises(BadSlackRequest, match="response_url"):
            parse_slash_form(form(response_url=url))

    def test_errors_never_echo_the_response_url_path(self) -> None:
        with pytest.raises(BadSlackRequest) as info:
            parse_slash_form(form(response_url="http://hooks.slack.com/commands/T1/SECRETPATH"))
        assert "SECRETPATH" not in str(info.value)

    @pytest.mark.parametrize(
        "overrides",
        [
            {"team_id": "t1dc2jh3j"},
            {"channel_id": ""},
            {"user_id": "U" * 65},
            {"command": "backup"},
            {"command": "/back up"},
            {"text": "x" * 2001},
            {"text": "web1\x00"},
            {"user_name": "a\x1bb"},
            {"trigger_id": "abc def"},
        ],
    )
    def test_bounded_and_strict_fields(self, overrides: dict[str, str]) -> None:
        with pytest.raises(BadSlackRequest):
            parse_slash_form(form(**overrides))

    @pytest.mark.parametrize("missing", ["team_id", "channel_id", "user_id", "command", "response_url", "trigger_id"])
    def test_required_fields(self, missing: str) -> None:
        body = b"&".join(p for p in form().split(b"&") if not p.startswith(missing.encode() + b"="))
        with pytest.raises(BadSlackRequest, match=missing):
            parse_slash_form(body)

    def test_a_repeated_field_is_refused(self) -> None:
        with pytest.raises(BadSlackRequest, match="repeats"):
            parse_slash_form(form() + b"&text=other")

    def test_too_many_fields_are_refused(self) -> None:
        with pytest.raises(BadSlackRequest):
            parse_slash_form(form() + b"".join(b"&f%d=1" % i for i in range(80)))

    @pytest.mark.parametrize("body", [b"\xff\xfe", b"text=%ff%fe"])
    def test_not_utf8_is_refused(self, body: bytes) -> None:
        with pytest.raises(BadSlackRequest):
            parse_slash_form(body)

    def test_oversized_body_is_refused(self) -> None:
        with pytest.raises(PayloadTooLarge):
            parse_slash_form(form(), max_body_bytes=100)

    def test_errors_are_value_errors(self) -> None:
        assert issubclass(BadSlackRequest, ValueError) and issubclass(UnsafeUrl, BadRequest)


# --- the grammar ------------------------------------------------------------------------------------------------


ID_A = "fhm0b28lgfp4tkoa3jl6"
ID_B = "cdgk1m2n3p4q5r6s7t8u"


class TestParseCommand:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("web1", BackupCommand(instance_name="web1")),
            ("  web1  ", BackupCommand(instance_name="web1")),
            (ID_A, BackupCommand(instance_id=ID_A)),
            (f"web1 {ID_B}", BackupCommand(instance_name="web1", policy_id=ID_B)),
            ("web1 daily", BackupCommand(instance_name="web1", policy_name="daily")),
            ('web1 "daily policy"', BackupCommand(instance_name="web1", policy_name="daily policy")),
            ("web1 'daily policy'", BackupCommand(instance_name="web1", policy_name="daily policy")),
            ("web1 --dry-run", BackupCommand(instance_name="web1", dry_run=True)),
            ("--dry-run web1 daily", BackupCommand(instance_name="web1", policy_name="daily", dry_run=True)),
            ('web1 --reason "before upgrade"', BackupCommand(instance_name="web1", reason="before upgrade")),
            ("web1 --reason=upgrade", BackupCommand(instance_name="web1", reason="upgrade")),
            (
                f'{ID_A} {ID_B} --dry-run --reason "x y"',
                BackupCommand(instance_id=ID_A, policy_id=ID_B, dry_run=True, reason="x y"),
            ),
            # typographic quotes from some Slack clients, and Slack's own escaping of & < >
            ("web1 \u201cdaily policy\u201d", BackupCommand(instance_name="web1", policy_name="daily policy")),
            ('web1 --reason "a &amp; b &lt;c&gt;"', BackupCommand(instance_name="web1", reason="a & b <c>")),
            # explicit kind
            ("name:status", BackupCommand(instance_name="status")),
            ("id:web1", BackupCommand(instance_id="web1")),
            ("name:abcdefghij0123456789", BackupCommand(instance_name="abcdefghij0123456789")),
            (f"web1 name:{ID_B}", BackupCommand(instance_name="web1", policy_name=ID_B)),
            ("web1 id:abc", BackupCommand(instance_name="web1", policy_id="abc")),
            (f"status {ID_A}", StatusCommand(operation_id=ID_A)),
            ("STATUS abc123", StatusCommand(operation_id="abc123")),
            ("help", HelpCommand()),
            ("HELP me", HelpCommand()),
            ("", HelpCommand()),
            ("   ", HelpCommand()),
        ],
    )
    def test_grammar(self, text: str, expected: Any) -> None:
        assert parse_command(text) == expected

    @pytest.mark.parametrize(
        ("text", "error"),
        [
            ('web1 "daily', "unbalanced quotes"),
            ("web1 'daily", "unbalanced quotes"),
            ("status", "usage: status"),
            (f"status {ID_A} extra", "usage: status"),
            ("status BAD-ID", "usage: status"),
            ("web1 daily extra", "too many arguments"),
            ("web1 --force", "unknown option --force"),
            ("web1 --reason", "--reason needs a text"),
            ('web1 --reason ""', "--reason needs a text"),
            ("web1 --reason a --reason b", "once"),
            ("--dry-run", "name the instance"),
            ("Web1", "neither an instance name"),
            ("1web", "neither an instance name"),
            ("web1;rm", "neither an instance name"),
            ("id:Web1", "not an instance id"),
            ("name:1x", "not an instance name"),
            ("web1 id:Bad", "not a policy id"),
            ("web1 " + "p" * 51, "1-50 printable"),
            ("x" * 2001, "longer than"),
        ],
    )
    def test_errors_become_help_with_an_error_line(self, text: str, error: str) -> None:
        cmd = parse_command(text)
        assert isinstance(cmd, HelpCommand)
        assert cmd.error is not None and error in cmd.error

    def test_a_reason_with_a_newline_is_refused(self) -> None:
        cmd = parse_command('web1 --reason "line1\nline2"')
        assert isinstance(cmd, HelpCommand) and cmd.error and "one line" in cmd.error

    @pytest.mark.parametrize(
        ("token", "is_id"),
        [
            (ID_A, True),
            ("abcdefghijklmnopqrst", False),  # 20 letters, no digit: a name
            ("web1", False),  # letters and digits, but not 20: a name
            ("fhm0b28lgfp4tkoa3jl6x", False),  # 21 characters
            ("fhm0b28lgfp4tkoa3jl", False),  # 19 characters
            ("FHM0B28LGFP4TKOA3JL6", False),  # uppercase is not an id
            ("01234567890123456789", True),
        ],
    )
    def test_the_id_rule(self, token: str, is_id: bool) -> None:
        assert looks_like_id(token) is is_id

    def test_none_is_help(self) -> None:
        assert parse_command(None) == HelpCommand()


class TestToBackupRequest:
    def test_maps_every_field(self) -> None:
        slash = parse_slash_form(form())
        cmd = parse_command(f'web1 {ID_B} --dry-run --reason "pre-upgrade"')
        assert isinstance(cmd, BackupCommand)
        req = to_backup_request(cmd, slash)
        assert isinstance(req, BackupRequest)
        assert req.to_json_dict() == {
            "instanceName": "web1",
            "policyId": ID_B,
            "dryRun": True,
            "reason": "pre-upgrade",
            "requestedBy": "slack:roadrunner",
            "applyIfMissing": False,
        }

    def test_instance_id_and_policy_name(self) -> None:
        req = to_backup_request(BackupCommand(instance_id=ID_A, policy_name="daily"), parse_slash_form(form()))
        assert (req.compute_instance_id, req.instance_name, req.policy_name, req.policy_id) == (
            ID_A,
            None,
            "daily",
            None,
        )

    def test_requested_by_falls_back_to_the_user_id(self) -> None:
        req = to_backup_request(BackupCommand(instance_name="web1"), parse_slash_form(form(user_name="")))
        assert req.requested_by == "slack:U2CERLKJA"

    def test_reply_target_lasts_30_minutes_and_5_messages(self) -> None:
        now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        target = slack_reply_target(parse_slash_form(form()), now)
        assert target.response_url == RESPONSE_URL
        assert target.expires_at == now + timedelta(minutes=30)
        assert target.messages_left == 5
        assert (target.channel_id, target.user_id) == ("C0123ABCD", "U2CERLKJA")


# --- replies ----------------------------------------------------------------------------------------------------

NASTY = "<!channel> & <@U123|boss> <https://evil.example|click>"
UNESCAPED = re.compile(r"[<>]|&(?!amp;|lt;|gt;)")


def assert_safe(payload: dict[str, Any]) -> str:
    assert payload["response_type"] == "ephemeral"
    text = payload["text"]
    assert not UNESCAPED.search(text), text
    return str(text)


class TestReplies:
    def test_escape_mrkdwn(self) -> None:
        assert escape_mrkdwn("a & <b> &amp;") == "a &amp; &lt;b&gt; &amp;amp;"

    def test_accepted_names_instance_policy_and_reason_escaped(self) -> None:
        text = assert_safe(reply_accepted(BackupCommand(instance_name="web1", policy_name=NASTY[:50], reason=NASTY)))
        assert "`web1`" in text and "&lt;!channel&gt;" in text

    def test_accepted_dry_run_says_so(self) -> None:
        text = assert_safe(reply_accepted(BackupCommand(instance_name="web1", dry_run=True)))
        assert "dry run" in text.lower()

    def test_started_names_instance_policy_and_operation(self) -> None:
        text = assert_safe(reply_started("web1", [("daily", "op123"), (NASTY, "op456")], reason=NASTY))
        assert "`web1`" in text and "`daily`" in text and "`op123`" in text and "`op456`" in text

    def test_started_with_nothing_is_an_error(self) -> None:
        assert ":x:" in assert_safe(reply_started("web1", []))

    def test_dry_run_plan(self) -> None:
        text = assert_safe(reply_dry_run("web1", ["daily", NASTY], note=NASTY))
        assert "Nothing was started" in text and "`daily`" in text
        assert "no policy" in assert_safe(reply_dry_run("web1", []))

    def test_error(self) -> None:
        text = assert_safe(reply_error(NASTY, instance="web1"))
        assert text.startswith(":x:") and "`web1`" in text

    def test_help_escapes_the_error_and_its_own_placeholders(self) -> None:
        text = assert_safe(reply_help(NASTY, command="/backup"))
        assert text.startswith(":warning: &lt;!channel&gt;")
        assert "&lt;instance&gt;" in text
        assert "<" not in help_text() and "status" in help_text()

    def test_backticks_cannot_break_out_of_code(self) -> None:
        text = assert_safe(reply_error("x", instance="a`b"))
        assert "`a'b`" in text

    @pytest.mark.parametrize(
        ("op", "words"),
        [
            ({"id": "op1", "done": False, "metadata": {"progressPercentage": "42.4"}}, ["running", "42%"]),
            ({"id": "op1", "done": False}, ["running"]),
            ({"id": "op1", "done": True, "response": {}}, ["succeeded"]),
            ({"id": "op1", "done": True, "error": {"code": 9, "message": NASTY}}, ["failed", "&lt;!channel&gt;"]),
            (
                {"id": "op1", "done": True, "metadata": {"computeInstanceId": ID_A, "policyId": ID_B}},
                [ID_A, ID_B, "succeeded"],
            ),
        ],
    )
    def test_status(self, op: dict[str, Any], words: list[str]) -> None:
        text = assert_safe(reply_status(Operation.model_validate(op)))
        assert "`op1`" in text
        for word in words:
            assert word in text

    def test_long_replies_are_truncated(self) -> None:
        assert len(reply_error("x" * 10_000)["text"]) <= 3000


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

    def test_redact_url(self) -> None:
        assert redact_url(RESPONSE_URL) == "https://hooks.slack.com/…"
        assert "96rGlf" not in redact_url(RESPONSE_URL)
        assert redact_url(None) == "?://?/…"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]]
    answers: dict[str, tuple[int, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, dict(self.headers), body))
        status, hdrs, payload = self.answers.get(self.path, (200, {}, b"ok"))
        self.send_response(status)
        for key, value in hdrs.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[Any]:
    """A local HTTP receiver standing in for hooks.slack.com."""
    handler = type("Handler", (_Receiver,), {"received": [], "answers": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    server.handler = handler  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class TestPostToSlack:
    def test_posts_json_to_a_local_receiver(self, receiver: Any) -> None:
        payload = reply_error("boom", instance="web1")
        status = post_to_slack(receiver.url + "/commands/T1/123/tok", payload, allow_loopback=True)
        assert status == 200
        [(path, hdrs, body)] = receiver.handler.received
        assert path == "/commands/T1/123/tok"
        assert hdrs["Content-Type"].startswith("application/json")
        assert json.loads(body) == payload

    @pytest.mark.parametrize("url", REFUSED_URLS[:6])
    def test_refused_urls_never_reach_the_network(self, url: str) -> None:
        class Session:
            calls = 0

            def post(self, *args: Any, **kwargs: Any) -> Any:
                Session.calls += 1
                raise AssertionError("must not post")

        with pytest.raises(UnsafeUrl):
            post_to_slack(url, {"text": "x"}, session=Session())
        assert Session.calls == 0

    def test_loopback_is_refused_without_the_test_switch(self, receiver: Any) -> None:
        with pytest.raises(UnsafeUrl):
            post_to_slack(receiver.url + "/commands/x", {"text": "x"})
        assert receiver.handler.received == []

    def test_an_error_answer_names_the_host_and_slack_error_but_not_the_path(self, receiver: Any) -> None:
        receiver.handler.answers["/commands/T1/123/SECRETTOKEN"] = (404, {}, b"expired_url")
        with pytest.raises(SlackPostError) as info:
            post_to_slack(receiver.url + "/commands/T1/123/SECRETTOKEN", {"text": "x"}, allow_loopback=True)
        assert info.value.status_code == 404
        assert "expired_url" in str(info.value) and "SECRETTOKEN" not in str(info.value)

    def test_redirects_are_not_followed(self, receiver: Any) -> None:
        receiver.handler.answers["/commands/a"] = (302, {"Location": receiver.url + "/elsewhere"}, b"")
        with pytest.raises(SlackPostError, match="302"):
            post_to_slack(receiver.url + "/commands/a", {"text": "x"}, allow_loopback=True)
        assert [p for p, _, _ in receiver.handler.received] == ["/commands/a"]

    def test_connection_failure_hides_the_path_and_the_cause_chain(self, receiver: Any) -> None:
        url = receiver.url + "/commands/SECRETTOKEN"
        receiver.shutdown()
        receiver.server_close()
        with pytest.raises(SlackPostError) as info:
            post_to_slack(url, {"text": "x"}, allow_loopback=True, timeout=(0.5, 0.5))
        assert "SECRETTOKEN" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__

    def test_timeouts_are_passed(self) -> None:
        seen: dict[str, Any] = {}

        class Response:
            status_code = 200

            def close(self) -> None:
                pass

        class Session:
            def post(self, url: str, **kwargs: Any) -> Response:
                seen.update(kwargs)
                return Response()

        post_to_slack(RESPONSE_URL, {"text": "x"}, session=Session())
        assert seen["timeout"] == (3.05, 5.0) and seen["allow_redirects"] is False

    def test_oversized_payload_is_refused(self) -> None:
        with pytest.raises(BadSlackRequest):
            post_to_slack(RESPONSE_URL, {"text": "x" * 50_000}, session=object())


def test_slash_command_model_is_frozen() -> None:
    slash = parse_slash_form(form())
    with pytest.raises(ValueError):
        slash.text = "other"  # type: ignore[misc]
    assert isinstance(slash, SlashCommand)


def test_importing_chatops_loads_neither_slack_sdk_nor_requests() -> None:
    # Cold start: both are imported only by the functions that use them.
    import subprocess
    import sys

    code = (
        "import sys, chatops.slack, chatops.signing, chatops.allowlist; "
        "print(sorted(m for m in ('slack_sdk', 'requests') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={"PYTHONPATH": "function:."},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
