"""The small models every part of the domain shares: the id patterns, who asked (`TriggerInfo`), where chat
replies go (`ReplyTarget`), and the result event (`ResultEvent` with its `ResultData`).

All are JSON on the wire with camelCase names (like the Yandex API), so users and their scripts read the same
spelling everywhere. The request lives in backups.request, the record of one target in backups.target, the
follow-up ticket and the fan-out message in backups.handoff.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
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


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class TriggerInfo(CamelModel):
    """Who asked and through what: part of every target's record, so of every ticket and result event."""

    model_config = ConfigDict(frozen=True)

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


ResultStatus = Literal["succeeded", "failed", "timed_out"]


class ResultError(CamelModel):
    code: str  # gRPC code name, e.g. FAILED_PRECONDITION, or our own: NOT_FOUND, POLICY_NOT_APPLIED ...
    message: str
    grpc_code: int | None = None


class ResultData(CamelModel):
    """`data` of a result event. Built in one place only: backups.events.result_event."""

    status: ResultStatus
    operation_id: str | None = None
    policy_id: str | None = None
    compute_instance_id: str | None = None
    instance_name: str | None = None
    folder_id: str | None = None
    target: str | None = None  # what the user asked for, on targets that never started (a name, labels)
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
