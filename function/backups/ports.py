"""The ports the domain talks through. Adapters implement them; tests pass fakes or local stand-ins.

`CloudApi` is the part of the Yandex Cloud client (`ycloud.client.YandexCloud`, docs/ARCHITECTURE.md) the domain
uses; `tests.fakes.FakeCloud` implements it too.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from backups.models import ResultEvent
    from ycloud.models import BackupResource, Instance, InstancePage, Operation, Policy, PolicyApplication


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# --- the cloud ---------------------------------------------------------------------------------------------


class BackupPoliciesApi(Protocol):
    def list(self, folder_id: str | None = None, compute_instance_id: str | None = None) -> list[Policy]: ...

    def list_applications(
        self, *, policy_id: str, show_processing: bool = False
    ) -> builtins.list[PolicyApplication]: ...

    def apply(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation: ...

    def execute(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation: ...


class ComputeApi(Protocol):
    def get(self, instance_id: str) -> Instance: ...

    def list(
        self, folder_id: str, *, filter: str | None = None, page_size: int | None = None
    ) -> Iterator[Instance]: ...

    def list_page(
        self, folder_id: str, *, filter: str | None = None, page_size: int | None = None, page_token: str | None = None
    ) -> InstancePage: ...


class BackupResourcesApi(Protocol):
    def get(self, compute_instance_id: str) -> BackupResource: ...

    def list(self, folder_id: str, *, page_size: int | None = None) -> Iterator[BackupResource]: ...


class OperationsApi(Protocol):
    def get(self, operation_id: str) -> Operation: ...


class CloudApi(Protocol):
    @property
    def backup_policies(self) -> BackupPoliciesApi: ...

    @property
    def backup_resources(self) -> BackupResourcesApi: ...

    @property
    def compute(self) -> ComputeApi: ...

    @property
    def operations(self) -> OperationsApi: ...


# --- queues and sinks --------------------------------------------------------------------------------------


class MessageQueue(Protocol):
    """An SQS-protocol queue (Amazon SQS or Yandex Message Queue)."""

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        """Send one message; returns its message id. Raises QueueError."""
        ...

    def send_many(self, queue_url: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> builtins.list[str]:
        """Send several messages (batched by 10); returns the ids. Raises QueueError if any is not sent."""
        ...


class QueueError(Exception):
    """A message could not be sent. The message never carries credentials."""


class ResultSink(Protocol):
    """A place result events go to. `emit` raises SinkError when delivery failed (after its own retries)."""

    name: str

    def emit(self, event: ResultEvent) -> None: ...


class SinkError(Exception):
    pass
