"""The domain's own messages: the backup request, the follow-up ticket and the result event.

All are JSON on the wire with camelCase names (like the Yandex API), so users and their scripts
read the same spelling everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# Yandex Cloud resource ids: Latin letters and digits, at most 50 (proto validation). Prefixes are not enforced.
ID_PATTERN = r"^[a-z0-9]{1,50}$"
# Compute instance names: `|[a-z]([-_a-z0-9]{0,61}[a-z0-9])?` on create.
INSTANCE_NAME_PATTERN = r"^[a-z]([-_a-z0-9]{0,61}[a-z0-9])?$"
# Label keys and values (Compute): keys `[a-z][-_./\\@0-9a-z]*` up to 63, values `[-_./\\@0-9a-z]*` up to 63.
LABEL_KEY_PATTERN = r"^[a-z][-_./\\@0-9a-z]{0,62}$"
LABEL_VALUE_PATTERN = r"^[-_./\\@0-9a-z]{0,63}$"
# Free text the user gives us (reason, requestedBy, correlationId): bounded, no control characters.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"

MAX_INSTANCE_IDS = 1000


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class BackupRequest(CamelModel):
    """What a trigger asks for. Absent fields are filled from the environment defaults (settings)."""

    # instance selectors (exactly one kind must be given, possibly from the defaults)
    compute_instance_id: str | None = Field(default=None, pattern=ID_PATTERN)
    compute_instance_ids: list[str] | None = Field(default=None, max_length=MAX_INSTANCE_IDS)
    instance_name: str | None = Field(default=None, pattern=INSTANCE_NAME_PATTERN)
    instance_labels: dict[str, str] | None = Field(default=None, max_length=64)
    folder_id: str | None = Field(default=None, pattern=ID_PATTERN)
    # policy: id, name, or none (the one applied to each instance)
    policy_id: str | None = Field(default=None, pattern=ID_PATTERN)
    policy_name: str | None = Field(default=None, min_length=1, max_length=50, pattern=TEXT_PATTERN)
    apply_if_missing: bool = False
    dry_run: bool = False
    reason: str | None = Field(default=None, max_length=500, pattern=TEXT_PATTERN)
    requested_by: str | None = Field(default=None, max_length=200, pattern=TEXT_PATTERN)
    correlation_id: str | None = Field(default=None, max_length=128, pattern=TEXT_PATTERN)

    @field_validator("compute_instance_ids")
    @classmethod
    def _ids(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        import re

        bad = [v for v in value if not isinstance(v, str) or not re.fullmatch(ID_PATTERN, v)]
        if bad:
            raise ValueError("every computeInstanceIds item must be 1-50 lowercase letters and digits")
        return list(dict.fromkeys(value))  # keep order, drop repeats

    @field_validator("instance_labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        import re

        for key, val in value.items():
            if (
                not re.fullmatch(LABEL_KEY_PATTERN, key)
                or not isinstance(val, str)
                or not re.fullmatch(LABEL_VALUE_PATTERN, val)
            ):
                raise ValueError("instanceLabels keys must match [a-z][-_./\\@0-9a-z]* and values [-_./\\@0-9a-z]*")
        return value

    @model_validator(mode="after")
    def _one_policy(self) -> BackupRequest:
        if self.policy_id and self.policy_name:
            raise ValueError("give policyId or policyName, not both")
        return self

    def selector_kinds(self) -> list[str]:
        kinds = []
        if self.compute_instance_id:
            kinds.append("computeInstanceId")
        if self.compute_instance_ids:
            kinds.append("computeInstanceIds")
        if self.instance_name:
            kinds.append("instanceName")
        if self.instance_labels:
            kinds.append("instanceLabels")
        return kinds


class TriggerInfo(CamelModel):
    """Who asked and through what: carried from the trigger to the ticket and into the result event."""

    source: str  # triggers.model.Source, or "slack" (kept as str so older tickets with new sources still parse)
    trigger_id: str  # the trigger's own identity: timer event id, message id, HTTP idempotency/request id
    correlation_id: str | None = None
    requested_by: str | None = None
    reason: str | None = None


class ReplyTarget(CamelModel):
    """Where chat progress and the final result go (a Slack `response_url`, or an incoming webhook)."""

    kind: Literal["slack"] = "slack"
    response_url: str
    expires_at: datetime  # response_url works for 30 minutes
    messages_left: int = 5  # and takes at most 5 messages
    channel_id: str | None = None
    user_id: str | None = None


class ProgressSample(CamelModel):
    at: datetime
    percent: float


class FollowupTicket(CamelModel):
    """One started operation being followed. Sent to FOLLOWUP_QUEUE_URL with a delay, again until done."""

    kind: Literal["followup"] = "followup"
    version: int = 1
    operation_id: str
    policy_id: str
    compute_instance_id: str
    instance_name: str | None = None
    folder_id: str | None = None
    trigger: TriggerInfo
    started_at: datetime
    deadline: datetime
    attempt: int = 0  # how many times the operation has been checked
    transient_errors: int = 0  # consecutive transient failures of Operation.Get (backs off the re-checks)
    progress: list[ProgressSample] = Field(default_factory=list)  # last few samples, for the finish estimate
    reply_to: ReplyTarget | None = None
    last_reported_percent: float | None = None


ResultStatus = Literal["succeeded", "failed", "timed_out"]


class ResultError(CamelModel):
    code: str  # gRPC code name, e.g. FAILED_PRECONDITION, or our own: NOT_FOUND, POLICY_NOT_APPLIED ...
    message: str
    grpc_code: int | None = None


class ResultData(CamelModel):
    status: ResultStatus
    operation_id: str | None = None
    policy_id: str | None = None
    compute_instance_id: str | None = None
    instance_name: str | None = None
    folder_id: str | None = None
    target: str | None = None  # what the user asked for when no instance id is known (a name, labels)
    error: ResultError | None = None
    started_at: datetime | None = None
    finished_at: datetime
    duration_seconds: float | None = None
    source: str
    trigger_id: str
    correlation_id: str | None = None
    requested_by: str | None = None
    reason: str | None = None
    polls: int | None = None


class ResultEvent(BaseModel):
    """A CloudEvents 1.0 structured-mode JSON event. `id` is deterministic so consumers drop duplicates."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: ResultData

    def to_json_dict(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True, mode="json")
        out["data"] = self.data.to_json_dict()
        return out
