"""pydantic models of the Yandex Cloud REST resources this project reads and writes.

REST JSON is the proto3 JSON mapping: lowerCamelCase names, int64 as strings, enums as names,
default values (false, 0, "") may be left out. Unknown fields are ignored so that API additions
don't break us.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=False,
    )

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- google.rpc.Status and Operation ---------------------------------------------------------------


class Status(ApiModel):
    code: int = 0
    message: str = ""
    details: list[dict[str, Any]] = Field(default_factory=list)


class ExecuteMetadata(ApiModel):
    """Metadata of `Policy.Execute` (and of Apply/Revoke, which carry the same two ids)."""

    policy_id: str | None = None
    compute_instance_id: str | None = None
    # The REST page types it as a string, the proto as a double: accept both.
    progress_percentage: float | None = None

    @field_validator("progress_percentage", mode="before")
    @classmethod
    def _number_or_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return float(value) if value.strip() else None
        return value


class Operation(ApiModel):
    id: str
    description: str = ""
    created_at: datetime | None = None
    created_by: str = ""
    modified_at: datetime | None = None
    done: bool = False  # absent means false (proto3 default)
    metadata: ExecuteMetadata = Field(default_factory=ExecuteMetadata)
    error: Status | None = None
    response: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        # `error` may appear before `done` while the service rolls back.
        return self.error is not None and self.error.code != 0

    @property
    def succeeded(self) -> bool:
        return self.done and not self.failed

    @property
    def progress(self) -> float | None:
        return self.metadata.progress_percentage


# --- Cloud Backup ------------------------------------------------------------------------------------


class Policy(ApiModel):
    id: str
    name: str = ""
    folder_id: str = ""
    enabled: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    settings: dict[str, Any] | None = None


class PolicyApplication(ApiModel):
    policy_id: str
    compute_instance_id: str
    enabled: bool = False
    status: str = "STATUS_UNSPECIFIED"  # OK | RUNNING | DISABLED
    created_at: datetime | None = None
    is_processing: bool = False


class BackupResource(ApiModel):
    """A Compute instance as Cloud Backup knows it (its agent's state)."""

    compute_instance_id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    online: bool = False
    enabled: bool = False
    status: str = "STATUS_UNSPECIFIED"  # IDLE | BACKUPING | RECOVERING | FAILED | OTHER
    status_details: str = ""
    status_progress: int = 0
    last_backup_time: datetime | None = None
    next_backup_time: datetime | None = None
    resource_id: str = ""
    is_active: bool = False
    init_status: str = ""
    type: str = ""


# --- Compute -----------------------------------------------------------------------------------------


class Instance(ApiModel):
    id: str
    folder_id: str = ""
    created_at: datetime | None = None
    name: str = ""
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    zone_id: str = ""
    platform_id: str = ""
    status: str = "STATUS_UNSPECIFIED"


# --- list pages --------------------------------------------------------------------------------------


class InstancePage(ApiModel):
    instances: list[Instance] = Field(default_factory=list)
    next_page_token: str = ""


class PolicyList(ApiModel):
    policies: list[Policy] = Field(default_factory=list)


class ApplicationList(ApiModel):
    applications: list[PolicyApplication] = Field(default_factory=list)


class ResourcePage(ApiModel):
    resources: list[BackupResource] = Field(default_factory=list)
    next_page_token: str = ""


class ResourceEnvelope(ApiModel):
    """`Resource.Get` wraps its answer: `{"resource": {...}}`."""

    resource: BackupResource


# --- IAM ---------------------------------------------------------------------------------------------


class IamToken(ApiModel):
    iam_token: str
    expires_at: datetime


class ServiceAccountKey(BaseModel):
    """An authorized key as `yc iam key create` writes it (snake_case JSON)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    service_account_id: str = Field(validation_alias=AliasChoices("service_account_id", "serviceAccountId"))
    private_key: str = Field(validation_alias=AliasChoices("private_key", "privateKey"), repr=False)
    key_algorithm: str = "RSA_2048"
