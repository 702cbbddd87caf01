"""Slack slash command: the form, the command grammar, replies (verification: test_security_slack.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from backups.request import BackupRequest
from chatops.commands import (
    BackupCommand,
    HelpCommand,
    StatusCommand,
    looks_like_id,
    parse_command,
    slack_reply_target,
    to_backup_request,
)
from chatops.form import BadSlackRequest, SlashCommand, parse_slash_form
from chatops.replies import (
    escape_mrkdwn,
    help_text,
    reply_dry_run,
    reply_error,
    reply_help,
    reply_started,
    reply_status,
)
from security.common import BadRequest, PayloadTooLarge
from security.urls import UnsafeUrl
from ycloud.models import Operation

# Slack's published example form (Slack API docs, "Verifying requests from Slack").
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
RESPONSE_URL = "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN"


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


def test_slash_command_model_is_frozen() -> None:
    slash = parse_slash_form(form())
    with pytest.raises(ValueError):
        slash.text = "other"  # type: ignore[misc]
    assert isinstance(slash, SlashCommand)


def test_importing_chatops_and_security_loads_neither_slack_sdk_nor_requests() -> None:
    # Cold start: slack_sdk is imported when a Slack request is verified; requests only by what posts.
    import subprocess
    import sys

    code = (
        "import sys, chatops.commands, chatops.form, chatops.replies, chatops.allowlist, security.http_auth, "
        "security.urls; "
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
