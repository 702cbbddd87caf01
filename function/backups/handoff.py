"""Handing a target on to another invocation: follow-up tickets and fan-out messages. Both embed its record.

- `FollowupTicket` (version 2): one started operation being followed, sent to FOLLOWUP_QUEUE_URL with a delay and
  again until it is done. Version 1 tickets (the target's fields flat in the ticket) are still read: `parse_ticket`
  migrates them. A ticket is only believed as far as the cloud confirms it: the follow-up compares the operation's
  own metadata with the ticket (backups.followup).
- `FanoutMessage` (version 2): one planned target sent through REQUEST_QUEUE_URL by an invocation with more than
  FANOUT_THRESHOLD targets. It skips resolution, so it must not be forgeable: it carries an HMAC-SHA256 over its
  canonical JSON under HANDOFF_SECRET, a key only the function holds, and a message without a valid signature is
  refused (a failed result, nothing started). Without HANDOFF_SECRET the function does not fan out (it executes
  inline) and accepts no fan-out message. Version 1 messages (unsigned) are refused.
- `Redelivery`: a request-queue message the function sends back to its own queue on Yandex (whole-batch
  redelivery would repeat its healthy neighbours), signed the same way, with the original trigger's identity
  and an attempt count.
- A retry message (backups.retry) is a `FanoutMessage` with `attempt` set: one target that hit a transient error
  while the rest of its request went on.

Fan-out, retry and redelivery messages carry a signed `issuedAt` (the first send's time, kept by every re-send)
and are refused past `max_age` (backups.schedule.message_max_age): a captured message cannot be replayed later.
A message without `issuedAt` was written by the previous version: it is accepted during this release (one log
line `undated signed message accepted`) and will be refused by the next.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import Field, ValidationError, model_validator

from backups.models import ID_PATTERN, CamelModel, ReplyTarget, TriggerInfo
from backups.ports import MessageQueue
from backups.target import BackupTarget, Planned, Started
from jsontext import NotAJsonObject, parse_json_object
from observability import get_logger
from security.hmac_v1 import sign
from settings import Settings

TICKET_VERSION = 2
# The largest message each platform's queue delivers: one message is read up to this, and refused alone past it.
QUEUE_BODY_LIMITS = {"aws": 1024 * 1024, "yandex": 256 * 1024}  # Amazon SQS 1 MiB, Yandex Message Queue 256 KiB
MAX_TICKET_BYTES = QUEUE_BODY_LIMITS["yandex"]  # a ticket must fit both queues
_ID = re.compile(ID_PATTERN)


S = TypeVar("S", bound="_Signed")


class _Signed(CamelModel):
    """A message the function writes for itself, signed with HANDOFF_SECRET over its canonical JSON (every field
    but the signature), `v1=<hex HMAC-SHA256(key, "<purpose>.<canonical JSON>")>` (security.hmac_v1)."""

    purpose: ClassVar[str]
    signature: str = Field(default="", pattern=r"^(v1=[0-9a-f]{64})?$")  # empty: unsigned (a ticket without a key)

    def _canonical(self) -> bytes:
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"signature"})
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    def signed(self, key: str) -> Self:
        return self.model_copy(update={"signature": sign(key, self.purpose, self._canonical())})

    def verify(self, key: str) -> bool:
        given = self.signature.encode("utf-8", "surrogatepass")  # never raises, whatever a message put there
        return hmac.compare_digest(given, sign(key, self.purpose, self._canonical()).encode())

    def body(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class ProgressSample(CamelModel):
    at: datetime
    percent: float


class FollowupTicket(_Signed):
    """One started operation being followed. Signed like the other messages the function writes for itself when
    HANDOFF_SECRET is set (then an unsigned or altered ticket is refused: it could name any trigger)."""

    purpose: ClassVar[str] = "followup"
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
    redeliveries: int = Field(default=0, ge=0)  # sent back by the function after a failed check (Yandex batches)

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

    def sealed_body(self, key: str | None) -> str:
        """The queue message body, signed when the function has a handoff key."""
        return (self.signed(key) if key else self).body()


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


def parse_ticket(body_text: str | bytes, key: str | None = None) -> FollowupTicket:
    """Read a follow-up ticket from a queue message body (versions 1 and 2). Raises `MalformedTicket`.

    `key` (HANDOFF_SECRET): the ticket must carry a valid signature (so a version 1 ticket, unsigned, is refused).
    """
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
        ticket = FollowupTicket.model_validate(data)
    except ValidationError as exc:
        raise MalformedTicket(f"invalid follow-up ticket: {_errors(exc, 'ticket')}", is_ticket=True) from None
    if key is not None and not ticket.verify(key):
        raise MalformedTicket(
            "follow-up ticket refused: its signature does not verify (it was not written by this function)",
            is_ticket=True,
        )
    return ticket


def send_tickets(started: list[Started], settings: Settings, queue: MessageQueue, reply_to: ReplyTarget | None) -> int:
    """One ticket per started operation, with FOLLOWUP_FIRST_DELAY_SECONDS. Raises QueueError."""
    if not started or not settings.followup_queue_url:
        return 0
    key = handoff_key(settings)
    bodies = [FollowupTicket.for_started(s, settings, reply_to).sealed_body(key) for s in started]
    queue.send_many(settings.followup_queue_url, bodies, delay_seconds=settings.followup_first_delay_seconds)
    return len(bodies)


# --- fan-out ---------------------------------------------------------------------------------------------


class FanoutMessage(_Signed):
    """One planned target, executed by another invocation. `signature` proves the function wrote it."""

    purpose: ClassVar[str] = "fanout"
    kind: Literal["fanout"] = "fanout"
    version: Literal[2] = 2
    target: BackupTarget
    apply_first: bool = False
    reply_to: ReplyTarget | None = None
    # None on first fan-out messages (and so absent from their JSON: older signatures still verify)
    attempt: int | None = Field(default=None, ge=1, le=100)  # a retry message: the how-manieth try this is
    recheck_applied: bool | None = None  # a retry message: check the policy's application before Execute
    issued_at: datetime | None = None  # when the first message for this target was written

    def planned(self) -> Planned:
        return Planned(target=self.target, apply_first=self.apply_first)


class ForgedFanout(ValueError):
    """A fan-out message this function did not write (or cannot read). The text is safe to show."""


class Redelivery(_Signed):
    """A request-queue message sent back by the function itself (Yandex batches have no per-message failure: one
    failing message would bring its whole batch back). It keeps the original trigger's identity, so the keys are
    those of the first delivery, and counts the attempts, so it ends: after REDELIVERY_MAX_ATTEMPTS a failed
    result and a copy in REQUEST_DLQ_URL."""

    purpose: ClassVar[str] = "redelivery"
    kind: Literal["redelivery"] = "redelivery"
    version: Literal[1] = 1
    trigger_id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=64)
    attempt: int = Field(ge=1, le=100)
    request: str = Field(max_length=QUEUE_BODY_LIMITS["yandex"])  # the original body, as it came
    issued_at: datetime | None = None  # when the first one was sent back (kept by later ones)


def handoff_key(settings: Settings) -> str | None:
    secret = settings.handoff_secret
    return secret.get_secret_value() if secret is not None else None


def fanout_bodies(planned: list[Planned], key: str, reply_to: ReplyTarget | None, issued_at: datetime) -> list[str]:
    return [
        FanoutMessage(target=p.target, apply_first=p.apply_first, reply_to=reply_to, issued_at=issued_at)
        .signed(key)
        .body()
        for p in planned
    ]


@dataclass(frozen=True)
class Freshness:
    """How old a signed message may be: `now`, and `max_age` (backups.schedule.message_max_age)."""

    now: datetime
    max_age: timedelta


def _check_age(message: FanoutMessage | Redelivery, what: str, fresh: Freshness) -> None:
    issued = message.issued_at
    if issued is None:
        # Written by the previous version (no issuedAt): accepted only while such a message can still be in
        # flight, so a captured copy cannot be replayed forever.
        if fresh.now >= UNDATED_ACCEPTED_UNTIL:
            raise ForgedFanout(f"{what} refused: it carries no issuedAt (written by a version before 2026-12)")
        get_logger().warning("undated signed message accepted", extra={"kind": message.purpose})
        return
    age = (fresh.now - issued).total_seconds()
    if age > fresh.max_age.total_seconds():
        raise ForgedFanout(
            f"{what} refused: issued {age:.0f} s ago, more than the {fresh.max_age.total_seconds():.0f} s a signed "
            "message may live (a late replay; nothing was started)"
        )
    if age < -CLOCK_SKEW_SECONDS:
        raise ForgedFanout(f"{what} refused: issued {-age:.0f} s in the future")


CLOCK_SKEW_SECONDS = 300.0  # how far the clocks of two invocations may disagree
# Messages of the version before issuedAt (deployed 2026-12-01) are read until then: longer than any retry chain
# or queue backlog of that version can last (its messages were retried for at most ~2.6 hours).
UNDATED_ACCEPTED_UNTIL = datetime(2026, 12, 8, tzinfo=UTC)


def read_signed(kind: type[S], data: dict[str, Any], settings: Settings, fresh: Freshness) -> S:
    """A fan-out or redelivery message read from the request queue, believed only when its signature verifies and
    it is not older than `fresh.max_age`. Raises ForgedFanout (a message that says what is wrong, never what the
    message claims)."""
    what = {"fanout": "fan-out message", "redelivery": "redelivery message"}[kind.purpose]
    key = handoff_key(settings)
    if key is None:
        raise ForgedFanout(f"{what}s are refused: HANDOFF_SECRET is not set")
    try:
        message = kind.model_validate(data)
    except ValidationError as exc:
        raise ForgedFanout(f"invalid {what}: {_errors(exc, 'message')}") from None
    if not message.verify(key):
        raise ForgedFanout(f"{what} refused: its signature does not verify (it was not written here)")
    if isinstance(message, FanoutMessage | Redelivery):
        _check_age(message, what, fresh)
    return message


def read_fanout(data: dict[str, Any], settings: Settings, fresh: Freshness) -> FanoutMessage:
    return read_signed(FanoutMessage, data, settings, fresh)


@dataclass(frozen=True)
class Delivery:
    """What one request-queue message asks for: its body, and whose trigger it is (the original trigger for a
    message the function sent back), and how many times it was sent back."""

    body: str
    trigger: TriggerInfo
    attempt: int = 0
    issued_at: datetime | None = None  # a message sent back: when the first one was

    def again(self, key: str, now: datetime) -> Redelivery:
        return Redelivery(
            trigger_id=self.trigger.trigger_id,
            source=self.trigger.source,
            attempt=self.attempt + 1,
            request=self.body,
            issued_at=self.issued_at or now,
        ).signed(key)


def read_delivery(body: str, carrier: TriggerInfo, settings: Settings, fresh: Freshness) -> Delivery:
    """Unwrap a signed `Redelivery`; anything else is its own delivery (a forged wrapper too: run_request refuses
    it, with a failed result that names the carrier)."""
    try:
        data = parse_json_object(body, "the message body")
    except NotAJsonObject:
        return Delivery(body, carrier)
    if data.get("kind") != "redelivery":
        return Delivery(body, carrier)
    try:
        message = read_signed(Redelivery, data, settings, fresh)
    except ForgedFanout:
        return Delivery(body, carrier)
    trigger = TriggerInfo(source=message.source, trigger_id=message.trigger_id)
    return Delivery(message.request, trigger, message.attempt, message.issued_at)
