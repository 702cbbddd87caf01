"""Result events: one CloudEvents 1.0 event per target, with a deterministic id, and their delivery to the sinks.

Event (structured mode, `application/cloudevents+json` on HTTP):

- `id`: `str(uuid5(RESULT_NAMESPACE, key))`, `key` being `target_key(...)`:
  `f"{triggerId}|{policyId}|{computeInstanceId}"`, or `f"{triggerId}|{target as asked}"` when no instance is known
  (a target that could not start). A duplicate ticket or a redelivered trigger yields the same id, so consumers
  drop duplicates by id.
- `type`: `cloud.yandex.backup.execute.succeeded`, `...failed` or `...timed_out` (`EVENT_TYPES`).
- `source`: `Settings.result_event_source` (default `urn:yc-backup-runner`); `subject`: the instance id (or the
  target as asked); `time`: when the backup finished (`data.finishedAt`).
- `data` (`ResultData`): status, operationId, policyId, computeInstanceId, instanceName, folderId, target,
  error {code (gRPC name), message, grpcCode}, startedAt, finishedAt, durationSeconds, and the trigger's source,
  triggerId, correlationId, requestedBy, reason, plus polls (Operation.Get calls made while following).

Times: `startedAt` is when the operation was started (the ticket's); `finishedAt` is the operation's `modifiedAt`
when the service reports the end and that time is plausible (not before the start, not after now), otherwise the
time the end was noticed.

`emit_result` hands an event to every sink (each sink retries on its own) and reports which failed, so the
caller can have the queue redeliver the ticket; a redelivered ticket produces the same event id.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from backups.models import FollowupTicket, ResultData, ResultError, ResultEvent, ResultStatus, TriggerInfo
from backups.ports import ResultSink, SinkError
from ycloud.errors import code_name

if TYPE_CHECKING:
    from settings import Settings
    from ycloud.models import Operation

# Fixed forever: changing it changes every event id (consumers would see duplicates as new events).
RESULT_NAMESPACE = uuid.UUID("8b3f6a52-2c1e-5d47-9a0b-6e4c1f7d2a95")
DEFAULT_EVENT_SOURCE = "urn:yc-backup-runner"
EVENT_TYPE_PREFIX = "cloud.yandex.backup.execute."
EVENT_TYPES: dict[str, str] = {
    "succeeded": EVENT_TYPE_PREFIX + "succeeded",
    "failed": EVENT_TYPE_PREFIX + "failed",
    "timed_out": EVENT_TYPE_PREFIX + "timed_out",
}
PROGRESS_STEP = 25.0  # chat progress updates at 25%, 50%, 75%
CLOCK_SKEW = timedelta(seconds=60)  # how far the service's modifiedAt may run ahead of our clock


def target_key(trigger_id: str, policy_id: str | None, instance_id: str | None, asked: str | None = None) -> str:
    """`trigger_id|policy_id|instance_id`, or `trigger_id|<target as asked>` when no instance is known.

    The trigger side's Idempotency-Key and the result event id are both derived from this string. A known
    instance without a known policy uses an empty policy part.
    """
    if instance_id:
        return f"{trigger_id}|{policy_id or ''}|{instance_id}"
    return f"{trigger_id}|{asked or ''}"


def result_event_id(key: str) -> str:
    return str(uuid.uuid5(RESULT_NAMESPACE, key))


# --- builders ----------------------------------------------------------------------------------------------


def result_from_operation(
    ticket: FollowupTicket, operation: Operation, now: datetime, *, source: str = DEFAULT_EVENT_SOURCE
) -> ResultEvent:
    """The result of a finished operation: failed when it carries an error (even before `done`), else succeeded.

    `ticket.attempt` is taken as the number of checks made, this one included.
    """
    if operation.failed and operation.error is not None:
        error = ResultError(
            code=code_name(operation.error.code),
            message=operation.error.message or code_name(operation.error.code),
            grpc_code=operation.error.code,
        )
        status: ResultStatus = "failed"
    elif operation.done:
        error, status = None, "succeeded"
    else:
        raise ValueError(f"operation {operation.id} has not finished")
    finished = operation.modified_at
    if finished is None or finished < ticket.started_at or finished > now + CLOCK_SKEW:
        finished = now
    return _from_ticket(ticket, status, error, min(finished, max(now, ticket.started_at)), source)


def failed_result(
    ticket: FollowupTicket,
    *,
    code: str,
    message: str,
    grpc_code: int | None,
    now: datetime,
    source: str = DEFAULT_EVENT_SOURCE,
) -> ResultEvent:
    """A followed operation that cannot be followed any further (Operation.Get failed permanently)."""
    return _from_ticket(ticket, "failed", ResultError(code=code, message=message, grpc_code=grpc_code), now, source)


def timed_out_result(ticket: FollowupTicket, now: datetime, *, source: str = DEFAULT_EVENT_SOURCE) -> ResultEvent:
    """The operation was still running at the ticket's deadline. It may still finish; we stop following it."""
    error = ResultError(
        code="DEADLINE_EXCEEDED",
        message=(
            f"operation {ticket.operation_id} still running at the follow-up deadline "
            f"{ticket.deadline.isoformat()}; it is no longer followed"
        ),
        grpc_code=None,  # our own deadline, not an error the service returned
    )
    return _from_ticket(ticket, "timed_out", error, now, source)


def failed_start_result(
    trigger: TriggerInfo,
    *,
    policy_id: str | None,
    compute_instance_id: str | None,
    instance_name: str | None,
    folder_id: str | None,
    target: str | None,
    code: str,
    message: str,
    grpc_code: int | None,
    now: datetime,
    source: str = DEFAULT_EVENT_SOURCE,
) -> ResultEvent:
    """A target that could not start (no policy applied, instance not found, Execute refused ...)."""
    data = ResultData(
        status="failed",
        policy_id=policy_id,
        compute_instance_id=compute_instance_id,
        instance_name=instance_name,
        folder_id=folder_id,
        target=target,
        error=ResultError(code=code, message=message, grpc_code=grpc_code),
        finished_at=now,
        **_trigger_fields(trigger),
    )
    key = target_key(trigger.trigger_id, policy_id, compute_instance_id, target)
    return _event(key, data, subject=compute_instance_id or target, source=source)


def _from_ticket(
    ticket: FollowupTicket, status: ResultStatus, error: ResultError | None, finished: datetime, source: str
) -> ResultEvent:
    duration = max((finished - ticket.started_at).total_seconds(), 0.0)
    data = ResultData(
        status=status,
        operation_id=ticket.operation_id,
        policy_id=ticket.policy_id,
        compute_instance_id=ticket.compute_instance_id,
        instance_name=ticket.instance_name,
        folder_id=ticket.folder_id,
        error=error,
        started_at=ticket.started_at,
        finished_at=finished,
        duration_seconds=round(duration, 3),
        polls=ticket.attempt,
        **_trigger_fields(ticket.trigger),
    )
    key = target_key(ticket.trigger.trigger_id, ticket.policy_id, ticket.compute_instance_id)
    return _event(key, data, subject=ticket.compute_instance_id, source=source)


def _trigger_fields(trigger: TriggerInfo) -> dict[str, Any]:
    return {
        "source": trigger.source,
        "trigger_id": trigger.trigger_id,
        "correlation_id": trigger.correlation_id,
        "requested_by": trigger.requested_by,
        "reason": trigger.reason,
    }


def _event(key: str, data: ResultData, *, subject: str | None, source: str) -> ResultEvent:
    return ResultEvent(
        id=result_event_id(key),
        source=source,
        type=EVENT_TYPES[data.status],
        subject=subject,
        time=data.finished_at,
        data=data,
    )


# --- chat wording ------------------------------------------------------------------------------------------


def progress_message(ticket: FollowupTicket, percent: float | None, *, now: datetime | None = None) -> str | None:
    """The chat progress update due for `percent`, or None.

    Due when progress crossed the next `PROGRESS_STEP` (25%, 50%, 75%) since the last update, the ticket has a
    reply target that is not expired, and more than one message is left on it (the last one is kept for the
    final result).
    """
    reply = ticket.reply_to
    if reply is None or percent is None or not math.isfinite(percent) or reply.messages_left <= 1:
        return None
    if now is not None and now >= reply.expires_at:
        return None
    if percent >= 100:
        return None  # the result follows shortly
    last = ticket.last_reported_percent or 0.0
    if math.floor(percent / PROGRESS_STEP) <= math.floor(last / PROGRESS_STEP):
        return None
    return (
        f"Backup of {_instance(ticket.instance_name, ticket.compute_instance_id)} is {percent:.0f}% done "
        f"(policy {ticket.policy_id}, operation {ticket.operation_id})."
    )


def chat_text(event: ResultEvent) -> str:
    """A short human message for the final result."""
    d = event.data
    head = {"succeeded": "Backup succeeded", "failed": "Backup failed", "timed_out": "Backup timed out"}[d.status]
    mark = {"succeeded": ":white_check_mark:", "failed": ":x:", "timed_out": ":hourglass:"}[d.status]
    what = _instance(d.instance_name, d.compute_instance_id) if d.compute_instance_id else (d.target or "?")
    parts = [f"{mark} {head}: {what}"]
    if d.policy_id:
        parts.append(f"policy {d.policy_id}")
    if d.operation_id:
        parts.append(f"operation {d.operation_id}")
    if d.duration_seconds is not None:
        parts.append(f"took {format_duration(d.duration_seconds)}")
    text = ", ".join(parts) + "."
    if d.error is not None:
        text += f"\nError {d.error.code}: {d.error.message}"
    return text


def format_duration(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _instance(name: str | None, instance_id: str | None) -> str:
    return f"{name} ({instance_id})" if name else (instance_id or "?")


# --- delivery ----------------------------------------------------------------------------------------------


class SinkSkipped(Exception):
    """Raised by a sink that deliberately did not deliver (nowhere to post); not a failure, not retried."""


@runtime_checkable
class ProgressSink(Protocol):
    """A sink that can also post progress updates (the chat sink)."""

    name: str

    def post_progress(self, text: str) -> bool:
        """Post `text`; True when posted. Never raises."""
        ...


@dataclass
class EmitReport:
    """Which sinks took the event. `failed` maps a sink's name to a secret-free reason."""

    event_id: str
    delivered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


LOG_SINK = "log"


def emit_result(event: ResultEvent, sinks: Sequence[ResultSink], settings: Settings) -> EmitReport:
    """Give `event` to every sink. RESULTS_FAILURES_ONLY skips succeeded events for every sink but the log.

    Never raises for a sink's failure: a sink that still fails after its own retries is in `report.failed`.
    """
    report = EmitReport(event_id=event.id)
    for sink in sinks:
        name = getattr(sink, "name", type(sink).__name__)
        if settings.results_failures_only and event.data.status == "succeeded" and name != LOG_SINK:
            report.skipped.append(name)
            continue
        try:
            sink.emit(event)
        except SinkSkipped:
            report.skipped.append(name)
        except SinkError as exc:
            report.failed[name] = str(exc)
        except Exception as exc:  # a bug in one sink must not keep the event from the others
            report.failed[name] = f"unexpected {type(exc).__name__}"
        else:
            report.delivered.append(name)
    return report
