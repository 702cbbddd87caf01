"""The trigger handler: parse the event, run each request through the domain (backups.run), shape the reply.

Per source:
- schedule and direct calls: one request; a transient cloud or queue failure raises, so the platform's retry
  (Yandex timer retry settings, EventBridge/Lambda async retries) comes back with the same trigger id;
- queues: one request per message (signed fan-out messages too); AWS gets `batchItemFailures` for the transient
  ones only, Yandex (whole batches only) gets an exception when any message must come back, and the idempotency
  keys make the redelivery of the others harmless;
- HTTP: handlers.http.

Every target that cannot start ends in a `failed` result event; a request that cannot even be read ends in one
too (its target is the request as asked), except on HTTP, where the caller gets the 4xx directly.
"""

from __future__ import annotations

from typing import Any

from adapters.sinks import SinkConfigError, check_sink_settings
from backups.errors import TRANSIENT, RedeliveryRequested, StartError
from backups.handoff import QUEUE_BODY_LIMITS, read_delivery
from backups.models import TriggerInfo
from backups.resolve import Resolver
from backups.run import run_request
from chatops.deferred import chat_command_data
from handlers.batch import queue_reply, send_back_request, settles_itself
from handlers.deps import Deps
from handlers.http import handle_http
from handlers.slack import handle_chat_command
from metrics import MetricsRecorder
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
        return _handle_one(invocation, invocation.messages[0], context, deps, metrics)


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
    invocation: Invocation, message: InboundMessage, context: Any, deps: Deps, metrics: MetricsRecorder
) -> dict[str, Any]:
    log = get_logger()
    try:
        report = run_request(message.body_text, _trigger(invocation, message), deps.ports(context))
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


def _handle_queue(invocation: Invocation, context: Any, deps: Deps, metrics: MetricsRecorder) -> Any:
    log = get_logger()
    ports = deps.ports(context)
    resolver = Resolver(ports.cloud, deps.settings, deps.clock)  # one set of listing caches for the whole batch
    failed: list[str] = []
    for message in invocation.messages:
        delivery = read_delivery(message.body_text, _trigger(invocation, message), deps.settings)
        chat = chat_command_data(delivery.body, deps.settings)
        if chat is not None:  # a Slack command answered before it ran (chatops.deferred): it posts its own answer
            handle_chat_command(chat, delivery.trigger, context, deps)
            continue
        try:
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
            continue
        if comes_back:
            metrics.count("redeliveries")
            if not (settles_itself(invocation) and send_back_request(delivery, ports)):
                failed.append(message.message_id or "")
    return queue_reply(invocation, failed)
