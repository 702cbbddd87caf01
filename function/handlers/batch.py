"""The end of a queue invocation: which messages must come back, in each platform's protocol.

AWS SQS reports the failing messages alone (`batchItemFailures`). A Yandex Message Queue trigger has no such
report: a failed invocation brings back the whole batch, so one failing message would repeat its healthy
neighbours (duplicate checks, results and chat messages). On Yandex the function therefore settles every message
itself and acknowledges the batch:

- a message that must come back is sent back to its own queue with a growing delay (backups.schedule.retry_delay:
  15 s, 30 s, ... 5 min, within the FOLLOWUP_*_DELAY_SECONDS bounds) and an attempt count (a
  request as a signed `Redelivery` that keeps its trigger's identity, a ticket as itself with `redeliveries`);
  after REDELIVERY_MAX_ATTEMPTS it ends: a request in a failed result, and both copied to their dead-letter
  queue (REQUEST_DLQ_URL, FOLLOWUP_DLQ_URL);
- poison (a message no retry can read) goes to the dead-letter queue at once.

When that cannot be done (no HANDOFF_SECRET for requests, no dead-letter URL for poison, or the queue refuses the
message) the message is reported failed as before, and the platform redelivers the batch.
"""

from __future__ import annotations

from typing import Any

from backups.errors import CloudUnavailable, RedeliveryRequested
from backups.handoff import Delivery, FollowupTicket, handoff_key
from backups.ports import QueueError
from backups.run import Ports, emit_request_failure
from backups.schedule import retry_delay
from observability import get_logger
from triggers.model import Invocation
from triggers.queue import batch_failure_reply


def queue_reply(invocation: Invocation, failed: list[str]) -> Any:
    """The reply of a queue invocation in which `failed` messages must come back. AWS: batchItemFailures. Yandex:
    any failure fails the invocation (RedeliveryRequested) and the whole batch comes back (safe: idempotency
    keys), which is why Yandex messages are settled by the functions below whenever they can be."""
    reply = batch_failure_reply(invocation, failed)
    if reply is None and failed:
        raise RedeliveryRequested(f"{len(failed)} of {len(invocation.messages)} message(s) must be redelivered")
    return reply if reply is not None else {"batchItemFailures": []} if invocation.platform == "aws" else {"ok": True}


def settles_itself(invocation: Invocation) -> bool:
    """Whether this batch's failing messages are sent back by the function (Yandex) or reported (AWS)."""
    return invocation.source == "yc.message-queue"


def dead_letter(body: str, url: str | None, ports: Ports, *, why: str) -> bool:
    """Copy a message to its dead-letter queue. False when there is none or it refused (then report it failed)."""
    log = get_logger()
    if not url or ports.queue is None:
        return False
    try:
        ports.queue.send(url, body)
    except QueueError as exc:
        log.error("dead-letter queue refused the message", extra={"reason": why, "error": str(exc)})
        return False
    log.error("message moved to the dead-letter queue", extra={"reason": why})
    return True


def send_back_request(delivery: Delivery, ports: Ports) -> bool:
    """A request that must come back, sent back by the function (see the module docstring). True when settled."""
    settings, log = ports.settings, get_logger()
    key = handoff_key(settings)
    if key is None or not settings.request_queue_url or ports.queue is None:
        return False
    again = delivery.again(key, ports.clock.now())
    if again.attempt > settings.redelivery_max_attempts:
        log.error("request given up after its redeliveries", extra={"attempts": delivery.attempt})
        gave_up = CloudUnavailable(
            f"the request could not be completed after {delivery.attempt} redeliveries (transient cloud or queue "
            "failures); it is in the request dead-letter queue"
        )
        try:
            emit_request_failure(gave_up, delivery.trigger, None, ports)
            reported = True
        except RedeliveryRequested:
            log.error("the give-up result was not delivered either")
            reported = False
        moved = dead_letter(delivery.body, settings.request_dlq_url, ports, why="redeliveries exhausted")
        return moved or reported  # neither: the platform brings it back, and its redrive policy ends it
    delay = retry_delay(again.attempt, settings)
    try:
        ports.queue.send(settings.request_queue_url, again.body(), delay_seconds=delay)
    except QueueError as exc:
        log.warning("request not sent back: the platform will redeliver the batch", extra={"error": str(exc)})
        return False
    log.info("request sent back", extra={"attempt": again.attempt, "delaySeconds": delay})
    return True


def send_back_ticket(ticket: FollowupTicket, ports: Ports) -> bool:
    """A ticket whose check must be repeated, sent back by the function. True when settled."""
    settings, log = ports.settings, get_logger()
    if not settings.followup_queue_url or ports.queue is None:
        return False
    key = handoff_key(settings)
    again = ticket.model_copy(update={"redeliveries": ticket.redeliveries + 1})
    if again.redeliveries > settings.redelivery_max_attempts:
        return dead_letter(ticket.sealed_body(key), settings.followup_dlq_url, ports, why="redeliveries exhausted")
    try:
        delay = retry_delay(again.redeliveries, settings)
        ports.queue.send(settings.followup_queue_url, again.sealed_body(key), delay_seconds=delay)
    except QueueError as exc:
        log.warning("ticket not sent back: the platform will redeliver the batch", extra={"error": str(exc)})
        return False
    return True
