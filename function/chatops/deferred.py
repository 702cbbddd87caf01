"""A chat backup command handed to the request queue, so Slack is answered before any cloud call is made.

Slack wants its answer within 3 seconds, and the answer must survive a cold start, a Secrets Manager read, an IAM
token exchange and the round trips to the Yandex Cloud API from wherever the function runs (docs/BENCHMARKS.md,
figure 8). So when the function can hand off (REQUEST_QUEUE_URL and HANDOFF_SECRET are set), a backup command is
only verified and parsed, written to REQUEST_QUEUE_URL as a signed `ChatCommand`, and acknowledged. The
request-queue invocation reads it back (`read_chat_command`), resolves, checks the chat allowlist, starts the backup
and posts what the inline answer would have said (the operation ids) to the command's `response_url`.

A `ChatCommand` skips the Slack signature check when it is read back, so it must not be forgeable: it is signed
with HANDOFF_SECRET like the fan-out messages (backups.handoff._Signed), and it expires with its `response_url`
(30 minutes after the command: `replyTo.expiresAt`, inside the signature). A message that fails the signature is
refused: a failed result that names the queue message, nothing started, nothing posted to the URL it claims. An
expired one verified, so its failed result names its own trigger, and nothing is started.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ValidationError

from backups.handoff import _Signed, handoff_key
from backups.models import ReplyTarget, TriggerInfo
from backups.request import BackupRequest
from chatops.commands import BackupCommand, backup_request
from jsontext import NotAJsonObject, parse_json_object
from settings import Settings


class ChatCommand(_Signed):
    """One `/backup` command (parsed, its Slack signature verified) waiting for the request-queue invocation."""

    purpose: ClassVar[str] = "chat"
    kind: Literal["chat"] = "chat"
    version: Literal[1] = 1
    command: BackupCommand
    trigger: TriggerInfo  # requestedBy: the Slack user; triggerId: the command's Slack trigger id
    reply_to: ReplyTarget

    @property
    def request(self) -> BackupRequest:
        """The domain request (as chatops.commands.to_backup_request built it before the hand-off)."""
        return backup_request(self.command, self.trigger.requested_by)


class RefusedChatCommand(ValueError):
    """A `kind: chat` message this function did not write, or one too old to act on. The text is safe to show."""


class ExpiredChatCommand(RefusedChatCommand):
    """A chat command that verifies but whose response_url has expired (a replayed copy, or a long backlog)."""

    def __init__(self, message: ChatCommand) -> None:
        super().__init__("chat command refused: it expired with its response_url (30 minutes)")
        self.message = message


def can_defer(settings: Settings) -> bool:
    """Whether backup commands are handed to the request queue (else they run inline, before the answer)."""
    return bool(settings.request_queue_url) and handoff_key(settings) is not None


def chat_command_body(command: BackupCommand, trigger: TriggerInfo, reply_to: ReplyTarget, settings: Settings) -> str:
    key = handoff_key(settings)
    assert key is not None, "can_defer() first"
    return ChatCommand(command=command, trigger=trigger, reply_to=reply_to).signed(key).body()


def body_bytes(body: str) -> int:
    return len(body.encode("utf-8", "surrogatepass"))


def chat_command_data(body: str, settings: Settings) -> dict[str, Any] | None:
    """The JSON object of a request-queue body that says it is a chat command (`kind: chat`), else None (the body
    is then an ordinary request: backups.run reads and refuses it, over-long bodies included)."""
    if body_bytes(body) > settings.max_body_bytes:
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
        # Name only the fields a chat command has: the keys of a hostile message are its own text.
        known = {f.alias or name for name, f in ChatCommand.model_fields.items()}
        fields = sorted({str(e["loc"][0]) if e["loc"] and e["loc"][0] in known else "?" for e in exc.errors()})
        raise RefusedChatCommand(f"invalid chat command message (fields: {', '.join(fields)})") from None
    if not message.verify(key):
        raise RefusedChatCommand("chat command refused: its signature does not verify (it was not written here)")
    if now >= message.reply_to.expires_at:
        raise ExpiredChatCommand(message)
    return message
