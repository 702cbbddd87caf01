"""The trigger side of the domain, top to bottom: body -> request -> outcomes -> Execute -> tickets -> results.

- `run_request(body, trigger, ports)`: read the body (a request, or a signed fan-out message from the request
  queue), start it, and emit a failed result event for every target that cannot start, or one for the request
  itself when it cannot start at all (unless the caller answers that itself: HTTP and chat).
- `start_backups(request, trigger, ...)`: resolve, then return the plan (dryRun), fan out one signed message per
  target through REQUEST_QUEUE_URL (more than FANOUT_THRESHOLD targets), or execute each target and hand one
  follow-up ticket per started operation to FOLLOWUP_QUEUE_URL. Targets that hit transient errors while others
  went on are handed off as retry messages (backups.retry), so a redelivery never repeats the others.

Raises the backups.errors family: `StartError`s for request-level problems, `CloudUnavailable` / `HandOffFailed`
for transient ones, `RedeliveryRequested` when a result could not be delivered (same keys, same event id next time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backups import preflight
from backups.errors import TRANSIENT, HandOffFailed, RedeliveryRequested, RequestInvalid, StartError
from backups.events import failed_start_event
from backups.handoff import (
    FanoutMessage,
    ForgedFanout,
    Freshness,
    Redelivery,
    fanout_bodies,
    handoff_key,
    read_fanout,
    read_signed,
    send_tickets,
)
from backups.models import ReplyTarget, ResultError, TriggerInfo
from backups.ports import Clock, CloudApi, MessageQueue, QueueError, ResultSink, SystemClock
from backups.report import StartReport
from backups.request import BackupRequest, build_request, describe_selector, read_body
from backups.resolve import Resolver
from backups.results import emit_result
from backups.retry import first_outcome, give_up_exhausted, send_retryable
from backups.schedule import message_max_age
from backups.start import Sleeper, execute_all
from backups.target import BackupTarget, Failed, Outcome, Planned, Retryable, Skipped, Started
from metrics import MetricsRecorder, NullRecorder
from observability import get_logger
from settings import Settings

TargetCheck = Callable[[BackupTarget], None]  # raises to refuse the whole request before anything starts


@dataclass
class Ports:
    """What the domain works with in one invocation (handlers.deps builds it; tests pass fakes)."""

    cloud: CloudApi
    settings: Settings
    queue: MessageQueue | None
    sinks: Callable[[ReplyTarget | None], list[ResultSink]]
    clock: Clock = field(default_factory=SystemClock)
    sleep: Sleeper = time.sleep
    metrics: MetricsRecorder = field(default_factory=NullRecorder)


def _ids(trigger: TriggerInfo) -> dict[str, Any]:
    return {"correlationId": trigger.correlation_id or trigger.trigger_id, "triggerId": trigger.trigger_id}


def _with_request_identity(trigger: TriggerInfo, request: BackupRequest) -> TriggerInfo:
    update = {
        name: getattr(request, name)
        for name in ("correlation_id", "requested_by", "reason")
        if getattr(trigger, name) is None and getattr(request, name) is not None
    }
    return trigger.model_copy(update=update) if update else trigger


def start_backups(
    request: BackupRequest | FanoutMessage,
    trigger: TriggerInfo,
    *,
    cloud: CloudApi,
    settings: Settings,
    queue: MessageQueue | None,
    clock: Clock | None = None,
    sleep: Sleeper = time.sleep,
    resolver: Resolver | None = None,
    reply_to: ReplyTarget | None = None,
    check: TargetCheck | None = None,
) -> StartReport:
    """Resolve and start one request (see the module docstring). `trigger`: the inbound message's identity; a
    fan-out message carries the original trigger's in its record. `resolver`: share one between the messages of
    an invocation (its listing caches). `check`: called for every target that would start."""
    clock = clock or SystemClock()
    log = get_logger()
    resolver = resolver or Resolver(cloud, settings, clock)
    if isinstance(request, FanoutMessage):
        outcomes: list[Outcome] = [first_outcome(request, resolver, clock)]
        trigger, asked, dry_run = request.target.trigger, request.target.asked, False
        reply_to = _reply_target(request, reply_to)
        extra = {"instanceId": request.target.compute_instance_id, "attempt": request.attempt or 0}
        log.info("fan-out message", extra=_ids(trigger) | extra)
    else:
        trigger = _with_request_identity(trigger, request)
        asked, dry_run = describe_selector(request), request.dry_run
        outcomes = resolver.resolve(request, trigger)
    planned = [o for o in outcomes if isinstance(o, Planned)]
    report = StartReport(trigger=trigger, asked=asked, dry_run=dry_run, outcomes=outcomes, resolved=len(planned))
    log.info(
        "resolved targets",
        extra=_ids(trigger) | {"target": asked, "planned": len(planned), **report.counts(), "dryRun": dry_run},
    )
    for o in outcomes:
        _log_outcome(o, trigger)
    if check is not None:
        for p in planned:
            check(p.target)
    if dry_run:
        report.replace_planned(list(preflight.flag(planned, cloud)))
        return report
    _start(
        report,
        request,
        planned,
        cloud=cloud,
        settings=settings,
        queue=queue,
        clock=clock,
        sleep=sleep,
        reply_to=reply_to,
    )
    give_up_exhausted(report, request, settings=settings, queue=queue, clock=clock)
    return report  # the retryable targets go to the request queue after the failed results (run_request)


def _start(
    report: StartReport,
    request: BackupRequest | FanoutMessage,
    planned: list[Planned],
    *,
    cloud: CloudApi,
    settings: Settings,
    queue: MessageQueue | None,
    clock: Clock,
    sleep: Sleeper,
    reply_to: ReplyTarget | None,
) -> None:
    """Fan the planned targets out, or execute them and send their tickets (see the module docstring)."""
    log, trigger, outcomes = get_logger(), report.trigger, report.outcomes
    if not planned:
        return
    key = handoff_key(settings)
    if not isinstance(request, FanoutMessage) and len(planned) > settings.fanout_threshold:
        if settings.request_queue_url and queue is not None and key is not None:
            try:
                queue.send_many(settings.request_queue_url, fanout_bodies(planned, key, reply_to, clock.now()))
            except QueueError as exc:
                log.error("fan-out not sent", extra=_ids(trigger) | {"targets": len(planned), "error": str(exc)})
                raise HandOffFailed(f"fan-out to the request queue failed: {exc}", report) from None
            report.fanned_out = len(planned)
            report.outcomes = [o for o in outcomes if not isinstance(o, Planned)]
            log.info("fanned out", extra=_ids(trigger) | {"targets": len(planned)})
            return
        log.warning(
            "more targets than FANOUT_THRESHOLD but no REQUEST_QUEUE_URL or HANDOFF_SECRET: executing inline",
            extra=_ids(trigger) | {"targets": len(planned), "threshold": settings.fanout_threshold},
        )

    attempts = execute_all(planned, cloud=cloud, settings=settings, clock=clock, sleep=sleep)
    for attempt in attempts:
        _log_outcome(attempt, trigger)
    report.replace_planned(list(attempts))
    if report.started and (not settings.followup_queue_url or queue is None):
        log.error("no FOLLOWUP_QUEUE_URL: started operations will not be followed", extra=_ids(trigger))
        return
    try:
        report.tickets_sent = send_tickets(report.started, settings, queue, reply_to) if queue else 0
    except QueueError as exc:
        log.error("tickets not sent", extra=_ids(trigger) | {"tickets": len(report.started), "error": str(exc)})
        raise HandOffFailed(f"follow-up tickets not sent: {exc}", report) from None
    if report.tickets_sent:
        log.info("tickets sent", extra=_ids(trigger) | {"tickets": report.tickets_sent})


_LOG_LINES = {"started": "started backup", "failed": "target failed", "retryable": "target retryable"}


def _log_outcome(o: Outcome, trigger: TriggerInfo) -> None:
    """One log line per outcome that is not `planned` (what happened to the target, and why)."""
    log = get_logger()
    extra = _ids(trigger) | {"instanceId": o.target.compute_instance_id}
    if isinstance(o, Skipped):
        log.info("skipped target", extra=extra | {"reason": o.reason})
    elif isinstance(o, Started):
        log.info(_LOG_LINES[o.outcome], extra=extra | {"operationId": o.operation_id, "policyId": o.policy_id})
    elif isinstance(o, Failed):
        extra |= {"policyId": o.policy_id, "code": o.error.code, "detail": o.error.message}
        log.warning(_LOG_LINES[o.outcome], extra=extra)
    elif isinstance(o, Retryable):
        extra |= {"policyId": o.policy_id, "code": o.code, "detail": o.message}
        log.warning(_LOG_LINES[o.outcome], extra=extra)


def run_request(
    body: Mapping[str, Any] | str | bytes | None,
    trigger: TriggerInfo,
    ports: Ports,
    *,
    from_request_queue: bool = False,
    reply_to: ReplyTarget | None = None,
    resolver: Resolver | None = None,
    report_request_failure: bool = True,
    check: TargetCheck | None = None,
) -> StartReport:
    """Read, start and report one request (see the module docstring).

    `from_request_queue`: the body came from REQUEST_QUEUE_URL, where fan-out messages are accepted (signed).
    `report_request_failure`: emit a failed result for a request that cannot start at all (False where the caller
    answers the requester directly: HTTP, chat).
    """
    log = get_logger()
    log.append_keys(correlation_id=trigger.correlation_id or trigger.trigger_id, trigger_id=trigger.trigger_id)
    settings = ports.settings
    request: BackupRequest | FanoutMessage | None = None
    data: dict[str, Any] = {}
    fresh = Freshness(now=ports.clock.now(), max_age=message_max_age(settings))
    try:
        data = read_body(body, settings)
        if data.get("kind") == "fanout" and from_request_queue:
            try:
                request = read_fanout(data, settings, fresh)
            except ForgedFanout as exc:
                raise RequestInvalid(str(exc)) from None
        elif data.get("kind") == "redelivery" and from_request_queue:
            # handlers unwrap the redeliveries that verify (backups.handoff.read_delivery): this one did not
            try:
                read_signed(Redelivery, data, settings, fresh)
            except ForgedFanout as exc:
                raise RequestInvalid(str(exc)) from None
            raise RequestInvalid("a redelivery message may not carry another one")
        else:
            request = build_request(data, settings)
        report = start_backups(
            request,
            trigger,
            cloud=ports.cloud,
            settings=settings,
            queue=ports.queue,
            clock=ports.clock,
            sleep=ports.sleep,
            resolver=resolver,
            reply_to=reply_to,
            check=check,
        )
    except TRANSIENT:
        raise
    except StartError as exc:
        dry_run = request.dry_run if isinstance(request, BackupRequest) else data.get("dryRun") is True
        if report_request_failure and not dry_run:  # a dry run reports to its caller only
            emit_request_failure(exc, trigger, request, ports, reply_to=reply_to)
        raise
    if not report.dry_run:  # a dry run reports its plan to the caller and emits nothing
        ports.metrics.record_started(len(report.started))
        reply_to = _reply_target(request, reply_to)
        try:
            # The failed results first: a sink failure brings the request back before any retry message exists.
            emit_failed(report.failed, ports, reply_to)
            send_retryable(report, request, settings=settings, queue=ports.queue, clock=ports.clock, reply_to=reply_to)
            if report.queued:
                ports.metrics.count("redeliveries", len(report.queued))  # retry messages: handed back to retry
        except RedeliveryRequested as exc:
            exc.report = report  # what did start: the caller's reply names it
            raise
    return report


def _reply_target(request: BackupRequest | FanoutMessage | None, given: ReplyTarget | None) -> ReplyTarget | None:
    """Where chat messages go: the caller's reply target, else a fan-out or retry message's own (the response_url
    of the Slack command it came from)."""
    return given or (request.reply_to if isinstance(request, FanoutMessage) else None)


def emit_failed(failed: list[Failed], ports: Ports, reply_to: ReplyTarget | None) -> None:
    """A failed result event per target that could not start. Raises RedeliveryRequested if a sink failed."""
    if not failed:
        return
    sinks = ports.sinks(reply_to)
    failing: set[str] = set()
    for f in failed:  # every target gets its chance, even after one result was not taken
        event = failed_start_event(f, source=ports.settings.result_event_source)
        failing |= set(emit_result(event, sinks, ports.settings, ports.metrics).failed)
    if failing:
        # The results must not be lost: ask for the trigger again (same keys, same event ids: duplicates drop).
        raise RedeliveryRequested(f"result sinks failed: {sorted(failing)}")


def emit_request_failure(
    exc: StartError,
    trigger: TriggerInfo,
    request: BackupRequest | FanoutMessage | None,
    ports: Ports,
    *,
    reply_to: ReplyTarget | None = None,
) -> None:
    """A request that cannot start at all still ends in one failed result (target: the request as asked). A
    refused fan-out message is reported as the queue message that carried it, never as what it claims."""
    if isinstance(request, BackupRequest):
        target = BackupTarget(
            trigger=trigger,
            asked=describe_selector(request),
            compute_instance_id=request.compute_instance_id,
            policy_id=request.policy_id,
            folder_id=request.folder_id,
        )
    else:
        target = BackupTarget(trigger=trigger, asked="request")
    failed = Failed(
        target=target,
        error=ResultError(
            code=exc.code, message=exc.message, grpc_code=exc.cloud_error.code if exc.cloud_error else None
        ),
        finished_at=ports.clock.now(),
    )
    emit_failed([failed], ports, reply_to)
