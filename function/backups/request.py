"""The backup request: what a trigger asks for, read from its body with the environment defaults merged under it.

`build_request(body, settings)` -> `BackupRequest`, or `RequestInvalid` saying what to fix. `describe_selector`
gives the selector as asked ("instanceName=db"), which every target's record keeps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from backups.errors import RequestInvalid
from backups.models import (
    ID_PATTERN,
    INSTANCE_NAME_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    TEXT_PATTERN,
    CamelModel,
)
from jsontext import NotAJsonObject, parse_json_object
from settings import Settings

MAX_INSTANCE_IDS = 1000


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
        bad = [v for v in value if not isinstance(v, str) or not re.fullmatch(ID_PATTERN, v)]
        if bad:
            raise ValueError("every computeInstanceIds item must be 1-50 lowercase letters and digits")
        return list(dict.fromkeys(value))  # keep order, drop repeats

    @field_validator("instance_labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
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


# --- building the request --------------------------------------------------------------------------------

SELECTOR_KEYS = ("computeInstanceId", "computeInstanceIds", "instanceName", "instanceLabels")
POLICY_KEYS = ("policyId", "policyName")


def _camel_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    return {(to_camel(k) if "_" in k else k): v for k, v in data.items()}


def _validation_message(exc: ValidationError) -> str:
    # Never echo the input values (they may be long or hostile): location and message only.
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def read_body(body: Mapping[str, Any] | str | bytes | None, settings: Settings) -> dict[str, Any]:
    """A trigger's body as a JSON object with camelCase keys, within MAX_BODY_BYTES. Raises RequestInvalid."""
    if body is None:
        return {}
    if isinstance(body, str | bytes | bytearray):
        size = len(body) if isinstance(body, bytes | bytearray) else len(body.encode("utf-8", "surrogatepass"))
        if size > settings.max_body_bytes:  # a queue message may be larger than an HTTP body (handlers.trigger)
            raise RequestInvalid(f"the request body is over the {settings.max_body_bytes}-byte limit (MAX_BODY_BYTES)")
        try:
            body = parse_json_object(body, "the request body")
        except NotAJsonObject as exc:
            raise RequestInvalid(str(exc)) from None
    if not isinstance(body, Mapping):
        raise RequestInvalid("the request body must be a JSON object")
    return _camel_keys(body)


def build_request(body: Mapping[str, Any] | str | bytes | None, settings: Settings) -> BackupRequest:
    """The request a trigger's body asks for, with the environment defaults merged under it.

    Defaults (lowest first): DEFAULT_REQUEST, then FOLDER_ID / DEFAULT_POLICY_ID / DEFAULT_POLICY_NAME (only where
    DEFAULT_REQUEST has no value), then the body. Selector keys and policy keys are taken as groups: if the body
    names any instance selector, no default selector is used; if it names policyId or policyName, no default
    policy is used (so a body's policyName never collides with a default policyId).

    A fan-out message (`"kind": "fanout"`) is not a request: backups.run reads those (backups.handoff).
    """
    data = read_body(body, settings)
    if data.get("kind") == "fanout":
        raise RequestInvalid("fan-out messages are only accepted from the request queue")
    defaults = _camel_keys(settings.default_request)
    if settings.folder_id and not defaults.get("folderId"):
        defaults["folderId"] = settings.folder_id
    if not any(defaults.get(k) for k in POLICY_KEYS):
        if settings.default_policy_id:
            defaults["policyId"] = settings.default_policy_id
        elif settings.default_policy_name:
            defaults["policyName"] = settings.default_policy_name
    if any(k in data and data[k] not in (None, "", [], {}) for k in SELECTOR_KEYS):
        for k in SELECTOR_KEYS:
            defaults.pop(k, None)
    if any(k in data and data[k] not in (None, "") for k in POLICY_KEYS):
        for k in POLICY_KEYS:
            defaults.pop(k, None)
    merged = {**defaults, **{k: v for k, v in data.items() if v is not None}}
    try:
        request = BackupRequest.model_validate(merged)
    except ValidationError as exc:
        raise RequestInvalid(f"invalid request: {_validation_message(exc)}") from None
    check_selector(request)
    return request


def check_selector(request: BackupRequest) -> None:
    kinds = request.selector_kinds()
    if not kinds:
        raise RequestInvalid(
            "no instance selector: give computeInstanceId, computeInstanceIds, instanceName or instanceLabels "
            "(an empty selector never means every instance)"
        )
    if len(kinds) > 1:
        raise RequestInvalid(f"give one kind of instance selector, not {' and '.join(kinds)}")
    if request.policy_id and request.policy_name:
        raise RequestInvalid("give policyId or policyName, not both")


def describe_selector(request: BackupRequest) -> str:
    """The target as asked, for reports and for results when no instance is known."""
    if request.compute_instance_id:
        return f"computeInstanceId={request.compute_instance_id}"
    if request.compute_instance_ids:
        return f"computeInstanceIds={','.join(request.compute_instance_ids)}"
    if request.instance_name:
        return f"instanceName={request.instance_name}"
    if request.instance_labels:
        return "instanceLabels=" + ",".join(f"{k}={v}" for k, v in sorted(request.instance_labels.items()))
    return "none"
