"""A chat backup command handed to the request queue, so Slack is answered before any cloud call is made.

Slack wants its answer within 3 seconds, and the answer must survive a cold start, a Secrets Manager read, an IAM
token exchange and the round trips to the Yandex Cloud API from wherever the function runs (docs/BENCHMARKS.md,
figure 8). So when the function can hand off (REQUEST_QUEUE_URL and HANDOFF_SECRET are set), a backup command is
only verified and parsed, written to REQUEST_QUEUE_URL as a signed `ChatCommand`, and acknowledged. The
request-queue invocation reads it back (`read_chat_command`), resolves, checks the chat allowlist, starts the backup
and posts what the inline answer would have said (the operation ids) to the command's `response_url`.

A `ChatCommand` skips the Slack signature check when it is read back, so it must not be forgeable: it is signed
with HANDOFF_SECRET like the fan-out messages (backups.handoff._Signed), and it expires with its `response_url`
(30 minutes after the command: `replyTo.expiresAt`, inside the signature). A message that fails either check is
refused: a failed result that names the queue message, nothing started, nothing posted to the URL it claims.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ValidationError

from backups.handoff import _Signed, handoff_key
from backups.models import ReplyTarget, TriggerInfo
from backups.request import BackupRequest
from chatops.commands import BackupCommand
from jsontext import NotAJsonObject, parse_json_object
from settings import Settings


class ChatCommand(_Signed):
    """One `/backup` command (parsed, its Slack signature verified) waiting for the request-queue invocation."""

    purpose: ClassVar[str] = "chat"
    kind: Literal["chat"] = "chat"
    version: Literal[1] = 1
    command: BackupCommand
    trigger: TriggerInfo
    request: BackupRequest
    reply_to: ReplyTarget


class RefusedChatCommand(ValueError):
    """A `kind: chat` message this function did not write, or one too old to act on. The text is safe to show."""


def can_defer(settings: Settings) -> bool:
    """Whether backup commands are handed to the request queue (else they run inline, before the answer)."""
    return bool(settings.request_queue_url) and handoff_key(settings) is not None


def chat_command_body(
    command: BackupCommand, trigger: TriggerInfo, request: BackupRequest, reply_to: ReplyTarget, settings: Settings
) -> str:
    key = handoff_key(settings)
    assert key is not None, "can_defer() first"
    message = ChatCommand(command=command, trigger=trigger, request=request, reply_to=reply_to)
    return message.signed(key).body()


def chat_command_data(body: str, settings: Settings) -> dict[str, Any] | None:
    """The JSON object of a request-queue body that says it is a chat command (`kind: chat`), else None (the body
    is then an ordinary request: backups.run reads and refuses it, over-long bodies included)."""
    if len(body) > settings.max_body_bytes:
        return None
    try:
        data = parse_json_object(body, "the message body")
    except NotAJsonObject:
        return None
    return data if data.get("kind") == "chat" else None


def read_chat_command(data: dict[str, Any], settings: Settings, now: datetime) -> ChatCommand:
    """A `kind: chat` request-queue message, believed only when its signature verifies and its response_url has not
    expired. Raises RefusedChatCommand, whose text never repeats what the message claims."""
    key = handoff_key(settings)
    if key is None:
        raise RefusedChatCommand("chat commands from the queue are refused: HANDOFF_SECRET is not set")
    try:
        message = ChatCommand.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "message" for e in exc.errors(include_input=False)})
        raise RefusedChatCommand(f"invalid chat command message ({', '.join(fields[:5])})") from None
    if not message.verify(key):
        raise RefusedChatCommand("chat command refused: its signature does not verify (it was not written here)")
    if now >= message.reply_to.expires_at:
        raise RefusedChatCommand("chat command refused: it expired with its response_url (30 minutes)")
    return message
