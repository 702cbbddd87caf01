"""Configuration: every environment variable the function reads, in one pydantic model.

Read once per invocation with `Settings.from_env()`; nothing reads `os.environ` elsewhere in the
function code, except the AWS SDKs' standard variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL_SQS`, ...), which
adapters.aws reads per call as the SDK did, and app.py's one import hint. Every variable is documented in the
README's configuration table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# (ARNs, max age in seconds) -> ARN -> value: how Settings.with_secrets reads secrets (adapters.secrets)
SecretsFetcher = Callable[[Sequence[str], float], Mapping[str, str]]


class Settings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    # --- Yandex Cloud API and credentials (tried in this order: token, context token, key, metadata) ---
    yc_api_endpoint: str | None = Field(default=None, alias="YC_API_ENDPOINT")
    yc_iam_token: SecretStr | None = Field(default=None, alias="YC_IAM_TOKEN")
    yc_service_account_key: SecretStr | None = Field(default=None, alias="YC_SERVICE_ACCOUNT_KEY")
    yc_metadata_addr: str = Field(default="169.254.169.254", alias="YC_METADATA_ADDR")
    yc_connect_timeout: float = Field(default=3.05, gt=0, alias="YC_CONNECT_TIMEOUT")
    yc_read_timeout: float = Field(default=20.0, gt=0, alias="YC_READ_TIMEOUT")
    yc_max_retries: int = Field(default=5, ge=0, le=20, alias="YC_MAX_RETRIES")

    # --- request defaults (fill what a trigger's request leaves out) ---
    folder_id: str | None = Field(default=None, alias="FOLDER_ID")
    default_policy_id: str | None = Field(default=None, alias="DEFAULT_POLICY_ID")
    default_policy_name: str | None = Field(default=None, alias="DEFAULT_POLICY_NAME")
    default_request: dict[str, Any] = Field(default_factory=dict, alias="DEFAULT_REQUEST")
    opt_out_label: str = Field(default="backup-opt-out", alias="OPT_OUT_LABEL")

    # --- trigger: execution and hand-off ---
    execute_concurrency: int = Field(default=8, ge=1, le=64, alias="EXECUTE_CONCURRENCY")
    fanout_threshold: int = Field(default=50, ge=1, alias="FANOUT_THRESHOLD")
    request_queue_url: str | None = Field(default=None, alias="REQUEST_QUEUE_URL")
    followup_queue_url: str | None = Field(default=None, alias="FOLLOWUP_QUEUE_URL")
    # Yandex Message Queue batches: a message that must come back is sent back by the function itself (up to
    # REDELIVERY_MAX_ATTEMPTS), then copied to its dead-letter queue; poison goes there at once
    request_dlq_url: str | None = Field(default=None, alias="REQUEST_DLQ_URL")
    followup_dlq_url: str | None = Field(default=None, alias="FOLLOWUP_DLQ_URL")
    redelivery_max_attempts: int = Field(default=5, ge=1, le=50, alias="REDELIVERY_MAX_ATTEMPTS")
    apply_wait_seconds: float = Field(default=60.0, ge=0, alias="APPLY_WAIT_SECONDS")
    # signs the messages the function writes for itself (fan-out, redelivery: backups.handoff); without it the
    # function executes every target inline and lets the platform redeliver
    handoff_secret: SecretStr | None = Field(default=None, alias="HANDOFF_SECRET")
    # how long a signed message may live (backups.schedule.message_max_age); None: derived from the retry schedule
    # At most 14 days: no queue keeps a message longer (SQS, YMQ retention), and far-future dates overflow.
    handoff_max_age_seconds: int | None = Field(default=None, ge=60, le=14 * 86400, alias="HANDOFF_MAX_AGE_SECONDS")

    # --- follow-up: polling schedule and deadline ---
    followup_first_delay_seconds: int = Field(default=30, ge=0, le=900, alias="FOLLOWUP_FIRST_DELAY_SECONDS")
    followup_min_delay_seconds: int = Field(default=10, ge=0, le=900, alias="FOLLOWUP_MIN_DELAY_SECONDS")
    followup_max_delay_seconds: int = Field(default=900, ge=1, le=900, alias="FOLLOWUP_MAX_DELAY_SECONDS")
    followup_deadline_seconds: int = Field(default=86400, ge=60, alias="FOLLOWUP_DEADLINE_SECONDS")

    # --- result sinks ---
    result_queue_url: str | None = Field(default=None, alias="RESULT_QUEUE_URL")
    result_webhook_url: str | None = Field(default=None, alias="RESULT_WEBHOOK_URL")
    result_webhook_secret: SecretStr | None = Field(default=None, alias="RESULT_WEBHOOK_SECRET")
    results_failures_only: bool = Field(default=False, alias="RESULTS_FAILURES_ONLY")
    result_event_source: str = Field(default="urn:yc-backup-runner", alias="RESULT_EVENT_SOURCE")
    sink_max_attempts: int = Field(default=3, ge=1, le=10, alias="SINK_MAX_ATTEMPTS")

    # --- HTTP front: signed webhook and Slack ---
    webhook_secret: SecretStr | None = Field(default=None, alias="WEBHOOK_SECRET")
    allow_unsigned_http: bool = Field(default=False, alias="ALLOW_UNSIGNED_HTTP")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_incoming_webhook_url: SecretStr | None = Field(default=None, alias="SLACK_INCOMING_WEBHOOK_URL")
    chat_allowed_folders: list[str] = Field(default_factory=list, alias="CHAT_ALLOWED_FOLDERS")
    chat_allowed_labels: dict[str, str] = Field(default_factory=dict, alias="CHAT_ALLOWED_LABELS")
    chat_allowed_instances: list[str] = Field(default_factory=list, alias="CHAT_ALLOWED_INSTANCES")
    max_body_bytes: int = Field(default=65536, ge=1024, alias="MAX_BODY_BYTES")

    # --- metrics (adapters.metrics): EMF on AWS, the Monitoring write API on Yandex Cloud ---
    metrics_enabled: bool = Field(default=True, alias="METRICS_ENABLED")
    metrics_backend: Literal["auto", "emf", "yandex", "none"] = Field(default="auto", alias="METRICS_BACKEND")
    metrics_namespace: str = Field(
        default="yc-backup-runner",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9._/#: -]+$",
        alias="METRICS_NAMESPACE",
    )
    metrics_folder_id: str | None = Field(default=None, pattern=r"^([a-z0-9]{1,50})?$", alias="METRICS_FOLDER_ID")

    # --- AWS: secrets kept in Secrets Manager, read at run time (cached) when the value itself is not set ---
    yc_service_account_key_secret_arn: str | None = Field(default=None, alias="YC_SERVICE_ACCOUNT_KEY_SECRET_ARN")
    webhook_secret_arn: str | None = Field(default=None, alias="WEBHOOK_SECRET_ARN")
    handoff_secret_arn: str | None = Field(default=None, alias="HANDOFF_SECRET_ARN")
    slack_signing_secret_arn: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET_ARN")
    secrets_max_age_seconds: int = Field(default=300, ge=0, alias="SECRETS_MAX_AGE_SECONDS")

    @field_validator("default_request", "chat_allowed_labels", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return {}
            parsed = json.loads(value)
            if not isinstance(parsed, dict):
                raise ValueError("must be a JSON object")
            return parsed
        return value

    @field_validator("chat_allowed_folders", "chat_allowed_instances", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "yc_api_endpoint",
        "yc_iam_token",
        "yc_service_account_key",
        "folder_id",
        "default_policy_id",
        "default_policy_name",
        "request_queue_url",
        "followup_queue_url",
        "request_dlq_url",
        "followup_dlq_url",
        "result_queue_url",
        "result_webhook_url",
        "result_webhook_secret",
        "webhook_secret",
        "slack_signing_secret",
        "handoff_secret",
        "slack_incoming_webhook_url",
        "yc_service_account_key_secret_arn",
        "webhook_secret_arn",
        "slack_signing_secret_arn",
        "handoff_secret_arn",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def with_secrets(self, fetch: SecretsFetcher | None = None) -> Settings:
        """Fill the secrets given by ARN (AWS Secrets Manager) through `fetch(arns, max_age)`: handlers.deps
        passes adapters.secrets.read_secrets (one round trip for all of them, cached per process for
        SECRETS_MAX_AGE_SECONDS). A value set directly wins; no ARN left to read means no call."""
        pairs = (
            ("yc_service_account_key", self.yc_service_account_key_secret_arn),
            ("webhook_secret", self.webhook_secret_arn),
            ("slack_signing_secret", self.slack_signing_secret_arn),
            ("handoff_secret", self.handoff_secret_arn),
        )
        wanted = {name: arn for name, arn in pairs if arn and getattr(self, name) is None}
        if not wanted:
            return self
        if fetch is None:
            raise ValueError(f"{', '.join(sorted(wanted))} given by ARN, but no secrets reader was passed")
        values = fetch(sorted(set(wanted.values())), self.secrets_max_age_seconds)
        return self.model_copy(update={name: SecretStr(values[arn]) for name, arn in wanted.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        known = {field.alias for field in cls.model_fields.values() if field.alias}
        return cls.model_validate({key: value for key, value in env.items() if key in known})
