"""Starting planned targets: Apply when asked (and wait for it), then `Policy.Execute` with the target's
Idempotency-Key, with bounded concurrency. Each `Planned` outcome becomes `Started`, `Failed` or `Retryable`.

Execute errors are classified into what the user can act on (AGENT_OFFLINE, POLICY_NOT_APPLIED, ...); transient
ones are `Retryable` (the trigger comes back, and the idempotency key returns the same operation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from backups.models import ResultError
from backups.ports import Clock, CloudApi
from backups.resolve import APPLY_HINT
from backups.target import BackupTarget, Failed, Planned, Retryable, Started
from observability import get_logger
from settings import Settings
from ycloud.errors import CloudError, code_name

APPLY_POLL_FIRST = 1.0  # seconds between operations.get polls of an Apply, doubling up to APPLY_POLL_MAX
APPLY_POLL_MAX = 10.0
TRANSIENT_OPERATION_CODES = frozenset({4, 8, 13, 14})  # DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE

Sleeper = Callable[[float], None]
Attempt = Started | Failed | Retryable


def execute_all(
    planned: list[Planned], *, cloud: CloudApi, settings: Settings, clock: Clock, sleep: Sleeper = time.sleep
) -> list[Attempt]:
    """Start every planned target (EXECUTE_CONCURRENCY at a time); one outcome each, in the same order."""
    if not planned:
        return []

    def run(p: Planned) -> Attempt:
        return start_one(p, cloud=cloud, settings=settings, clock=clock, sleep=sleep)

    workers = max(1, min(settings.execute_concurrency, len(planned)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="execute") as pool:
        return list(pool.map(run, planned))


def start_one(p: Planned, *, cloud: CloudApi, settings: Settings, clock: Clock, sleep: Sleeper) -> Attempt:
    t = p.target
    if p.apply_first:
        problem = _apply_and_wait(t, cloud=cloud, settings=settings, clock=clock, sleep=sleep)
        if isinstance(problem, Retryable):
            return problem.model_copy(update={"apply_first": True})  # the next try applies (same key) first
        if problem is not None:
            return problem
        get_logger().info("policy applied", extra={"instanceId": t.compute_instance_id, "policyId": t.policy_id})
    try:
        op = cloud.backup_policies.execute(
            t.policy_id or "", t.compute_instance_id or "", idempotency_key=t.idempotency_key
        )
    except CloudError as exc:
        outcome = execute_problem(exc, t, clock)
        return (
            outcome.model_copy(update={"apply_first": True})
            if isinstance(outcome, Retryable) and p.apply_first
            else outcome
        )
    return Started(target=t, operation_id=op.id, started_at=clock.now(), applied=p.apply_first)


def _failed(t: BackupTarget, clock: Clock, code: str, message: str, grpc_code: int | None) -> Failed:
    return Failed(target=t, error=ResultError(code=code, message=message, grpc_code=grpc_code), finished_at=clock.now())


def execute_problem(exc: CloudError, t: BackupTarget, clock: Clock, *, doing: str = "") -> Failed | Retryable:
    """What an Execute (or Apply) error means for the user, as the target's outcome."""
    if exc.transient:
        return Retryable(target=t, code=exc.name, message=f"{exc.name}: {exc.message}")
    low = exc.message.lower()
    iid, pid = t.compute_instance_id, t.policy_id
    if exc.name == "FAILED_PRECONDITION" and "offline" in low:
        code = "AGENT_OFFLINE"
        message = (
            f"the backup agent of instance {iid} is offline ({exc.message}): start the instance and check "
            f"its Cloud Backup agent (yc backup resource get {iid})"
        )
    elif exc.name == "FAILED_PRECONDITION" and "not applied" in low:
        code = "POLICY_NOT_APPLIED"
        message = f"policy {pid} is not applied to instance {iid}: " + APPLY_HINT.format(policy=pid, instance=iid)
    elif exc.name == "NOT_FOUND":
        code, message = "NOT_FOUND", f"{exc.message} (policy {pid}, instance {iid})"
    elif exc.name == "PERMISSION_DENIED":
        code = "PERMISSION_DENIED"
        message = f"{exc.message}: grant the function's service account backup.editor on the folder"
    else:
        code, message = exc.name, exc.message or exc.name
    return _failed(t, clock, code, doing + message, exc.code)


def _apply_and_wait(
    t: BackupTarget, *, cloud: CloudApi, settings: Settings, clock: Clock, sleep: Sleeper
) -> Failed | Retryable | None:
    """Apply the policy, then poll the Apply operation for at most APPLY_WAIT_SECONDS. None when applied."""
    pid, iid = t.policy_id or "", t.compute_instance_id or ""
    try:
        op = cloud.backup_policies.apply(pid, iid, idempotency_key=t.apply_idempotency_key)
        deadline = clock.now() + timedelta(seconds=settings.apply_wait_seconds)
        pause = APPLY_POLL_FIRST
        while not op.done and not op.failed:
            left = (deadline - clock.now()).total_seconds()
            if left <= 0:
                return Retryable(
                    target=t,
                    code="POLICY_APPLYING",
                    message=f"policy {pid} is still being applied to instance {iid} after "
                    f"{settings.apply_wait_seconds:g}s (operation {op.id}); try again later",
                )
            sleep(min(pause, left))
            pause = min(pause * 2, APPLY_POLL_MAX)
            op = cloud.operations.get(op.id)
    except CloudError as exc:
        return execute_problem(exc, t, clock, doing=f"applying policy {pid} failed: ")
    if op.failed and op.error is not None:
        code = op.error.code
        name = code_name(code)
        message = f"applying policy {pid} to instance {iid} failed: {op.error.message}" + (
            " (is the instance registered in Cloud Backup, with its agent installed?)" if name == "NOT_FOUND" else ""
        )
        if code in TRANSIENT_OPERATION_CODES:
            return Retryable(target=t, code=name, message=message)
        return _failed(t, clock, name, message, code)
    return None
