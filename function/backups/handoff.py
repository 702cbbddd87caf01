"""Handing a target on to another invocation: follow-up tickets and fan-out messages. Both embed its record.

- `FollowupTicket` (version 2): one started operation being followed, sent to FOLLOWUP_QUEUE_URL with a delay and
  again until it is done. Version 1 tickets (the target's fields flat in the ticket) are still read: `parse_ticket`
  migrates them. A ticket is only believed as far as the cloud confirms it: the follow-up compares the operation's
  own metadata with the ticket (backups.followup).
- `FanoutMessage` (version 2): one planned target sent through REQUEST_QUEUE_URL by an invocation with more than
  FANOUT_THRESHOLD targets. It skips resolution, so it must not be forgeable: it carries an HMAC-SHA256 over its
  canonical JSON under FANOUT_SECRET, a key only the function holds, and a message without a valid signature is
  refused (a failed result, nothing started). Without FANOUT_SECRET the function does not fan out (it executes
  inline) and accepts no fan-out message. Version 1 messages (unsigned) are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from backups.models import ID_PATTERN, CamelModel, ReplyTarget
from backups.ports import MessageQueue
from backups.target import BackupTarget, Planned, Started
from jsontext import NotAJsonObject, parse_json_object
from settings import Settings

TICKET_VERSION = 2
FANOUT_VERSION = 2
MAX_TICKET_BYTES = 256 * 1024  # the smaller of the two queues' message limits (Message Queue: 256 KiB)
_ID = re.compile(ID_PATTERN)


class ProgressSample(CamelModel):
    at: datetime
    percent: float


class FollowupTicket(CamelModel):
    """One started operation being followed."""

    kind: Literal["followup"] = "followup"
    version: Literal[2] = 2
    target: BackupTarget
    operation_id: str = Field(pattern=ID_PATTERN)
    started_at: datetime
    deadline: datetime
    attempt: int = Field(default=0, ge=0)  # how many times the operation has been checked
    transient_errors: int = Field(default=0, ge=0)  # consecutive transient failures of Operation.Get
    progress: list[ProgressSample] = Field(default_factory=list, max_length=32)  # for the finish estimate
    reply_to: ReplyTarget | None = None
    last_reported_percent: float | None = None

    @model_validator(mode="after")
    def _target_is_started(self) -> FollowupTicket:
        for name in ("compute_instance_id", "policy_id"):
            value = getattr(self.target, name)
            if not isinstance(value, str) or not _ID.fullmatch(value):
                raise ValueError(f"target.{name} must be a resource id")
        return self

    @classmethod
    def for_started(cls, started: Started, settings: Settings, reply_to: ReplyTarget | None) -> FollowupTicket:
        return cls(
            target=started.target,
            operation_id=started.operation_id,
            started_at=started.started_at,
            deadline=started.started_at + timedelta(seconds=settings.followup_deadline_seconds),
            reply_to=reply_to,
        )

    def body(self) -> str:
        """The queue message body."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class MalformedTicket(ValueError):
    """The message is not a follow-up ticket we can read. The text never quotes the body (it may carry a Slack
    response_url). `is_ticket`: it says it is a ticket (`kind: followup`) but does not hold up (an id that is not
    an id, a missing field): it ends in one failed result. Otherwise it is poison for the dead-letter queue."""

    def __init__(self, message: str, *, is_ticket: bool = False) -> None:
        super().__init__(message)
        self.is_ticket = is_ticket


def _errors(exc: ValidationError, what: str) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    )


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 ticket (target fields flat) in the version 2 shape."""
    flat = {k: data.pop(k, None) for k in ("policyId", "computeInstanceId", "instanceName", "folderId")}
    data["target"] = {
        "trigger": data.pop("trigger", None),
        "asked": f"computeInstanceId={flat['computeInstanceId']}",
        **{k: v for k, v in flat.items() if v is not None},
    }
    data["version"] = TICKET_VERSION
    return data


def parse_ticket(body_text: str | bytes) -> FollowupTicket:
    """Read a follow-up ticket from a queue message body (versions 1 and 2). Raises `MalformedTicket`."""
    size = len(body_text) if isinstance(body_text, bytes) else len(body_text.encode("utf-8", "surrogatepass"))
    if size > MAX_TICKET_BYTES:
        raise MalformedTicket(f"follow-up ticket is too large ({size} bytes)")
    try:
        data = parse_json_object(body_text, "follow-up ticket")
    except NotAJsonObject as exc:
        raise MalformedTicket(str(exc)) from None
    if data.get("kind") != "followup":
        raise MalformedTicket(f"not a follow-up ticket (kind {str(data.get('kind'))[:40]!r})")
    version = data.get("version", 1)
    if version not in (1, TICKET_VERSION) or isinstance(version, bool):
        raise MalformedTicket(f"unsupported follow-up ticket version {str(version)[:20]!r}")
    if version == 1:
        data = _migrate_v1(data)
    try:
        return FollowupTicket.model_validate(data)
    except ValidationError as exc:
        raise MalformedTicket(f"invalid follow-up ticket: {_errors(exc, 'ticket')}", is_ticket=True) from None


def send_tickets(started: list[Started], settings: Settings, queue: MessageQueue, reply_to: ReplyTarget | None) -> int:
    """One ticket per started operation, with FOLLOWUP_FIRST_DELAY_SECONDS. Raises QueueError."""
    if not started or not settings.followup_queue_url:
        return 0
    bodies = [FollowupTicket.for_started(s, settings, reply_to).body() for s in started]
    queue.send_many(settings.followup_queue_url, bodies, delay_seconds=settings.followup_first_delay_seconds)
    return len(bodies)


# --- fan-out ---------------------------------------------------------------------------------------------


class FanoutMessage(CamelModel):
    """One planned target, executed by another invocation. `signature` proves the function wrote it."""

    kind: Literal["fanout"] = "fanout"
    version: Literal[2] = 2
    target: BackupTarget
    apply_first: bool = False
    reply_to: ReplyTarget | None = None
    signature: str = ""

    def _canonical(self) -> bytes:
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"signature"})
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    def signed(self, key: str) -> FanoutMessage:
        return self.model_copy(update={"signature": "v1=" + _hmac(key, self._canonical())})

    def verify(self, key: str) -> bool:
        return hmac.compare_digest(self.signature, "v1=" + _hmac(key, self._canonical()))

    def planned(self) -> Planned:
        return Planned(target=self.target, apply_first=self.apply_first)


class ForgedFanout(ValueError):
    """A fan-out message this function did not write (or cannot read). The text is safe to show."""


def _hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), b"fanout." + message, hashlib.sha256).hexdigest()


def fanout_key(settings: Settings) -> str | None:
    secret = settings.fanout_secret
    return secret.get_secret_value() if secret is not None else None


def fanout_bodies(planned: list[Planned], key: str, reply_to: ReplyTarget | None) -> list[str]:
    return [
        FanoutMessage(target=p.target, apply_first=p.apply_first, reply_to=reply_to)
        .signed(key)
        .model_dump_json(by_alias=True, exclude_none=True)
        for p in planned
    ]


def read_fanout(data: dict[str, Any], settings: Settings) -> FanoutMessage:
    """A fan-out message read from the request queue, believed only when its signature verifies."""
    key = fanout_key(settings)
    if key is None:
        raise ForgedFanout("fan-out messages are refused: FANOUT_SECRET is not set")
    try:
        message = FanoutMessage.model_validate(data)
    except ValidationError as exc:
        raise ForgedFanout(f"invalid fan-out message: {_errors(exc, 'message')}") from None
    if not message.verify(key):
        raise ForgedFanout("fan-out message refused: its signature does not verify (it was not written here)")
    return message
