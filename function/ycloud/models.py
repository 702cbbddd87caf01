"""pydantic models of the Yandex Cloud REST resources this project reads and writes.

REST JSON is the proto3 JSON mapping: lowerCamelCase names, int64 as strings, enums as names,
default values (false, 0, "") may be left out. Unknown fields are ignored so that API additions
don't break us.

Enums: a proto3 JSON parser accepts a value's name or its number, and a gateway prints a value it does not know
(one added after its build) as a number. So every enum field reads a name or an integer (also as a numeric
string), turns a known number into its name, and keeps what it does not know as it came (an unknown name as the
string, an unknown number as the int) instead of failing the whole call. Known values compare as names
(`status == "RUNNING"`). The number tables are copied from the official protos (checked by a unit test).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class EnumReader:
    """Reads an enum field of proto `full_name`: a name (str) or, for a number it does not know, the number (int).

    Hand-written rather than a Python `Enum`: an `Enum` fails on a value it lacks, which is the point here."""

    def __init__(self, full_name: str, values: dict[str, int]) -> None:
        self.full_name = full_name
        self.values = dict(values)
        self._by_number = {number: name for name, number in values.items()}

    def __call__(self, value: Any) -> Any:
        if value is None:  # proto3 JSON: null is the default value
            value = 0
        if isinstance(value, bool):  # JSON true/false is not an enum value (bool is an int in Python)
            raise ValueError(f"{self.full_name}: not an enum value")
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, int):
            return self._by_number.get(value, value)
        return value


APPLICATION_STATUS = {"STATUS_UNSPECIFIED": 0, "OK": 1, "RUNNING": 2, "DISABLED": 3}
RESOURCE_STATUS = {"STATUS_UNSPECIFIED": 0, "IDLE": 1, "BACKUPING": 2, "RECOVERING": 3, "FAILED": 4, "OTHER": 5}
RESOURCE_INIT_STATUS = {
    "INIT_STATUS_UNSPECIFIED": 0,
    "REGISTERING": 1,
    "REGISTRED": 2,  # sic, as in the proto
    "FAILED_REGISTRATION": 3,
    "DELETED": 4,
}
RESOURCE_TYPE = {"RESOURCE_TYPE_UNSPECIFIED": 0, "COMPUTE": 1, "BMS": 2, "EXTERNAL_VM": 3, "EXTERNAL_SERVER": 4}
INSTANCE_STATUS = {
    "STATUS_UNSPECIFIED": 0,
    "PROVISIONING": 1,
    "RUNNING": 2,
    "STOPPING": 3,
    "STOPPED": 4,
    "STARTING": 5,
    "RESTARTING": 6,
    "UPDATING": 7,
    "ERROR": 8,
    "CRASHED": 9,
    "DELETING": 10,
}
ApplicationStatus = Annotated[
    str | int, BeforeValidator(EnumReader("yandex.cloud.backup.v1.PolicyApplication.Status", APPLICATION_STATUS))
]
ResourceStatus = Annotated[
    str | int, BeforeValidator(EnumReader("yandex.cloud.backup.v1.Resource.Status", RESOURCE_STATUS))
]
ResourceInitStatus = Annotated[
    str | int, BeforeValidator(EnumReader("yandex.cloud.backup.v1.Resource.InitStatus", RESOURCE_INIT_STATUS))
]
ResourceType = Annotated[str | int, BeforeValidator(EnumReader("yandex.cloud.backup.v1.ResourceType", RESOURCE_TYPE))]
InstanceStatus = Annotated[
    str | int, BeforeValidator(EnumReader("yandex.cloud.compute.v1.Instance.Status", INSTANCE_STATUS))
]


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


EXECUTE_METADATA = "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata"


class ExecuteMetadata(ApiModel):
    """Metadata of `Policy.Execute` (and of Apply/Revoke, which carry the same two ids: `type_url`, the Any's
    `@type`, tells them apart)."""

    type_url: str | None = Field(default=None, alias="@type")
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
    def is_execute(self) -> bool:
        """An Execute operation (a backup): by the metadata's `@type` (a proto gateway always prints it); when
        absent, by its shape (a policy and an instance)."""
        if self.metadata.type_url:
            return self.metadata.type_url == EXECUTE_METADATA
        return bool(self.metadata.policy_id) and bool(self.metadata.compute_instance_id)

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
    status: ApplicationStatus = "STATUS_UNSPECIFIED"  # OK | RUNNING | DISABLED
    created_at: datetime | None = None
    is_processing: bool = False


class BackupResource(ApiModel):
    """A Compute instance as Cloud Backup knows it (its agent's state)."""

    compute_instance_id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    online: bool = False
    enabled: bool = False
    status: ResourceStatus = "STATUS_UNSPECIFIED"  # IDLE | BACKUPING | RECOVERING | FAILED | OTHER
    status_details: str = ""
    status_progress: int = 0
    last_backup_time: datetime | None = None
    next_backup_time: datetime | None = None
    resource_id: str = ""
    is_active: bool = False
    init_status: ResourceInitStatus = "INIT_STATUS_UNSPECIFIED"
    type: ResourceType = "RESOURCE_TYPE_UNSPECIFIED"


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
    status: InstanceStatus = "STATUS_UNSPECIFIED"


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
