"""Delivering result events to the sinks (`emit_result`), and the chat wording of progress and results.

`emit_result` hands an event to every sink (each sink retries on its own) and reports which failed, so the
caller can have the queue redeliver the ticket; a redelivered ticket produces the same event id. Events are built
in backups.events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from backups.models import ResultEvent
from backups.ports import ResultSink, SinkError
from metrics import MetricsRecorder, record_emitted

if TYPE_CHECKING:
    from backups.handoff import FollowupTicket
    from settings import Settings

PROGRESS_STEP = 25.0  # chat progress updates at 25%, 50%, 75%


# --- chat wording ------------------------------------------------------------------------------------------


def progress_message(ticket: FollowupTicket, percent: float | None, *, now: datetime | None = None) -> str | None:
    """The chat progress update due for `percent`, or None.

    Due when progress crossed the next `PROGRESS_STEP` (25%, 50%, 75%) since the last update, the ticket has a
    reply target that is not expired, and more than one message is left on it (the last one is kept for the
    final result).
    """
    reply = ticket.reply_to
    if reply is None or percent is None or not math.isfinite(percent) or reply.messages_left <= 1:
        return None
    if now is not None and now >= reply.expires_at:
        return None
    if percent >= 100:
        return None  # the result follows shortly
    last = ticket.last_reported_percent or 0.0
    if math.floor(percent / PROGRESS_STEP) <= math.floor(last / PROGRESS_STEP):
        return None
    return (
        f"Backup of {ticket.target.shown} is {percent:.0f}% done "
        f"(policy {ticket.target.policy_id}, operation {ticket.operation_id})."
    )


def chat_text(event: ResultEvent) -> str:
    """A short human message for the final result."""
    d = event.data
    head = {"succeeded": "Backup succeeded", "failed": "Backup failed", "timed_out": "Backup timed out"}[d.status]
    mark = {"succeeded": ":white_check_mark:", "failed": ":x:", "timed_out": ":hourglass:"}[d.status]
    what = _instance(d.instance_name, d.compute_instance_id) if d.compute_instance_id else (d.target or "?")
    parts = [f"{mark} {head}: {what}"]
    if d.policy_id:
        parts.append(f"policy {d.policy_id}")
    if d.operation_id:
        parts.append(f"operation {d.operation_id}")
    if d.duration_seconds is not None:
        parts.append(f"took {format_duration(d.duration_seconds)}")
    text = ", ".join(parts) + "."
    if d.error is not None:
        text += f"\nError {d.error.code}: {d.error.message}"
    return text


def format_duration(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _instance(name: str | None, instance_id: str | None) -> str:
    return f"{name} ({instance_id})" if name else (instance_id or "?")


# --- delivery ----------------------------------------------------------------------------------------------


class SinkSkipped(Exception):
    """Raised by a sink that deliberately did not deliver (nowhere to post); not a failure, not retried."""


@runtime_checkable
class ProgressSink(Protocol):
    """A sink that can also post progress updates (the chat sink)."""

    name: str

    def post_progress(self, text: str) -> bool:
        """Post `text`; True when posted. Never raises."""
        ...


@dataclass
class EmitReport:
    """Which sinks took the event. `failed` maps a sink's name to a secret-free reason."""

    event_id: str
    delivered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


LOG_SINK = "log"


def emit_result(
    event: ResultEvent, sinks: Sequence[ResultSink], settings: Settings, metrics: MetricsRecorder | None = None
) -> EmitReport:
    """Give `event` to every sink. RESULTS_FAILURES_ONLY skips succeeded events for every sink but the log.

    Never raises for a sink's failure: a sink that still fails after its own retries is in `report.failed`.
    """
    report = EmitReport(event_id=event.id)
    for sink in sinks:
        name = getattr(sink, "name", type(sink).__name__)
        if settings.results_failures_only and event.data.status == "succeeded" and name != LOG_SINK:
            report.skipped.append(name)
            continue
        try:
            sink.emit(event)
        except SinkSkipped:
            report.skipped.append(name)
        except SinkError as exc:
            report.failed[name] = str(exc)
        except Exception as exc:  # a bug in one sink must not keep the event from the others
            report.failed[name] = f"unexpected {type(exc).__name__}"
        else:
            report.delivered.append(name)
    if metrics is not None:
        record_emitted(metrics, event, report)
    return report
