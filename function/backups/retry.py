"""Retry messages: the targets of a request that hit transient errors while the rest of it went on.

Redelivering such a request whole would repeat what did happen: every redelivery sends another follow-up ticket
for the targets that started (Execute is idempotent, so one operation ends up followed by two ticket chains:
double polls, double chat messages), and emits the failed results again. So, with HANDOFF_SECRET and
REQUEST_QUEUE_URL set, `send_retryable` sends each retryable target alone to REQUEST_QUEUE_URL as a signed
retry message (a `FanoutMessage` with `attempt`, delayed by `schedule.retry_delay(attempt)`), and the invocation
succeeds. A retry message that is retryable again goes on with `attempt + 1`; after REDELIVERY_MAX_ATTEMPTS
tries the target ends in one failed result (its last transient code). A fan-out message takes the same path.

A request in which nothing became final (no target started, failed or was fanned out: every one is retryable)
is still redelivered whole, by the platform or the Yandex send-back (handlers.batch): nothing would be repeated.
Without the key or the queue, nothing changes: the request is redelivered whole, as before.
"""

from __future__ import annotations

from backups.errors import CloudUnavailable, HandOffFailed, StartError
from backups.handoff import FanoutMessage, handoff_key
from backups.models import ReplyTarget, ResultError
from backups.ports import Clock, MessageQueue, QueueError
from backups.report import Queued, StartReport
from backups.resolve import Resolver
from backups.schedule import retry_delay
from backups.target import Failed, Outcome, Retryable
from observability import get_logger
from settings import Settings


def first_outcome(message: FanoutMessage, resolver: Resolver, clock: Clock) -> Outcome:
    """What a fan-out or retry message's target is before Execute: planned, or, when its policy was still being
    applied (`recheckApplied`), what the application says now."""
    if not message.recheck_applied:
        return message.planned()
    try:
        return resolver.check_applied(False, message.target)
    except CloudUnavailable as exc:
        return Retryable(target=message.target, code=exc.code, message=exc.message, recheck_applied=True)
    except StartError as exc:  # the policy is gone, the listing is refused ...: this target ends here
        return Failed(
            target=message.target, error=ResultError(code=exc.code, message=exc.message), finished_at=clock.now()
        )


def hands_off(report: StartReport, request: object) -> bool:
    """Whether the retryable targets go to the request queue: something else in the request became final (or the
    request is itself a fan-out or retry message, which has nothing else)."""
    final = report.started or report.failed or report.fanned_out
    return bool(report.retryable) and (bool(final) or isinstance(request, FanoutMessage))


def _hands_off_here(report: StartReport, request: object, settings: Settings, queue: MessageQueue | None) -> bool:
    return bool(handoff_key(settings) and settings.request_queue_url and queue is not None) and hands_off(
        report, request
    )


def _previous_attempt(request: object) -> int:
    return (request.attempt or 0) if isinstance(request, FanoutMessage) else 0


def give_up_exhausted(
    report: StartReport, request: object, *, settings: Settings, queue: MessageQueue | None, clock: Clock
) -> None:
    """After REDELIVERY_MAX_ATTEMPTS retries, the retryable targets become failed outcomes (their last code)."""
    if not _hands_off_here(report, request, settings, queue):
        return
    previous = _previous_attempt(request)
    retryable = report.retryable
    if previous + 1 > settings.redelivery_max_attempts:
        now = clock.now()
        gave_up = {
            id(r): Failed(
                target=r.target,
                error=ResultError(code=r.code, message=f"still failing after {previous} retries: {r.message}"),
                finished_at=now,
            )
            for r in retryable
        }
        report.outcomes = [gave_up.get(id(o), o) for o in report.outcomes]
        get_logger().error("retryable targets given up", extra={"targets": len(retryable), "attempts": previous})


def send_retryable(
    report: StartReport,
    request: object,
    *,
    settings: Settings,
    queue: MessageQueue | None,
    clock: Clock,
    reply_to: ReplyTarget | None,
) -> None:
    """Send each retryable target alone to the request queue (`report.queued`). Run after the request's failed
    results were delivered, so a redelivery for a sink never repeats these messages. Raises HandOffFailed when the
    queue refuses them (the request then comes back whole, as without the hand-off)."""
    if not _hands_off_here(report, request, settings, queue) or not report.retryable:
        return
    key = handoff_key(settings)
    assert key is not None and queue is not None and settings.request_queue_url
    log, retryable = get_logger(), report.retryable
    issued_at = (request.issued_at if isinstance(request, FanoutMessage) else None) or clock.now()
    attempt = _previous_attempt(request) + 1
    delay = retry_delay(attempt, settings)
    bodies = [
        FanoutMessage(
            target=r.target,
            apply_first=r.apply_first,
            recheck_applied=r.recheck_applied or None,
            reply_to=reply_to,
            attempt=attempt,
            issued_at=issued_at,
        )
        .signed(key)
        .body()
        for r in retryable
    ]
    try:
        queue.send_many(settings.request_queue_url, bodies, delay_seconds=delay)
    except QueueError as exc:
        # Not "these targets failed": some of the messages may be stored all the same (a partial batch, a timeout),
        # and each would later emit a second, contradicting result. The request comes back whole instead (same
        # keys: the same operations, the same event ids).
        log.error("retry messages not sent", extra={"targets": len(retryable), "error": str(exc)})
        raise HandOffFailed(f"retry messages not sent to the request queue: {exc}", report) from None
    report.queued = [Queued(r, attempt, delay) for r in retryable]
    report.outcomes = [o for o in report.outcomes if not isinstance(o, Retryable)]
    log.info(
        "retryable targets handed off", extra={"targets": len(retryable), "attempt": attempt, "delaySeconds": delay}
    )
