"""Follow one started operation: check it once, then reschedule the ticket or finish with a result event.

`follow(ticket, cloud=..., queue=..., settings=..., clock=..., sinks=...)` makes one `Operation.Get` and returns a
`FollowOutcome` saying what happened:

- `rescheduled`: still running; the updated ticket went back to FOLLOWUP_QUEUE_URL with `delay_seconds`
  (`backups.schedule.next_delay`). A progress update may have been posted to chat on the way.
- `rescheduled` with `error` set: Operation.Get failed transiently (throttled, unavailable, timed out). The
  backup is not ended: the ticket is re-sent with a short back-off (`schedule.retry_delay`: 15 s, 30 s, ... 5 min,
  counted in `ticket.transientErrors`) instead of failing the message, so an API outage does not burn the queue's
  receive count and send healthy tickets to the dead-letter queue. The deadline still applies.
- `finished`: the operation ended (failed when it carries an error, even before `done`; succeeded when done
  without error), Operation.Get failed permanently (NOT_FOUND, PERMISSION_DENIED ...: failed with that error), or
  the ticket is past its deadline (timed_out). The event went to every sink; `emit.failed` lists the sinks that
  still failed after their retries.
- `retry`: nothing durable happened (the ticket could not be sent back to the queue).

`outcome.needs_redelivery` is True for `retry` and for a `finished` whose emission partly failed: the caller then
reports the message as failed so the queue delivers the ticket again (the operation is checked again and the
event re-emitted with the same id: at-least-once, deduplicated by id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from backups import schedule
from backups.events import failed_result, result_event, result_from_operation, timed_out_result
from backups.handoff import FollowupTicket, handoff_key
from backups.models import ResultError, ResultEvent, TriggerInfo
from backups.ports import Clock, MessageQueue, OperationsApi, QueueError, ResultSink
from backups.results import EmitReport, ProgressSink, emit_result, progress_message
from backups.target import BackupTarget
from metrics import MetricsRecorder
from ycloud.errors import CloudError

if TYPE_CHECKING:
    from settings import Settings
    from ycloud.models import Operation

Action = Literal["rescheduled", "finished", "retry"]


class CloudApi(Protocol):
    """What `follow` needs of the client: `cloud.operations.get(operation_id) -> Operation`."""

    @property
    def operations(self) -> OperationsApi: ...


@dataclass(frozen=True)
class FollowOutcome:
    action: Action
    ticket: FollowupTicket  # the ticket as updated by this check (the one sent back, when rescheduled)
    delay_seconds: int | None = None  # rescheduled: when the next check comes
    event: ResultEvent | None = None  # finished: the result event
    emit: EmitReport | None = None  # finished: where it went
    error: CloudError | None = None  # Operation.Get's error (transient: rescheduled; permanent: finished)
    reason: str = ""  # short words for the caller's log line
    progress_posted: bool = False

    @property
    def needs_redelivery(self) -> bool:
        """The caller should report the message as failed so the queue delivers the ticket again."""
        return self.action == "retry" or (self.emit is not None and not self.emit.ok)


def mismatch(ticket: FollowupTicket, operation: Operation) -> str | None:
    """Why `operation` is not the backup the ticket names, or None. A ticket is only as good as the cloud confirms:
    its operation must be an Execute of the ticket's policy on the ticket's instance."""
    meta = operation.metadata
    want = ticket.target
    wrong = meta.compute_instance_id != want.compute_instance_id or meta.policy_id != want.policy_id
    if wrong or not operation.is_execute:
        return (
            f"operation {ticket.operation_id} is not a backup of instance {want.compute_instance_id} with policy "
            f"{want.policy_id} (the ticket does not match the operation; it was not written by this function)"
        )
    return None


def refuse_ticket(
    reason: str,
    carrier: TriggerInfo,
    *,
    sinks: list[ResultSink],
    settings: Settings,
    clock: Clock,
    metrics: MetricsRecorder | None = None,
) -> EmitReport:
    """A ticket that does not hold up ends in one failed result, reported as the queue message that carried it
    (`carrier`): nothing it claims is believed, and nothing is called with its ids."""
    target = BackupTarget(trigger=carrier, asked="ticket")
    event = result_event(
        target,
        "failed",
        finished_at=clock.now(),
        error=ResultError(code="INVALID_TICKET", message=reason),
        source=settings.result_event_source,
    )
    return emit_result(event, sinks, settings, metrics)


def follow(
    ticket: FollowupTicket,
    *,
    cloud: CloudApi,
    queue: MessageQueue,
    settings: Settings,
    clock: Clock,
    sinks: list[ResultSink],
    metrics: MetricsRecorder | None = None,
    operation: Operation | None = None,
) -> FollowOutcome:
    """Check `ticket`'s operation once and act on what it says (see the module docstring). `operation`: the
    operation as the caller has just read it (one Operation.Get per check)."""
    checked = ticket.model_copy(update={"attempt": ticket.attempt + 1})
    source = settings.result_event_source
    try:
        operation = operation if operation is not None else cloud.operations.get(ticket.operation_id)
    except CloudError as exc:
        now = clock.now()
        if not exc.transient:
            event = failed_result(
                checked,
                code=exc.name,
                message=f"Operation.Get failed: {exc.message}",
                grpc_code=exc.code,
                now=now,
                source=source,
            )
            return _finish(checked, event, sinks, settings, metrics, reason=f"get failed: {exc.name}", error=exc)
        if now >= ticket.deadline:
            event = timed_out_result(checked, now, source=source)
            return _finish(checked, event, sinks, settings, metrics, reason="deadline passed", error=exc)
        failures = ticket.transient_errors + 1
        retried = checked.model_copy(update={"transient_errors": failures})
        delay = min(schedule.retry_delay(failures, settings), _to_deadline(ticket, now, settings))
        return _send_back(retried, delay, queue, settings, reason=f"transient {exc.name}", error=exc)

    now = clock.now()
    wrong = mismatch(ticket, operation)
    if wrong is not None:
        event = failed_result(checked, code="TICKET_MISMATCH", message=wrong, grpc_code=None, now=now, source=source)
        return _finish(checked, event, sinks, settings, metrics, reason="ticket does not match its operation")
    if operation.failed or operation.done:
        event = result_from_operation(checked, operation, now, source=source)
        return _finish(checked, event, sinks, settings, metrics, reason=event.data.status)
    if now >= ticket.deadline:
        return _finish(
            checked, timed_out_result(checked, now, source=source), sinks, settings, metrics, reason="deadline"
        )

    percent = operation.progress
    delay = schedule.next_delay(ticket, now, percent, settings)
    update: dict[str, object] = {
        "transient_errors": 0,
        "progress": schedule.record_progress(ticket, now, percent),
    }
    posted = _post_progress(ticket, percent, now, sinks, update)
    return _send_back(
        checked.model_copy(update=update), delay, queue, settings, reason="running", progress_posted=posted
    )


def _post_progress(
    ticket: FollowupTicket, percent: float | None, now: datetime, sinks: list[ResultSink], update: dict[str, object]
) -> bool:
    text = progress_message(ticket, percent, now=now)
    if text is None or ticket.reply_to is None or percent is None:
        return False
    for sink in sinks:
        if not isinstance(sink, ProgressSink):
            continue
        if sink.post_progress(text):
            update["reply_to"] = ticket.reply_to.model_copy(update={"messages_left": ticket.reply_to.messages_left - 1})
            update["last_reported_percent"] = float(percent)
            return True
        if getattr(getattr(sink, "reply_to", None), "messages_left", None) == 0:  # the chat refused the URL: spent
            update["reply_to"] = ticket.reply_to.model_copy(update={"messages_left": 0})
    return False


def _send_back(
    ticket: FollowupTicket,
    delay: int,
    queue: MessageQueue,
    settings: Settings,
    *,
    reason: str,
    error: CloudError | None = None,
    progress_posted: bool = False,
) -> FollowOutcome:
    if not settings.followup_queue_url:
        raise RuntimeError("FOLLOWUP_QUEUE_URL is not set: a running operation cannot be followed further")
    try:
        queue.send(settings.followup_queue_url, ticket.sealed_body(handoff_key(settings)), delay_seconds=delay)
    except QueueError as exc:
        return FollowOutcome(
            "retry",
            ticket,
            error=error,
            reason=f"{reason}; ticket not sent back: {exc}",
            progress_posted=progress_posted,
        )
    return FollowOutcome(
        "rescheduled", ticket, delay_seconds=delay, error=error, reason=reason, progress_posted=progress_posted
    )


def _finish(
    ticket: FollowupTicket,
    event: ResultEvent,
    sinks: list[ResultSink],
    settings: Settings,
    metrics: MetricsRecorder | None,
    *,
    reason: str,
    error: CloudError | None = None,
) -> FollowOutcome:
    report = emit_result(event, sinks, settings, metrics)
    return FollowOutcome("finished", ticket, event=event, emit=report, error=error, reason=reason)


def _to_deadline(ticket: FollowupTicket, now: datetime, settings: Settings) -> int:
    """A delay that lands just past the deadline (the check then ends the ticket), within the queue's bounds."""
    seconds = (ticket.deadline - now).total_seconds() + schedule.DEADLINE_GRACE_SECONDS
    lower = max(settings.followup_min_delay_seconds, 1)
    return int(max(lower, min(seconds, schedule.QUEUE_MAX_DELAY_SECONDS)))
