"""One backup target, one record: `BackupTarget`, and what became of it: the `Outcome` union.

Resolution creates a `BackupTarget` for every instance it finds (or one for the request as asked, when it finds
none); the record then travels unchanged through execution, the fan-out message, the follow-up ticket and into the
result event, which reads every field it reports from it. The record derives its own keys:

- `key`: `triggerId|policyId|computeInstanceId`, or `triggerId|<target as asked>` when no instance is known;
- `idempotency_key` (Execute's `Idempotency-Key`) and `apply_idempotency_key`: UUIDv5 of the key;
- `result_event_id`: UUIDv5 of the key in another namespace (the result event's `id`).

A redelivered trigger resolves to the same records, so to the same keys: Execute returns the same operation and
consumers see the same event id.

Outcomes, one per target (a tagged union on `outcome`): `planned` (dry run, or about to start), `started`,
`failed`, `retryable` (a transient problem: the trigger should come back), `skipped` (opted out by label).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from backups.models import CamelModel, ResultError, TriggerInfo

# Fixed forever: changing one would change every idempotency key (a redelivered trigger would start again) or
# every event id (consumers would see duplicates as new events).
IDEMPOTENCY_NAMESPACE = uuid.UUID("5d6c3f0e-8a47-5b0e-9c1e-2f4b7a9d1c30")
RESULT_NAMESPACE = uuid.UUID("8b3f6a52-2c1e-5d47-9a0b-6e4c1f7d2a95")


def target_key(trigger_id: str, policy_id: str | None, instance_id: str | None, asked: str | None = None) -> str:
    """`trigger_id|policy_id|instance_id`, or `trigger_id|<target as asked>` when no instance is known.

    A known instance without a known policy uses an empty policy part.
    """
    if instance_id:
        return f"{trigger_id}|{policy_id or ''}|{instance_id}"
    return f"{trigger_id}|{asked or ''}"


def result_event_id(key: str) -> str:
    return str(uuid.uuid5(RESULT_NAMESPACE, key))


def idempotency_key(trigger_id: str, policy_id: str | None, instance_id: str | None) -> str:
    """The Idempotency-Key of `Policy.Execute` for one target: the same for a redelivered trigger."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, target_key(trigger_id, policy_id, instance_id)))


class BackupTarget(CamelModel):
    """An instance, the policy to run on it, who asked, and the selector as asked. Frozen: derive, never copy."""

    model_config = ConfigDict(frozen=True)

    trigger: TriggerInfo
    asked: str  # the selector as the request gave it: "instanceName=db", "computeInstanceId=...", or "request"
    compute_instance_id: str | None = None
    instance_name: str | None = None
    folder_id: str | None = None
    policy_id: str | None = None
    policy_name: str | None = None

    @property
    def key(self) -> str:
        return target_key(self.trigger.trigger_id, self.policy_id, self.compute_instance_id, self.asked)

    @property
    def idempotency_key(self) -> str:
        """The Idempotency-Key of `Policy.Execute`: the same for a redelivered trigger."""
        return idempotency_key(self.trigger.trigger_id, self.policy_id, self.compute_instance_id)

    @property
    def apply_idempotency_key(self) -> str:
        return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, self.key + "|apply"))

    @property
    def result_event_id(self) -> str:
        return result_event_id(self.key)

    @property
    def subject(self) -> str:
        """The result event's subject: the instance id, or the target as asked."""
        return self.compute_instance_id or self.asked

    @property
    def shown(self) -> str:
        """How people see the instance: `name (id)`, the id, or the target as asked."""
        if self.instance_name and self.compute_instance_id:
            return f"{self.instance_name} ({self.compute_instance_id})"
        return self.compute_instance_id or self.asked


class _OfTarget(CamelModel):
    """The two fields every log line and report names, read from the record (the rest: `outcome.target.*`)."""

    target: BackupTarget

    @property
    def compute_instance_id(self) -> str | None:
        return self.target.compute_instance_id

    @property
    def policy_id(self) -> str | None:
        return self.target.policy_id


class Planned(_OfTarget):
    """Resolved and ready: executed next, or shown as the plan of a dry run."""

    outcome: Literal["planned"] = "planned"
    target: BackupTarget
    apply_first: bool = False  # the policy is not applied yet and the request said applyIfMissing
    would_fail: ResultError | None = None  # a dry run's preflight: what would make Execute fail (backups.preflight)


class Started(_OfTarget):
    outcome: Literal["started"] = "started"
    target: BackupTarget
    operation_id: str
    started_at: datetime
    applied: bool = False  # the policy was applied first (applyIfMissing)


class Failed(_OfTarget):
    """A target that cannot start: it ends in a failed result event."""

    outcome: Literal["failed"] = "failed"
    target: BackupTarget
    error: ResultError
    finished_at: datetime


class Retryable(_OfTarget):
    """A transient problem (after the client's own retries): try the target again later (backups.retry), emit no
    result yet. `apply_first`: Apply before Execute on the next try; `recheck_applied`: the policy was still being
    applied, so the next try checks the application before Execute."""

    outcome: Literal["retryable"] = "retryable"
    target: BackupTarget
    code: str
    message: str
    apply_first: bool = False
    recheck_applied: bool = False


class Skipped(_OfTarget):
    outcome: Literal["skipped"] = "skipped"
    target: BackupTarget
    reason: str


Outcome = Annotated[Planned | Started | Failed | Retryable | Skipped, Field(discriminator="outcome")]
