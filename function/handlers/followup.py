"""The follow-up handler: one ticket per queue message; check the operation, reschedule or report.

A ticket read longer after its deadline than any legitimate chain lasts (backups.schedule.message_max_age) is a
replay, or a ticket redriven from the dead-letter queue after an outage: it is checked once more like any ticket
past its deadline (one Operation.Get; its result, with the same deterministic event id as any earlier copy, then
the chain ends), with a log line `stale ticket checked` and the metric `stale_checked`. It is dropped instead
(`stale ticket dropped`) when the cloud no longer has its operation or the operation is not its backup (a failed
result would contradict the earlier one under the same id), or when it is older than any queue keeps a message.
Dropping every stale ticket unread would lose the only result of a chain whose check after the deadline never
ran (the follow-up was down).

A ticket that cannot be read is a poison message: it is logged and reported as failed, so the queue's redrive
policy moves it to the dead-letter queue after maxReceiveCount deliveries. Transient problems are handled by
`follow` itself (the ticket is sent back with a short delay); a result that a sink could not take makes the
message come back (at-least-once; the event id is deterministic, so a consumer drops the duplicate).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from adapters.sinks import check_sink_settings
from backups.followup import follow, mismatch, refuse_ticket
from backups.handoff import QUEUE_BODY_LIMITS, FollowupTicket, MalformedTicket, handoff_key, parse_ticket
from backups.models import TriggerInfo
from backups.run import Ports
from backups.schedule import message_max_age
from handlers.batch import dead_letter, queue_reply, send_back_ticket, settles_itself
from handlers.deps import Deps
from metrics import MetricsRecorder, Settled
from observability import get_logger
from triggers.detect import parse_event
from triggers.model import Invocation, TriggerError
from triggers.queue import refused_event_reply
from ycloud.errors import CloudError
from ycloud.models import Operation

MAX_QUEUE_RETENTION = timedelta(days=14)  # SQS and YMQ keep a message at most this long


def handle(event: Any, context: Any, deps: Deps | None = None) -> Any:
    deps = deps or Deps.from_env()
    log = get_logger()
    log.clear_state()  # keys appended by the previous (warm) invocation must not label this one's lines
    try:
        # Each message is read up to the largest a queue delivers; parse_ticket then refuses an oversized one alone.
        invocation = parse_event(event, context, max_body_bytes=max(QUEUE_BODY_LIMITS.values()))
    except TriggerError as exc:
        log.error("event refused", extra={"code": exc.code, "error": str(exc)})
        return refused_event_reply(exc)
    if invocation.kind != "queue":
        log.error("the follow-up handler takes queue events only", extra={"source": invocation.source})
        return {
            "ok": False,
            "error": {"code": "NOT_A_QUEUE_EVENT", "message": "expected the follow-up queue's messages"},
        }
    log.append_keys(source=invocation.source, platform=invocation.platform)
    check_sink_settings(deps.settings)  # raises: the tickets come back, then dead-letter; nothing is dropped
    with deps.recording(invocation.platform, context) as metrics:
        failed = _follow_all(invocation, context, deps, metrics)
    return queue_reply(invocation, failed)


def _stale(ticket: FollowupTicket, deps: Deps) -> bool:
    """Past its deadline by more than any legitimate chain lasts: a replay, or a redrive after an outage."""
    return deps.clock.now() > ticket.deadline + message_max_age(deps.settings)


def _replay_only(ticket: FollowupTicket, ports: Ports, deps: Deps) -> tuple[str | None, Operation | None]:
    """(Why a stale ticket must be dropped rather than checked, or None; the operation as read, for the check).
    Older than any queue keeps a message (14 days past its deadline), it came from outside; an operation the cloud
    no longer has, or one that is not this backup, would turn the earlier result (the same event id) into a
    failed one."""
    if deps.clock.now() > ticket.deadline + MAX_QUEUE_RETENTION:
        return "older than any queue keeps a message", None
    try:
        operation = ports.cloud.operations.get(ticket.operation_id)
    except CloudError as exc:
        return (None if exc.transient else f"the operation is gone ({exc.name})"), None
    return mismatch(ticket, operation), operation


def _follow_all(invocation: Invocation, context: Any, deps: Deps, metrics: MetricsRecorder) -> list[str]:
    """Check every ticket of the batch; the ids of the messages that must come back (handlers.batch: on Yandex
    the function sends them back itself, so a failing ticket never repeats its neighbours)."""
    log = get_logger()
    batch_ports = deps.ports(context)
    yandex = settles_itself(invocation)
    failed: list[str] = []
    kept: list[Settled] = []
    seen: set[str] = set()
    for message in invocation.messages:
        message_id = message.message_id or ""
        settled = Settled(metrics, seen)
        kept.append(settled)
        ports = replace(batch_ports, metrics=settled)
        try:
            ticket = parse_ticket(message.body_text, handoff_key(deps.settings))
        except MalformedTicket as exc:
            if exc.is_ticket:
                log.error("ticket refused", extra={"messageId": message_id, "error": str(exc)})
                carrier = TriggerInfo(source=invocation.source, trigger_id=message_id or message.trigger_id)
                emitted = refuse_ticket(
                    str(exc), carrier, sinks=deps.sinks(None), settings=deps.settings, clock=deps.clock, metrics=settled
                )
                dlq = deps.settings.followup_dlq_url
                if not emitted.ok and not (yandex and dead_letter(message.body_text, dlq, ports, why=str(exc))):
                    failed.append(message_id)
                continue
            log.error("poison message: not a follow-up ticket", extra={"messageId": message_id, "error": str(exc)})
            dlq = deps.settings.followup_dlq_url
            if not (yandex and dead_letter(message.body_text, dlq, ports, why="not a follow-up ticket")):
                failed.append(message_id)
            continue
        log.append_keys(correlation_id=ticket.target.trigger.correlation_id or ticket.target.trigger.trigger_id)
        operation: Operation | None = None
        if _stale(ticket, deps):
            extra = {
                "messageId": message_id,
                "operationId": ticket.operation_id,
                "deadline": ticket.deadline.isoformat(),
            }
            metrics.count("stale_checked")
            why, operation = _replay_only(ticket, ports, deps)
            if why is not None:  # nothing left to report on: its result (if any) went out long ago
                log.warning("stale ticket dropped", extra=extra | {"reason": why})
                continue
            log.warning("stale ticket checked", extra=extra)  # then checked as every ticket past its deadline
        checked = _check(ticket, message_id, ports, deps, settled, operation)
        if checked is not None:
            settled.discard()  # it comes back: its result is counted when it gets through
            metrics.count("redeliveries")
            if not (yandex and send_back_ticket(checked, batch_ports)):
                failed.append(message_id)
    if not (failed and yandex):  # else the whole batch comes back
        for settled in kept:
            settled.commit()
    return failed


def _check(
    ticket: FollowupTicket,
    message_id: str,
    ports: Ports,
    deps: Deps,
    metrics: MetricsRecorder,
    operation: Operation | None = None,
) -> FollowupTicket | None:
    """Check one ticket (`operation`: already read for it); the ticket to check again when it must come back, else
    None."""
    log = get_logger()
    try:
        outcome = follow(
            ticket,
            cloud=ports.cloud,
            queue=deps.queue,
            settings=deps.settings,
            clock=deps.clock,
            sinks=deps.sinks(ticket.reply_to),
            metrics=metrics,
            operation=operation,
        )
    except Exception as exc:
        # A configuration gap (no FOLLOWUP_QUEUE_URL) or a bug: keep the ticket, let the queue bring it back
        # (and, if it keeps failing, move it to the dead-letter queue), and say so in the log.
        log.exception("ticket not checked", extra={"messageId": message_id, "error": type(exc).__name__})
        return ticket
    log.info(
        "ticket checked",
        extra={
            "operationId": ticket.operation_id,
            "action": outcome.action,
            "delaySeconds": outcome.delay_seconds,
            "reason": outcome.reason,
            "attempt": outcome.ticket.attempt,
        },
    )
    return outcome.ticket if outcome.needs_redelivery else None
