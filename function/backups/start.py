"""Start the resolved targets: bounded concurrency, idempotency keys, follow-up tickets, fan-out.

`start_backups(request, trigger, cloud=..., settings=..., queue=...)` is the trigger handler's domain entry point:
resolve (`backups.resolve`), then either return the plan (dryRun), fan out one message per target through
REQUEST_QUEUE_URL (more than FANOUT_THRESHOLD targets), or execute each target (`Policy.Execute` with an
`Idempotency-Key`) and hand one `FollowupTicket` per started operation to FOLLOWUP_QUEUE_URL.

Per-target outcomes go into the `StartReport`: started, skipped (opt-out), failed (permanent: the lead emits a
failed result event for each, `FailedTarget.result_event()` builds it), retryable (transient: ask the queue
to redeliver; the idempotency keys make that safe).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from backups.followup import ticket_body
from backups.models import BackupRequest, CamelModel, FollowupTicket, ReplyTarget, ResultEvent, TriggerInfo
from backups.ports import Clock, MessageQueue, QueueError, SystemClock
from backups.resolve import (
    APPLY_HINT,
    CloudApi,
    FanoutRequest,
    HandOffFailed,
    Problem,
    Resolution,
    Resolver,
    Skipped,
    Target,
    describe_selector,
)
from backups.results import failed_start_result, target_key
from observability import get_logger
from settings import Settings
from ycloud.errors import CloudError, code_name

# Fixed forever: changing it would change every idempotency key (and let a redelivered trigger start again).
IDEMPOTENCY_NAMESPACE = uuid.UUID("5d6c3f0e-8a47-5b0e-9c1e-2f4b7a9d1c30")
APPLY_POLL_FIRST = 1.0  # seconds between operations.get polls of an Apply, doubling up to APPLY_POLL_MAX
APPLY_POLL_MAX = 10.0

Sleeper = Callable[[float], None]


def idempotency_key(trigger_id: str, policy_id: str, instance_id: str) -> str:
    """The Idempotency-Key of `Policy.Execute` for one target: the same for a redelivered trigger."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, target_key(trigger_id, policy_id, instance_id)))


def apply_idempotency_key(trigger_id: str, policy_id: str, instance_id: str) -> str:
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, target_key(trigger_id, policy_id, instance_id) + "|apply"))


# --- the report --------------------------------------------------------------------------------------------


class PlannedTarget(CamelModel):
    """A target that would be started (dryRun)."""

    compute_instance_id: str
    policy_id: str
    instance_name: str | None = None
    folder_id: str | None = None
    policy_name: str | None = None
    apply_first: bool = False
    idempotency_key: str


class StartedTarget(CamelModel):
    operation_id: str
    compute_instance_id: str
    policy_id: str
    instance_name: str | None = None
    folder_id: str | None = None
    policy_name: str | None = None
    applied: bool = False  # the policy was applied first (applyIfMissing)
    idempotency_key: str
    started_at: datetime


class FailedTarget(CamelModel):
    """A target that cannot start, with every field a failed `ResultData` needs."""

    status: Literal["failed"] = "failed"
    code: str
    message: str
    grpc_code: int | None = None
    policy_id: str | None = None
    compute_instance_id: str | None = None
    instance_name: str | None = None
    folder_id: str | None = None
    target: str | None = None
    trigger: TriggerInfo
    finished_at: datetime
    key: str  # target_key(...): the result event id is uuid5 of it

    def result_event(self, source: str) -> ResultEvent:
        """The failed result event for this target (deterministic id: uuid5 of `key`)."""
        return failed_start_result(
            self.trigger,
            policy_id=self.policy_id,
            compute_instance_id=self.compute_instance_id,
            instance_name=self.instance_name,
            folder_id=self.folder_id,
            target=self.target,
            code=self.code,
            message=self.message,
            grpc_code=self.grpc_code,
            now=self.finished_at,
            source=source,
        )


class RetryableTarget(CamelModel):
    """A transient problem (after the client's own retries): redeliver the trigger, emit no result."""

    code: str
    message: str
    compute_instance_id: str | None = None
    policy_id: str | None = None
    instance_name: str | None = None


class StartReport(CamelModel):
    trigger: TriggerInfo
    target: str  # the selector as asked
    dry_run: bool = False
    resolved: int = 0  # targets after skipping and per-target resolution failures
    started: list[StartedTarget] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    failed: list[FailedTarget] = Field(default_factory=list)
    retryable: list[RetryableTarget] = Field(default_factory=list)
    fanned_out: int = 0
    plan: list[PlannedTarget] = Field(default_factory=list)
    tickets_sent: int = 0

    @property
    def needs_redelivery(self) -> bool:
        return bool(self.retryable)


# --- the entry point ---------------------------------------------------------------------------------------


def start_backups(
    request: BackupRequest | FanoutRequest,
    trigger: TriggerInfo,
    *,
    cloud: CloudApi,
    settings: Settings,
    queue: MessageQueue | None,
    clock: Clock | None = None,
    sleep: Sleeper = time.sleep,
    resolver: Resolver | None = None,
    reply_to: ReplyTarget | None = None,
) -> StartReport:
    """Resolve and start one request. Raises `StartError`s (see backups.resolve) for request-level problems and
    `HandOffFailed` when a queue refused the fan-out messages or the tickets.

    `trigger`: the inbound message's identity. For a `FanoutRequest` the original trigger's identity (carried in
    the message) is used instead, so the keys are those of inline execution. `resolver`: pass one to share the
    listing caches between the messages of one invocation.
    """
    clock = clock or SystemClock()
    log = get_logger()
    if isinstance(request, FanoutRequest):
        carrier = trigger.trigger_id
        trigger = request.trigger_info()
        reply_to = reply_to or request.reply_to
        asked = request.target or f"computeInstanceId={request.compute_instance_id}"
        resolution = Resolution(
            targets=[
                Target(
                    compute_instance_id=request.compute_instance_id,
                    policy_id=request.policy_id,
                    instance_name=request.instance_name,
                    folder_id=request.folder_id,
                    needs_apply=request.apply_if_missing,
                    target=asked,
                )
            ]
        )
        dry_run = False
        log.info(
            "fan-out message", extra=_ids(trigger) | {"carrierId": carrier, "instanceId": request.compute_instance_id}
        )
    else:
        trigger = _with_request_identity(trigger, request)
        asked = describe_selector(request)
        resolver = resolver or Resolver(cloud, settings)
        resolution = resolver.resolve(request)
        dry_run = request.dry_run
        log.info(
            "resolved targets",
            extra=_ids(trigger)
            | {
                "target": asked,
                "targets": len(resolution.targets),
                "skipped": len(resolution.skipped),
                "problems": len(resolution.problems),
                "dryRun": dry_run,
            },
        )

    report = StartReport(trigger=trigger, target=asked, dry_run=dry_run, resolved=len(resolution.targets))
    report.skipped = list(resolution.skipped)
    for skipped in resolution.skipped:
        log.info(
            "skipped target",
            extra=_ids(trigger) | {"instanceId": skipped.compute_instance_id, "reason": skipped.reason},
        )
    for problem in resolution.problems:
        _record_problem(report, problem, trigger, clock, log)

    targets = resolution.targets
    if dry_run:
        report.plan = [
            PlannedTarget(
                compute_instance_id=t.compute_instance_id,
                policy_id=t.policy_id,
                instance_name=t.instance_name,
                folder_id=t.folder_id,
                policy_name=t.policy_name,
                apply_first=t.needs_apply,
                idempotency_key=idempotency_key(trigger.trigger_id, t.policy_id, t.compute_instance_id),
            )
            for t in targets
        ]
        log.info("dry run: nothing executed", extra=_ids(trigger) | {"planned": len(report.plan)})
        return report

    if not targets:
        return report

    if not isinstance(request, FanoutRequest) and len(targets) > settings.fanout_threshold:
        if settings.request_queue_url and queue is not None:
            _fan_out(report, targets, request, trigger, reply_to, settings.request_queue_url, queue, log)
            return report
        log.warning(
            "more targets than FANOUT_THRESHOLD but no REQUEST_QUEUE_URL: executing inline",
            extra=_ids(trigger) | {"targets": len(targets), "threshold": settings.fanout_threshold},
        )

    _execute_all(report, targets, trigger, cloud=cloud, settings=settings, clock=clock, sleep=sleep, log=log)
    _send_tickets(report, trigger, reply_to, settings=settings, queue=queue, log=log)
    return report


# --- helpers -----------------------------------------------------------------------------------------------


def _ids(trigger: TriggerInfo) -> dict[str, Any]:
    return {"correlationId": trigger.correlation_id or trigger.trigger_id, "triggerId": trigger.trigger_id}


def _with_request_identity(trigger: TriggerInfo, request: BackupRequest) -> TriggerInfo:
    update = {
        name: getattr(request, name)
        for name in ("correlation_id", "requested_by", "reason")
        if getattr(trigger, name) is None and getattr(request, name) is not None
    }
    return trigger.model_copy(update=update) if update else trigger


def _record_problem(report: StartReport, problem: Problem, trigger: TriggerInfo, clock: Clock, log: Any) -> None:
    fields = _ids(trigger) | {
        "instanceId": problem.compute_instance_id,
        "policyId": problem.policy_id,
        "code": problem.code,
        "detail": problem.message,
    }
    if problem.retryable:
        report.retryable.append(
            RetryableTarget(
                code=problem.code,
                message=problem.message,
                compute_instance_id=problem.compute_instance_id,
                policy_id=problem.policy_id,
                instance_name=problem.instance_name,
            )
        )
        log.warning("target retryable", extra=fields)
        return
    report.failed.append(
        FailedTarget(
            code=problem.code,
            message=problem.message,
            grpc_code=problem.grpc_code,
            policy_id=problem.policy_id,
            compute_instance_id=problem.compute_instance_id,
            instance_name=problem.instance_name,
            folder_id=problem.folder_id,
            target=problem.target,
            trigger=trigger,
            finished_at=clock.now(),
            key=target_key(trigger.trigger_id, problem.policy_id, problem.compute_instance_id, problem.target),
        )
    )
    log.warning("target failed", extra=fields)


def _fan_out(
    report: StartReport,
    targets: list[Target],
    request: BackupRequest,
    trigger: TriggerInfo,
    reply_to: ReplyTarget | None,
    queue_url: str,
    queue: MessageQueue,
    log: Any,
) -> None:
    bodies = [
        FanoutRequest(
            trigger_id=trigger.trigger_id,
            source=trigger.source,
            compute_instance_id=t.compute_instance_id,
            policy_id=t.policy_id,
            instance_name=t.instance_name,
            folder_id=t.folder_id,
            target=t.target,
            apply_if_missing=t.needs_apply,
            reason=trigger.reason,
            requested_by=trigger.requested_by,
            correlation_id=trigger.correlation_id,
            reply_to=reply_to,
        ).model_dump_json(by_alias=True, exclude_none=True)
        for t in targets
    ]
    try:
        queue.send_many(queue_url, bodies)
    except QueueError as exc:
        log.error("fan-out not sent", extra=_ids(trigger) | {"targets": len(bodies), "error": str(exc)})
        raise HandOffFailed(f"fan-out to the request queue failed: {exc}", report) from None
    report.fanned_out = len(bodies)
    log.info("fanned out", extra=_ids(trigger) | {"targets": len(bodies)})


def _execute_problem(exc: CloudError, t: Target) -> Problem:
    base: dict[str, Any] = {
        "compute_instance_id": t.compute_instance_id,
        "instance_name": t.instance_name,
        "folder_id": t.folder_id,
        "policy_id": t.policy_id,
        "target": t.target,
        "grpc_code": exc.code,
    }
    if exc.transient:
        return Problem(code=exc.name, message=f"{exc.name}: {exc.message}", retryable=True, **base)
    low = exc.message.lower()
    iid, pid = t.compute_instance_id, t.policy_id
    if exc.name == "FAILED_PRECONDITION" and "offline" in low:
        return Problem(
            code="AGENT_OFFLINE",
            message=f"the backup agent of instance {iid} is offline ({exc.message}): start the instance and check "
            f"its Cloud Backup agent (yc backup resource get {iid})",
            **base,
        )
    if exc.name == "FAILED_PRECONDITION" and "not applied" in low:
        return Problem(
            code="POLICY_NOT_APPLIED",
            message=f"policy {pid} is not applied to instance {iid}: " + APPLY_HINT.format(policy=pid, instance=iid),
            **base,
        )
    if exc.name == "NOT_FOUND":
        return Problem(code="NOT_FOUND", message=f"{exc.message} (policy {pid}, instance {iid})", **base)
    if exc.name == "PERMISSION_DENIED":
        return Problem(
            code="PERMISSION_DENIED",
            message=f"{exc.message}: grant the function's service account backup.editor on the folder",
            **base,
        )
    return Problem(code=exc.name, message=exc.message or exc.name, **base)


def _apply_and_wait(
    t: Target, trigger: TriggerInfo, *, cloud: CloudApi, settings: Settings, clock: Clock, sleep: Sleeper
) -> Problem | None:
    """Apply the policy, then poll the Apply operation for at most APPLY_WAIT_SECONDS. None when applied."""
    key = apply_idempotency_key(trigger.trigger_id, t.policy_id, t.compute_instance_id)
    try:
        op = cloud.backup_policies.apply(t.policy_id, t.compute_instance_id, idempotency_key=key)
        deadline = clock.now() + timedelta(seconds=settings.apply_wait_seconds)
        pause = APPLY_POLL_FIRST
        while not op.done and not op.failed:
            left = (deadline - clock.now()).total_seconds()
            if left <= 0:
                return Problem(
                    code="POLICY_APPLYING",
                    message=f"policy {t.policy_id} is still being applied to instance {t.compute_instance_id} "
                    f"after {settings.apply_wait_seconds:g}s (operation {op.id}); try again later",
                    retryable=True,
                    compute_instance_id=t.compute_instance_id,
                    instance_name=t.instance_name,
                    folder_id=t.folder_id,
                    policy_id=t.policy_id,
                    target=t.target,
                )
            sleep(min(pause, left))
            pause = min(pause * 2, APPLY_POLL_MAX)
            op = cloud.operations.get(op.id)
    except CloudError as exc:
        problem = _execute_problem(exc, t)
        if not problem.retryable:
            problem.message = f"applying policy {t.policy_id} failed: {problem.message}"
        return problem
    if op.failed and op.error is not None:
        code = op.error.code
        name = code_name(code)
        return Problem(
            code=name,
            grpc_code=code,
            message=f"applying policy {t.policy_id} to instance {t.compute_instance_id} failed: {op.error.message}"
            + (
                " (is the instance registered in Cloud Backup, with its agent installed?)"
                if name == "NOT_FOUND"
                else ""
            ),
            retryable=code in (4, 8, 13, 14),
            compute_instance_id=t.compute_instance_id,
            instance_name=t.instance_name,
            folder_id=t.folder_id,
            policy_id=t.policy_id,
            target=t.target,
        )
    return None


def _execute_all(
    report: StartReport,
    targets: list[Target],
    trigger: TriggerInfo,
    *,
    cloud: CloudApi,
    settings: Settings,
    clock: Clock,
    sleep: Sleeper,
    log: Any,
) -> None:
    def run(t: Target) -> StartedTarget | Problem:
        if t.needs_apply:
            problem = _apply_and_wait(t, trigger, cloud=cloud, settings=settings, clock=clock, sleep=sleep)
            if problem is not None:
                return problem
            log.info(
                "policy applied",
                extra=_ids(trigger) | {"instanceId": t.compute_instance_id, "policyId": t.policy_id},
            )
        key = idempotency_key(trigger.trigger_id, t.policy_id, t.compute_instance_id)
        try:
            op = cloud.backup_policies.execute(t.policy_id, t.compute_instance_id, idempotency_key=key)
        except CloudError as exc:
            return _execute_problem(exc, t)
        return StartedTarget(
            operation_id=op.id,
            compute_instance_id=t.compute_instance_id,
            policy_id=t.policy_id,
            instance_name=t.instance_name,
            folder_id=t.folder_id,
            policy_name=t.policy_name,
            applied=t.needs_apply,
            idempotency_key=key,
            started_at=clock.now(),
        )

    workers = max(1, min(settings.execute_concurrency, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="execute") as pool:
        outcomes = list(pool.map(run, targets))
    for outcome in outcomes:
        if isinstance(outcome, StartedTarget):
            report.started.append(outcome)
            log.info(
                "started backup",
                extra=_ids(trigger)
                | {
                    "operationId": outcome.operation_id,
                    "instanceId": outcome.compute_instance_id,
                    "policyId": outcome.policy_id,
                },
            )
        else:
            _record_problem(report, outcome, trigger, clock, log)


def _send_tickets(
    report: StartReport,
    trigger: TriggerInfo,
    reply_to: ReplyTarget | None,
    *,
    settings: Settings,
    queue: MessageQueue | None,
    log: Any,
) -> None:
    if not report.started:
        return
    if not settings.followup_queue_url or queue is None:
        log.error(
            "no FOLLOWUP_QUEUE_URL: started operations will not be followed",
            extra=_ids(trigger) | {"started": len(report.started)},
        )
        return
    tickets = [
        ticket_body(
            FollowupTicket(
                operation_id=s.operation_id,
                policy_id=s.policy_id,
                compute_instance_id=s.compute_instance_id,
                instance_name=s.instance_name,
                folder_id=s.folder_id,
                trigger=trigger,
                started_at=s.started_at,
                deadline=s.started_at + timedelta(seconds=settings.followup_deadline_seconds),
                attempt=0,
                reply_to=reply_to,
            )
        )
        for s in report.started
    ]
    try:
        queue.send_many(settings.followup_queue_url, tickets, delay_seconds=settings.followup_first_delay_seconds)
    except QueueError as exc:
        log.error("tickets not sent", extra=_ids(trigger) | {"tickets": len(tickets), "error": str(exc)})
        raise HandOffFailed(f"follow-up tickets not sent: {exc}", report) from None
    report.tickets_sent = len(tickets)
    log.info(
        "tickets sent",
        extra=_ids(trigger) | {"tickets": len(tickets), "delaySeconds": settings.followup_first_delay_seconds},
    )
