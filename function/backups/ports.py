"""The ports the domain talks through. Adapters implement them; tests pass fakes or local stand-ins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from backups.models import ResultEvent


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class MessageQueue(Protocol):
    """An SQS-protocol queue (Amazon SQS or Yandex Message Queue)."""

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        """Send one message; returns its message id. Raises QueueError."""
        ...

    def send_many(self, queue_url: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> list[str]:
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
