"""The trigger handler: any trigger payload -> request -> targets -> Execute -> follow-up tickets.

Per source:
- schedule and direct calls: one request; a transient cloud or queue failure raises, so the platform's retry
  (Yandex timer retry settings, EventBridge/Lambda async retries) comes back with the same trigger id;
- queues: one request per message; AWS gets `batchItemFailures` for the transient ones only, Yandex (whole
  batches only) gets an exception when any message must come back, and the idempotency keys make the
  redelivery of the others harmless;
- HTTP: see handlers.http.

Every target that cannot start ends in a `failed` result event; a request that cannot even be read ends in
one too (its target is the request as asked), except on HTTP, where the caller gets the 4xx directly.
"""

from __future__ import annotations

from typing import Any

from backups.models import ReplyTarget, TriggerInfo
from backups.resolve import CloudUnavailable, HandOffFailed, StartError, build_request
from backups.start import StartReport, start_backups
from handlers.deps import Deps
from observability import get_logger
from triggers.detect import parse_event
from triggers.model import BodyTooLarge, InboundMessage, Invocation, TriggerError

QUEUE_MAX_BODY_BYTES = 256 * 1024  # the SQS / Message Queue message size limit


class RedeliveryRequested(RuntimeError):
    """Raised to make the platform deliver the event again (a transient failure; nothing was lost)."""


def handle(event: Any, context: Any, deps: Deps | None = None) -> Any:
    deps = deps or Deps.from_env()
    log = get_logger()
    log.clear_state()  # keys appended by the previous (warm) invocation must not label this one's lines
    try:
        invocation = _parse(event, context, deps)
    except TriggerError as exc:
        log.error("event refused", extra={"code": exc.code, "error": str(exc), "source": exc.source})
        if exc.kind == "http":
            from triggers.http import error_reply

            return error_reply(exc)
        # Not a shape we are triggered with: retrying would not help, and there is no target to report.
        return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}
    log.append_keys(source=invocation.source, platform=invocation.platform)
    if invocation.kind == "http":
        from handlers.http import handle_http

        return handle_http(invocation, context, deps)
    if invocation.kind == "queue":
        return _handle_queue(invocation, context, deps)
    return _handle_one(invocation, invocation.messages[0], context, deps)


def _parse(event: Any, context: Any, deps: Deps) -> Invocation:
    try:
        return parse_event(event, context, max_body_bytes=deps.settings.max_body_bytes)
    except BodyTooLarge:
        # One oversized message must not refuse a whole queue batch: the platform would delete its siblings
        # unprocessed (no backup, no result). Read the batch with the queue's own limit instead; build_request
        # then refuses that message alone, with a failed result, like any other unreadable body.
        invocation = parse_event(event, context, max_body_bytes=QUEUE_MAX_BODY_BYTES)
        if invocation.kind != "queue":
            raise
        return invocation


def _trigger(invocation: Invocation, message: InboundMessage) -> TriggerInfo:
    return TriggerInfo(source=invocation.source, trigger_id=message.trigger_id)


def run_request(
    body: Any,
    trigger: TriggerInfo,
    context: Any,
    deps: Deps,
    *,
    allow_fanout: bool = False,
    reply_to: ReplyTarget | None = None,
    resolver: Any = None,
    cloud: Any = None,
    report_request_failure: bool = True,
) -> StartReport:
    """Build, resolve and start one request; emit a failed result for each target that cannot start.

    Raises StartError for request-level problems (after emitting the failed result, unless
    `report_request_failure` is False: HTTP callers get the 4xx directly), and CloudUnavailable / HandOffFailed
    for transient ones.
    """
    log = get_logger()
    correlation = trigger.correlation_id or trigger.trigger_id
    log.append_keys(correlation_id=correlation, trigger_id=trigger.trigger_id)
    request = None
    try:
        request = build_request(body, deps.settings, allow_fanout=allow_fanout)
        report = start_backups(
            request,
            trigger,
            cloud=cloud or deps.cloud(context),
            settings=deps.settings,
            queue=deps.queue,
            clock=deps.clock,
            resolver=resolver,
            reply_to=reply_to,
        )
    except (CloudUnavailable, HandOffFailed):
        raise
    except StartError as exc:
        if report_request_failure:
            emit_request_failure(exc, trigger, request, deps, reply_to=reply_to)
        raise
    emit_failed_targets(report, deps, reply_to=reply_to)
    return report


def emit_failed_targets(report: StartReport, deps: Deps, *, reply_to: ReplyTarget | None = None) -> None:
    if not report.failed:
        return
    from backups.results import emit_result

    sinks = deps.sinks(reply_to)
    for failed in report.failed:
        event = failed.result_event(deps.settings.result_event_source)
        emitted = emit_result(event, sinks, deps.settings)
        if not emitted.ok:
            # The result must not be lost: ask for the trigger again (same keys, same event id).
            raise RedeliveryRequested(f"result sinks failed: {sorted(emitted.failed)}")


def emit_request_failure(
    exc: StartError, trigger: TriggerInfo, request: Any, deps: Deps, *, reply_to: ReplyTarget | None = None
) -> None:
    """A request that cannot start at all still ends in a failed result event (target: the request as asked)."""
    from backups.resolve import describe_selector
    from backups.results import emit_result, failed_start_result

    target = "request"
    instance_id = policy_id = folder_id = None
    if request is not None and hasattr(request, "instance_labels"):
        target = describe_selector(request)
        instance_id = request.compute_instance_id
        policy_id = request.policy_id
        folder_id = request.folder_id
    event = failed_start_result(
        trigger,
        policy_id=policy_id,
        compute_instance_id=instance_id,
        instance_name=None,
        folder_id=folder_id,
        target=target,
        code=exc.code,
        message=exc.message,
        grpc_code=exc.cloud_error.code if exc.cloud_error else None,
        now=deps.clock.now(),
        source=deps.settings.result_event_source,
    )
    emitted = emit_result(event, deps.sinks(reply_to), deps.settings)
    if not emitted.ok:
        raise RedeliveryRequested(f"result sinks failed: {sorted(emitted.failed)}")


def _summary(report: StartReport) -> dict[str, Any]:
    out: dict[str, Any] = report.model_dump(by_alias=True, exclude_none=True, mode="json")
    out["ok"] = not report.failed and not report.retryable
    return out


def _handle_one(invocation: Invocation, message: InboundMessage, context: Any, deps: Deps) -> dict[str, Any]:
    log = get_logger()
    trigger = _trigger(invocation, message)
    try:
        report = run_request(message.body_text, trigger, context, deps)
    except (CloudUnavailable, HandOffFailed) as exc:
        log.warning("transient failure: asking the platform to retry", extra={"code": exc.code, "error": exc.message})
        raise RedeliveryRequested(f"{exc.code}: {exc.message}") from None
    except StartError as exc:
        log.error("request refused", extra={"code": exc.code, "error": exc.message})
        return {"ok": False, "error": exc.to_json_dict()}
    if report.needs_redelivery:
        log.warning("targets with transient failures: asking the platform to retry", extra=_counts(report))
        raise RedeliveryRequested(f"{len(report.retryable)} target(s) hit transient errors")
    log.info("trigger done", extra=_counts(report))
    return _summary(report)


def _counts(report: StartReport) -> dict[str, int]:
    return {
        "started": len(report.started),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "retryable": len(report.retryable),
        "fannedOut": report.fanned_out,
    }


def _handle_queue(invocation: Invocation, context: Any, deps: Deps) -> Any:
    from backups.resolve import Resolver

    log = get_logger()
    cloud = deps.cloud(context)
    resolver = Resolver(cloud, deps.settings)  # one set of listing caches for the whole batch
    failed: list[str] = []
    for message in invocation.messages:
        trigger = _trigger(invocation, message)
        try:
            report = run_request(
                message.body_text, trigger, context, deps, allow_fanout=True, resolver=resolver, cloud=cloud
            )
        except (CloudUnavailable, HandOffFailed, RedeliveryRequested) as exc:
            log.warning("message will be redelivered", extra={"messageId": message.message_id, "error": str(exc)})
            failed.append(message.message_id or "")
            continue
        except StartError as exc:
            # Permanent: its failed result is out; redelivering would fail the same way.
            log.error(
                "request refused", extra={"messageId": message.message_id, "code": exc.code, "error": exc.message}
            )
            continue
        if report.needs_redelivery:
            failed.append(message.message_id or "")
        log.info("message done", extra={"messageId": message.message_id, **_counts(report)})
    return queue_reply(invocation, failed)


def queue_reply(invocation: Invocation, failed: list[str]) -> Any:
    """AWS: batchItemFailures for the messages that must come back. Yandex: no per-message protocol, so any
    failure fails the invocation and the platform redelivers the whole batch (safe: idempotency keys)."""
    from triggers.queue import batch_failure_reply

    reply = batch_failure_reply(invocation, failed)
    if reply is None and failed:
        raise RedeliveryRequested(f"{len(failed)} of {len(invocation.messages)} message(s) must be redelivered")
    return reply if reply is not None else {"batchItemFailures": []} if invocation.platform == "aws" else {"ok": True}
