"""Result events: one CloudEvents 1.0 event per target, built in one place (`result_event`).

Event (structured mode, `application/cloudevents+json` on HTTP):

- `id`: the target's `result_event_id` (UUIDv5 of its key, backups.target): a duplicate ticket or a redelivered
  trigger yields the same id, so consumers drop duplicates by id.
- `type`: `cloud.yandex.backup.execute.succeeded`, `...failed` or `...timed_out` (`EVENT_TYPES`).
- `source`: `Settings.result_event_source` (default `urn:yc-backup-runner`); `subject`: the instance id (or the
  target as asked); `time`: when the backup finished (`data.finishedAt`).
- `data` (`ResultData`): status, operationId, policyId, computeInstanceId, instanceName, folderId, target (only for
  targets that never started), error {code (gRPC name), message, grpcCode}, startedAt, finishedAt,
  durationSeconds, and the trigger's source, triggerId, correlationId, requestedBy, reason, plus polls
  (Operation.Get calls made while following).

Times: `startedAt` is when the operation was started (the ticket's); `finishedAt` is the operation's `modifiedAt`
when the service reports the end and that time is plausible (not before the start, not after now), otherwise the
time the end was noticed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from backups.models import ResultData, ResultError, ResultEvent, ResultStatus
from backups.target import BackupTarget, Failed
from ycloud.errors import code_name

if TYPE_CHECKING:
    from backups.handoff import FollowupTicket
    from ycloud.models import Operation

DEFAULT_EVENT_SOURCE = "urn:yc-backup-runner"
EVENT_TYPE_PREFIX = "cloud.yandex.backup.execute."
EVENT_TYPES: dict[str, str] = {
    "succeeded": EVENT_TYPE_PREFIX + "succeeded",
    "failed": EVENT_TYPE_PREFIX + "failed",
    "timed_out": EVENT_TYPE_PREFIX + "timed_out",
}
CLOCK_SKEW = timedelta(seconds=60)  # how far the service's modifiedAt may run ahead of our clock
FROM_RECORD = {"policy_id", "compute_instance_id", "instance_name", "folder_id"}  # record -> data


def result_event(
    target: BackupTarget,
    status: ResultStatus,
    *,
    finished_at: datetime,
    error: ResultError | None = None,
    operation_id: str | None = None,
    started_at: datetime | None = None,
    polls: int | None = None,
    source: str = DEFAULT_EVENT_SOURCE,
) -> ResultEvent:
    """The one builder of result events: every field comes from the target's record or from these arguments."""
    duration = None if started_at is None else round(max((finished_at - started_at).total_seconds(), 0.0), 3)
    data = ResultData(
        status=status,
        operation_id=operation_id,
        target=target.asked if operation_id is None else None,  # what was asked, on targets that never started
        error=error,
        started_at=started_at,
        finished_at=finished_at,
        duration_seconds=duration,
        polls=polls,
        **target.model_dump(include=FROM_RECORD),  # the instance and the policy
        **target.trigger.model_dump(),  # who asked: source, triggerId, correlationId, requestedBy, reason
    )
    return ResultEvent(
        id=target.result_event_id,
        source=source,
        type=EVENT_TYPES[status],
        subject=target.subject,
        time=finished_at,
        data=data,
    )


def failed_start_event(failed: Failed, *, source: str = DEFAULT_EVENT_SOURCE) -> ResultEvent:
    """A target that could not start (no policy applied, instance not found, Execute refused ...)."""
    return result_event(failed.target, "failed", finished_at=failed.finished_at, error=failed.error, source=source)


def _from_ticket(
    ticket: FollowupTicket, status: ResultStatus, error: ResultError | None, finished: datetime, source: str
) -> ResultEvent:
    return result_event(
        ticket.target,
        status,
        finished_at=finished,
        error=error,
        operation_id=ticket.operation_id,
        started_at=ticket.started_at,
        polls=ticket.attempt,
        source=source,
    )


def result_from_operation(
    ticket: FollowupTicket, operation: Operation, now: datetime, *, source: str = DEFAULT_EVENT_SOURCE
) -> ResultEvent:
    """The result of a finished operation: failed when it carries an error (even before `done`), else succeeded.

    `ticket.attempt` is taken as the number of checks made, this one included.
    """
    if operation.failed and operation.error is not None:
        error: ResultError | None = ResultError(
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
    """A followed operation that cannot be followed any further (Operation.Get failed permanently, or the
    operation is not the one the ticket names)."""
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
