"""chatops.deferred: the signed chat command on the request queue (parser properties and the trust checks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backups.models import ReplyTarget, TriggerInfo
from backups.request import BackupRequest
from chatops.commands import BackupCommand
from chatops.deferred import (
    RefusedChatCommand,
    can_defer,
    chat_command_body,
    chat_command_data,
    read_chat_command,
)
from jsontext import parse_json_object
from settings import Settings

KEY = "handoff-key-for-tests"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _settings(**kw: Any) -> Settings:
    env = {"HANDOFF_SECRET": KEY, "REQUEST_QUEUE_URL": "https://sqs.example/1/requests", **kw}
    return Settings.from_env({k: v for k, v in env.items() if v is not None})


def _body(settings: Settings, *, expires: datetime = NOW + timedelta(minutes=30)) -> str:
    return chat_command_body(
        BackupCommand(instance_name="prod-db-1", reason="release"),
        TriggerInfo(source="slack", trigger_id="slack:1.2.3", requested_by="slack:alice"),
        BackupRequest(instance_name="prod-db-1", reason="release", requested_by="slack:alice"),
        ReplyTarget(response_url="https://hooks.slack.com/commands/T1/2/x", expires_at=expires),
        settings,
    )


def test_a_signed_command_reads_back() -> None:
    s = _settings()
    data = chat_command_data(_body(s), s)
    assert data is not None
    message = read_chat_command(data, s, NOW)
    assert message.command.instance == "prod-db-1" and message.trigger.trigger_id == "slack:1.2.3"


def test_it_expires_with_its_response_url() -> None:
    s = _settings()
    data = parse_json_object(_body(s), "body")
    read_chat_command(data, s, NOW + timedelta(minutes=29, seconds=59))
    with pytest.raises(RefusedChatCommand, match="expired"):
        read_chat_command(data, s, NOW + timedelta(minutes=30))


def test_another_key_does_not_verify() -> None:
    data = parse_json_object(_body(_settings(HANDOFF_SECRET="someone-elses-key")), "body")
    with pytest.raises(RefusedChatCommand, match="signature"):
        read_chat_command(data, _settings(), NOW)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, True), ({"HANDOFF_SECRET": None}, False), ({"REQUEST_QUEUE_URL": None}, False)],
)
def test_commands_are_deferred_only_with_the_queue_and_the_key(env: dict[str, Any], expected: bool) -> None:
    assert can_defer(_settings(**env)) is expected


def test_only_kind_chat_is_a_chat_command() -> None:
    s = _settings()
    assert chat_command_data('{"kind": "fanout"}', s) is None
    assert chat_command_data('{"instanceName": "prod-db-1"}', s) is None
    assert chat_command_data("not json", s) is None
    assert chat_command_data('{"kind": "chat", "pad": "' + "x" * s.max_body_bytes + '"}', s) is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    extra=st.dictionaries(
        st.sampled_from(["command", "trigger", "request", "replyTo", "signature", "version", "x"]), JSON, max_size=5
    )
)
def test_any_chat_shaped_object_is_read_or_refused_never_crashes(extra: dict[str, Any]) -> None:
    data = {"kind": "chat", **extra}
    with pytest.raises(RefusedChatCommand) as info:
        read_chat_command(data, _settings(), NOW)
    assert KEY not in str(info.value)


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(["command", "trigger", "request", "replyTo"]), junk=JSON)
def test_changing_any_signed_part_is_refused(field: str, junk: Any) -> None:
    s = _settings()
    data = parse_json_object(_body(s), "body")
    if data.get(field) == junk:
        return
    data[field] = junk
    with pytest.raises(RefusedChatCommand):
        read_chat_command(data, s, NOW)
