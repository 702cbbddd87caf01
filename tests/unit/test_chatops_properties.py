"""Property tests: arbitrary bytes, headers and forms only ever produce the documented outcomes.

verify_slack / verify_webhook / authorize: success, Unauthorized, or a BadRequest (a ValueError).
parse_slash_form: a SlashCommand or BadSlackRequest. parse_command: a command model, never an exception.
Nothing else (TypeError, UnicodeError, IndexError, ...) may escape.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chatops.commands import BackupCommand, HelpCommand, StatusCommand, parse_command
from chatops.form import BadSlackRequest, SlashCommand, parse_slash_form
from chatops.replies import escape_mrkdwn, reply_dry_run, reply_help, reply_started
from security.common import BadRequest, Unauthorized
from security.hmac_v1 import sign_webhook, verify_webhook
from security.http_auth import HttpAuthorization, authorize
from security.slack import verify_slack
from security.urls import UnsafeUrl, check_response_url
from settings import Settings
from tests.signers import slack_signature

NOW = 1_760_000_000
PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

header_names = st.sampled_from(
    [
        "X-Slack-Signature",
        "x-slack-signature",
        "X-Slack-Request-Timestamp",
        "x-slack-request-timestamp",
        "X-Backup-Signature",
        "x-backup-timestamp",
        "X-Backup-Timestamp",
        "Content-Type",
        "Authorization",
    ]
) | st.text(max_size=30)
hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
near_timestamps = st.integers(NOW - 400, NOW + 400).map(str)
header_values = (
    st.text(max_size=200)
    | near_timestamps
    | st.builds("{}={}".format, st.sampled_from(["v0", "v1"]), hex64)
    | st.lists(hex64.map("v1={}".format), max_size=10).map(", ".join)
    | st.just("application/x-www-form-urlencoded")
)
any_headers = st.dictionaries(header_names, header_values, max_size=8) | st.dictionaries(
    st.one_of(st.text(), st.integers(), st.none()), st.one_of(st.text(), st.integers(), st.none(), st.binary())
)
bodies = st.binary(max_size=2048) | st.text(max_size=512)
secrets = st.text(max_size=40) | st.just("8f742231b10e8888abcd99yyyzzz85a5")


slack_sig = slack_signature


@PROFILE
@given(headers=any_headers, body=bodies, secret=secrets, now=st.integers(0, 2**34) | st.just(NOW))
def test_verify_slack_only_raises_documented_errors(headers: Any, body: Any, secret: str, now: int) -> None:
    try:
        verify_slack(headers, body, secret, now=now, max_body_bytes=1024)
    except (Unauthorized, BadRequest):
        return
    # Accepted: then it really was signed with the secret, in the window.
    h = {k.lower(): v for k, v in headers.items() if isinstance(k, str) and isinstance(v, str)}
    raw = body.encode() if isinstance(body, str) else body
    ts = h["x-slack-request-timestamp"].strip()
    assert abs(now - int(ts)) <= 300
    assert h["x-slack-signature"].strip().lower() == slack_sig(secret, ts, raw)


@PROFILE
@given(
    body=st.binary(max_size=1024),
    secret=st.text(min_size=1, max_size=40).filter(str.strip).filter(str.strip),
    skew=st.integers(-300, 300),
)
def test_verify_slack_accepts_what_slack_signs(body: bytes, secret: str, skew: int) -> None:
    assume(_utf8(body))
    ts = str(NOW)
    verify_slack(
        {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_sig(secret, ts, body)}, body, secret, NOW + skew
    )


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@PROFILE
@given(headers=any_headers, body=bodies, secret=secrets | st.lists(st.text(max_size=10), max_size=3))
def test_verify_webhook_only_raises_documented_errors(headers: Any, body: Any, secret: Any) -> None:
    try:
        verify_webhook(headers, body, secret, now=NOW, max_body_bytes=1024)
    except (Unauthorized, BadRequest):
        return
    raise AssertionError("random headers were accepted")  # a random 256-bit match is not going to happen


@PROFILE
@given(
    body=bodies,
    secret=st.text(min_size=1, max_size=40).filter(str.strip),
    ts=st.integers(NOW - 300, NOW + 300),
    pos=st.integers(0),
)
def test_webhook_round_trip_and_any_single_byte_change_fails(body: Any, secret: str, ts: int, pos: int) -> None:
    headers = sign_webhook(secret, body, ts)
    verify_webhook(headers, body, secret, now=NOW)
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if raw:
        i = pos % len(raw)
        changed = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
    else:
        changed = b" "
    try:
        verify_webhook(headers, changed, secret, now=NOW)
    except Unauthorized:
        return
    raise AssertionError("a changed body was accepted")


settings_variants = st.sampled_from(
    [
        {},
        {"ALLOW_UNSIGNED_HTTP": "true"},
        {"WEBHOOK_SECRET": "hook"},
        {"SLACK_SIGNING_SECRET": "slack"},
        {"WEBHOOK_SECRET": "hook", "SLACK_SIGNING_SECRET": "slack", "ALLOW_UNSIGNED_HTTP": "true"},
    ]
)


@PROFILE
@given(
    env=settings_variants,
    headers=any_headers,
    body=bodies,
    route=st.sampled_from(["backup", "slack", "status"]),
)
def test_authorize_only_raises_documented_errors(env: dict[str, str], headers: Any, body: Any, route: Any) -> None:
    s = Settings.from_env(env | {"MAX_BODY_BYTES": "1024"})
    try:
        result = authorize(s, route, headers, body, operation_id="fhm0b28lgfp4tkoa3jl6", now=NOW)
    except (Unauthorized, BadRequest):
        return
    assert isinstance(result, HttpAuthorization)
    # Without a real signature only the local-run switch, with no secret at all, lets a request through.
    assert env == {"ALLOW_UNSIGNED_HTTP": "true"} and result.signed is False


form_keys = st.sampled_from(
    ["team_id", "channel_id", "user_id", "user_name", "command", "text", "response_url", "trigger_id", "token"]
) | st.text(max_size=12)
form_values = (
    st.text(max_size=80)
    | st.text(alphabet="ABCDEFXYZ0123456789", min_size=1, max_size=12)
    | st.sampled_from(["/backup", "https://hooks.slack.com/commands/T1/2/x", "1.2.3", "https://evil.com/x"])
)


@PROFILE
@given(fields=st.lists(st.tuples(form_keys, form_values), max_size=12))
def test_parse_slash_form_on_arbitrary_forms(fields: list[tuple[str, str]]) -> None:
    try:
        body = urlencode(fields).encode()
    except UnicodeEncodeError:  # lone surrogates cannot even be sent
        return
    _check_form(body)


@PROFILE
@given(body=bodies)
def test_parse_slash_form_on_arbitrary_bytes(body: Any) -> None:
    _check_form(body)


def _check_form(body: Any) -> None:
    try:
        slash = parse_slash_form(body, max_body_bytes=4096)
    except BadSlackRequest:
        return
    assert isinstance(slash, SlashCommand)
    assert check_response_url(slash.response_url) == slash.response_url


command_words = st.sampled_from(
    [
        "web1",
        "status",
        "help",
        "--dry-run",
        "--reason",
        "--reason=x",
        '"',
        "'",
        "\u201c",
        "id:",
        "name:",
        "fhm0b28lgfp4tkoa3jl6",
        "&lt;",
        "&amp;",
        "\\",
        "-",
        "--",
    ]
) | st.text(max_size=20)


@PROFILE
@given(text=st.lists(command_words, max_size=8).map(" ".join) | st.text(max_size=300) | st.none())
def test_parse_command_never_raises_and_replies_are_escaped(text: Any) -> None:
    cmd = parse_command(text)
    assert isinstance(cmd, BackupCommand | StatusCommand | HelpCommand)
    if isinstance(cmd, BackupCommand):
        assert (cmd.instance_id is None) != (cmd.instance_name is None)
        payload = reply_started(cmd.instance, [(cmd.policy or "applied", "op1")], reason=cmd.reason)
        assert not re.search(r"[<>]|&(?!amp;|lt;|gt;)", reply_dry_run(cmd.instance, [cmd.policy or "p"])["text"])
    elif isinstance(cmd, HelpCommand):
        payload = reply_help(cmd.error)
    else:
        return
    assert not re.search(r"[<>]|&(?!amp;|lt;|gt;)", payload["text"])


@PROFILE
@given(text=st.text())
def test_escape_mrkdwn_leaves_no_control_characters_and_round_trips(text: str) -> None:
    out = escape_mrkdwn(text)
    assert "<" not in out and ">" not in out
    assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


@PROFILE
@given(
    url=st.text(max_size=80)
    | st.builds(
        lambda scheme, user, host, port, path: f"{scheme}://{user}{host}{port}{path}",
        st.sampled_from(["https", "http", "HTTPS", "ftp", ""]),
        st.sampled_from(["", "u@", "u:p@", "hooks.slack.com@", "@"]),
        st.sampled_from(["hooks.slack.com", "HOOKS.slack.com", "hooks.slack.com.evil.com", "evil.com", "[::1]"]),
        st.sampled_from(["", ":443", ":80", ":abc", ":"]),
        st.text(max_size=20),
    )
)
def test_check_response_url_accepts_only_https_hooks_slack_com(url: str) -> None:
    try:
        check_response_url(url)
    except UnsafeUrl:
        return
    parts = urlsplit(url)
    assert parts.scheme.lower() == "https" and parts.hostname == "hooks.slack.com"
    assert parts.username is None and parts.port in (None, 443)
