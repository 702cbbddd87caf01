"""The trigger handler: parse the event, run each request through the domain (backups.run), shape the reply.

Per source:
- schedule and direct calls: one request per message (a Yandex timer event may carry several: each runs, with its
  own trigger id); a transient cloud or queue failure raises, so the platform's retry (Yandex timer retry
  settings, EventBridge/Lambda async retries) comes back with the same trigger id. In a timer event of several
  messages the one that must come back is sent back alone through REQUEST_QUEUE_URL (as a Yandex queue message
  is, handlers.batch) when HANDOFF_SECRET is set, so its neighbours are not repeated;
- queues: one request per message (signed fan-out messages too); AWS gets `batchItemFailures` for the transient
  ones only, Yandex (whole batches only) gets an exception when any message must come back, and the idempotency
  keys make the redelivery of the others harmless;
- HTTP: handlers.http.

Targets that hit transient errors while the rest of their request went on are retried alone (backups.retry).
Every target that cannot start ends in a `failed` result event; a request that cannot even be read ends in one
too (its target is the request as asked), except on HTTP, where the caller gets the 4xx directly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from adapters.sinks import SinkConfigError, check_sink_settings
from backups.errors import TRANSIENT, RedeliveryRequested, StartError
from backups.handoff import QUEUE_BODY_LIMITS, Delivery, Freshness, read_delivery
from backups.models import TriggerInfo
from backups.resolve import Resolver
from backups.run import run_request
from backups.schedule import message_max_age
from chatops.deferred import chat_command_data
from handlers.batch import queue_reply, send_back_request, settles_itself
from handlers.deps import Deps
from handlers.http import handle_http
from handlers.slack import handle_chat_command
from metrics import MetricsRecorder, Settled
from observability import get_logger
from triggers.detect import parse_event
from triggers.http import error_reply, json_reply
from triggers.model import BodyTooLarge, InboundMessage, Invocation, TriggerError
from triggers.queue import refused_event_reply


def handle(event: Any, context: Any, deps: Deps | None = None) -> Any:
    deps = deps or Deps.from_env()
    log = get_logger()
    log.clear_state()  # keys appended by the previous (warm) invocation must not label this one's lines
    try:
        invocation = _parse(event, context, deps)
    except TriggerError as exc:
        log.error("event refused", extra={"code": exc.code, "error": str(exc), "source": exc.source})
        # Not a shape we are triggered with: retrying would not help, and there is no target to report.
        return error_reply(exc) if exc.kind == "http" else refused_event_reply(exc)
    log.append_keys(source=invocation.source, platform=invocation.platform)
    try:
        check_sink_settings(deps.settings)  # a sink that could never deliver: refuse before anything starts
    except SinkConfigError as exc:
        if invocation.kind == "http":
            return json_reply(500, {"error": {"code": "CONFIG_ERROR", "message": str(exc)}})
        raise  # the platform retries, then dead-letters: nothing starts, nothing is dropped
    with deps.recording(invocation.platform, context) as metrics:
        if invocation.kind == "http":
            return handle_http(invocation, context, deps)
        if invocation.kind == "queue":
            return _handle_queue(invocation, context, deps, metrics)
        if len(invocation.messages) == 1:
            return _handle_single(invocation, context, deps, metrics)
        return _handle_several(invocation, context, deps, metrics)


def _parse(event: Any, context: Any, deps: Deps) -> Invocation:
    try:
        return parse_event(event, context, max_body_bytes=deps.settings.max_body_bytes)
    except BodyTooLarge:
        # One oversized message must not refuse a whole queue batch: the platform would delete its siblings
        # unprocessed (no backup, no result). Read the batch up to the largest a queue delivers (Amazon SQS:
        # 1 MiB); the domain then refuses that message alone (MAX_BODY_BYTES), with a failed result.
        invocation = parse_event(event, context, max_body_bytes=max(QUEUE_BODY_LIMITS.values()))
        if invocation.kind != "queue":
            raise
        return invocation


def _trigger(invocation: Invocation, message: InboundMessage) -> TriggerInfo:
    return TriggerInfo(source=invocation.source, trigger_id=message.trigger_id)


def _handle_one(
    invocation: Invocation, message: InboundMessage, context: Any, deps: Deps, metrics: Settled
) -> dict[str, Any]:
    """Run one message. Its started backups and results are held in `metrics` until the caller settles it."""
    log = get_logger()
    try:
        report = run_request(
            message.body_text, _trigger(invocation, message), replace(deps.ports(context), metrics=metrics)
        )
    except TRANSIENT as exc:
        log.warning("transient failure: asking the platform to retry", extra={"code": exc.code, "error": exc.message})
        metrics.count("redeliveries")
        raise RedeliveryRequested(f"{exc.code}: {exc.message}") from None
    except RedeliveryRequested:
        metrics.count("redeliveries")  # a result no sink took: the platform brings the trigger back
        raise
    except StartError as exc:
        log.error("request refused", extra={"code": exc.code, "error": exc.message})
        return {"ok": False, "error": exc.to_json_dict()}
    if report.needs_redelivery:
        log.warning("targets with transient failures: asking the platform to retry", extra=report.counts())
        metrics.count("redeliveries")
        raise RedeliveryRequested(f"{len(report.retryable)} target(s) hit transient errors")
    log.info("trigger done", extra=report.counts())
    return report.to_json_dict()


def _handle_single(invocation: Invocation, context: Any, deps: Deps, metrics: MetricsRecorder) -> dict[str, Any]:
    settled = Settled(metrics)
    try:
        reply = _handle_one(invocation, invocation.messages[0], context, deps, settled)
    except RedeliveryRequested:
        settled.discard()  # the platform brings it back: what it did is counted then
        raise
    settled.commit()
    return reply


def _handle_several(invocation: Invocation, context: Any, deps: Deps, metrics: MetricsRecorder) -> dict[str, Any]:
    """A timer event of several messages: every one runs. One that must come back is sent back alone when it
    can be (handlers.batch.send_back_request); otherwise the invocation fails after all ran, and the platform's
    retry brings them all back (the idempotency keys return the same operations)."""
    log, ports, seen = get_logger(), deps.ports(context), set[str]()
    replies: list[dict[str, Any]] = []
    again: list[str] = []
    kept: list[Settled] = []
    for message in invocation.messages:
        settled = Settled(metrics, seen)
        try:
            replies.append(_handle_one(invocation, message, context, deps, settled))
            kept.append(settled)
        except RedeliveryRequested as exc:
            settled.discard()
            delivery = Delivery(message.body_text, _trigger(invocation, message))
            if send_back_request(delivery, ports):
                replies.append({"ok": False, "triggerId": message.trigger_id, "sentBack": True, "error": str(exc)})
            else:
                again.append(message.trigger_id)
    if again:
        log.warning("timer messages must come back", extra={"messages": len(again)})
        raise RedeliveryRequested(f"{len(again)} of {len(invocation.messages)} timer message(s) must come back")
    for settled in kept:
        settled.commit()
    return {"ok": all(r.get("ok") is True for r in replies), "messages": replies}


def _attempt(message: InboundMessage, delivery: Delivery) -> int:
    """How many times this request was delivered before: sent back by the function (Yandex) or redelivered by SQS
    (its ApproximateReceiveCount, which counts this delivery too)."""
    count = message.attributes.get("ApproximateReceiveCount", "1")
    received = int(count) if count.isdigit() and len(count) < 6 else 1
    return max(delivery.attempt, received - 1)


def _handle_queue(invocation: Invocation, context: Any, deps: Deps, metrics: MetricsRecorder) -> Any:
    log = get_logger()
    batch_ports = deps.ports(context)
    resolver = Resolver(batch_ports.cloud, deps.settings, deps.clock)  # one set of listing caches for the batch
    failed: list[str] = []
    kept: list[Settled] = []
    seen: set[str] = set()
    for message in invocation.messages:
        fresh = Freshness(now=deps.clock.now(), max_age=message_max_age(deps.settings))
        delivery = read_delivery(message.body_text, _trigger(invocation, message), deps.settings, fresh)
        chat = chat_command_data(delivery.body, deps.settings)
        settled = Settled(metrics, seen)
        ports = replace(batch_ports, metrics=settled)
        try:
            if chat is not None:  # a Slack command answered before it ran (chatops.deferred): it posts its answer
                attempt = _attempt(message, delivery)
                comes_back = handle_chat_command(chat, delivery.trigger, attempt, context, deps, metrics=settled)
            else:
                report = run_request(delivery.body, delivery.trigger, ports, from_request_queue=True, resolver=resolver)
                comes_back = report.needs_redelivery
                log.info("message done", extra={"messageId": message.message_id, **report.counts()})
        except (*TRANSIENT, RedeliveryRequested) as exc:
            log.warning("message must come back", extra={"messageId": message.message_id, "error": str(exc)})
            comes_back = True
        except StartError as exc:
            # Permanent: its failed result is out; redelivering would fail the same way.
            log.error(
                "request refused", extra={"messageId": message.message_id, "code": exc.code, "error": exc.message}
            )
            comes_back = False
        if not comes_back:
            kept.append(settled)
            continue
        settled.discard()  # it comes back (sent back or redelivered): what it did is counted then
        metrics.count("redeliveries")
        if not (settles_itself(invocation) and send_back_request(delivery, batch_ports)):
            failed.append(message.message_id or "")
    if not (failed and settles_itself(invocation)):  # else the whole batch comes back
        for settled in kept:
            settled.commit()
    return queue_reply(invocation, failed)
