"""What one request did: `StartReport`, the outcomes of its targets, and its JSON form (the HTTP reply body and
the summary a timer, queue or direct call returns).

The JSON form keeps the documented reply shape: `started[]`, `skipped[]`, `failed[]`, `retryable[]`, `plan[]`,
`queued[]`, each item the target's instance and policy fields plus what the outcome adds (`operationId`, `reason`,
`code` ...). `queued[]`: retryable targets handed off to the request queue (backups.retry), with the `attempt` and
`delaySeconds` of the retry message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from backups.models import TriggerInfo
from backups.target import BackupTarget, Failed, Outcome, Planned, Retryable, Skipped, Started

_TIME = TypeAdapter(datetime)


def _time(value: datetime) -> str:
    """A time as pydantic writes it everywhere else (`...Z` for UTC)."""
    return str(_TIME.dump_python(value, mode="json"))


@dataclass(frozen=True)
class Queued:
    """A retryable target sent to the request queue as a retry message (backups.retry)."""

    retryable: Retryable
    attempt: int
    delay_seconds: int


@dataclass
class StartReport:
    trigger: TriggerInfo
    asked: str  # the selector as asked
    dry_run: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    resolved: int = 0  # targets after skipping and per-target resolution failures
    fanned_out: int = 0
    tickets_sent: int = 0
    queued: list[Queued] = field(default_factory=list)

    def _of(self, kind: type[Any]) -> list[Any]:
        return [o for o in self.outcomes if isinstance(o, kind)]

    @property
    def started(self) -> list[Started]:
        return self._of(Started)

    @property
    def plan(self) -> list[Planned]:
        """A dry run's plan (empty otherwise: planned targets of a real run are started or fanned out)."""
        return self._of(Planned) if self.dry_run else []

    @property
    def failed(self) -> list[Failed]:
        return self._of(Failed)

    @property
    def ok(self) -> bool:
        """Every target settled well: none failed, none waits for a retry (here or in the request queue)."""
        return not self.failed and not self.retryable and not self.queued

    @property
    def retryable(self) -> list[Retryable]:
        return self._of(Retryable)

    @property
    def needs_redelivery(self) -> bool:
        return bool(self.retryable)

    @property
    def skipped(self) -> list[Skipped]:
        return self._of(Skipped)

    def replace_planned(self, new: list[Outcome]) -> None:
        """Put `new` in the places of the planned outcomes, one each, in the targets' order (what executing or
        flagging them made of them)."""
        replacements = iter(new)
        self.outcomes = [next(replacements) if isinstance(o, Planned) else o for o in self.outcomes]

    def counts(self) -> dict[str, int]:
        return {
            "started": len(self.started),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "retryable": len(self.retryable),
            "fannedOut": self.fanned_out,
            "queued": len(self.queued),
        }

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger.to_json_dict(),
            "target": self.asked,
            "dryRun": self.dry_run,
            "resolved": self.resolved,
            "started": [_started(s) for s in self.started],
            "skipped": [_where(s.target) | {"reason": s.reason} for s in self.skipped],
            "failed": [_failed(f) for f in self.failed],
            "retryable": [_retryable(r) for r in self.retryable],
            "fannedOut": self.fanned_out,
            "plan": [_planned(p) for p in self.plan],
            "queued": [
                _retryable(q.retryable) | {"attempt": q.attempt, "delaySeconds": q.delay_seconds} for q in self.queued
            ],
            "ticketsSent": self.tickets_sent,
            "ok": self.ok,
        }


def _where(t: BackupTarget) -> dict[str, Any]:
    """The instance fields of a target, as every reply item names them."""
    return _present(computeInstanceId=t.compute_instance_id, instanceName=t.instance_name, folderId=t.folder_id)


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _started(s: Started) -> dict[str, Any]:
    t = s.target
    return (
        {"operationId": s.operation_id}
        | _where(t)
        | _present(policyId=t.policy_id, policyName=t.policy_name)
        | {"applied": s.applied, "idempotencyKey": t.idempotency_key, "startedAt": _time(s.started_at)}
    )


def _planned(p: Planned) -> dict[str, Any]:
    t = p.target
    return (
        _where(t)
        | _present(policyId=t.policy_id, policyName=t.policy_name)
        | {"applyFirst": p.apply_first, "idempotencyKey": t.idempotency_key}
        | ({"wouldFail": p.would_fail.to_json_dict()} if p.would_fail else {})
    )


def _failed(f: Failed) -> dict[str, Any]:
    t = f.target
    return (
        {"status": "failed", "code": f.error.code, "message": f.error.message}
        | _present(grpcCode=f.error.grpc_code, policyId=t.policy_id)
        | _where(t)
        | {"target": t.asked, "finishedAt": _time(f.finished_at)}
    )


def _retryable(r: Retryable) -> dict[str, Any]:
    t = r.target
    return {"code": r.code, "message": r.message} | _present(
        computeInstanceId=t.compute_instance_id, policyId=t.policy_id, instanceName=t.instance_name
    )
