"""Backup metrics: the recorder the domain calls, and the points it turns results into.

The port is four calls, made by the handlers (see README "Operating it" for what each metric means):

- `record_started(n)`: `n` targets whose Policy.Execute was accepted (a backup is running).
- `record_result(event)`: once per result event handed to the sinks: succeeded / failed (by error code) /
  timed out, plus the backup's duration and the polls it took when the event has them.
- `count(name, n, sink=...)`: per invocation, `"sink_failures"` (one per sink that still failed after its own
  retries; `sink` names it), `"redeliveries"` (messages or events given back to the platform) and
  `"stale_checked"` (follow-up tickets read long past their deadline: replays or redrives, checked once more and ended).
- `record_emitted(recorder, event, report)` (a helper): after `emit_result`, the two above in one call.
- `flush()`: once per invocation, at its end. Never raises: a metric that cannot be written is logged once and
  dropped, so metrics never fail (or redeliver) an invocation.

Adapters (adapters.metrics) write the points: CloudWatch EMF through powertools on AWS, the Monitoring write API
on Yandex Cloud; `NullRecorder` when METRICS_ENABLED is false. Dimensions stay few and bounded: an error code
(gRPC names and our own, anything else is `OTHER`) and a sink name (`log`, `queue`, `webhook`, `chat`), never an
instance, operation or trigger id.

A result is counted once: `record_emitted` counts it only when every sink took it, and the handlers wrap the
recorder of each message in `Settled`, which holds `backups_started` and the results until the message is settled
(`commit`) and drops them when it comes back (`discard`: the redelivery emits, and counts, them again), counting
one event id once per invocation. A message that never settles ends in a dead-letter queue (its own alarm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from observability import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from backups.models import ResultEvent

Counter = Literal["sink_failures", "redeliveries", "stale_checked"]
# The neutral metric names; each adapter maps them to its platform's spelling (adapters.metrics).
MetricName = Literal[
    "backups_started",
    "backups_succeeded",
    "backups_failed",
    "backups_timed_out",
    "backup_duration_seconds",
    "backup_polls",
    "sink_failures",
    "redeliveries",
    "stale_checked",
]
# Label keys: bounded values only.
ERROR_CODE = "error_code"
SINK = "sink"
KNOWN_SINKS = frozenset({"log", "queue", "webhook", "chat"})
ERROR_CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
OTHER_CODE = "OTHER"
OTHER_SINK = "other"
MAX_POINTS = 500  # per flush; more are dropped (and said so): a batch of results stays far below it


@dataclass(frozen=True)
class Point:
    """One value of one metric. `label` is the single extra dimension some metrics carry."""

    name: MetricName
    value: float
    at: datetime
    label: tuple[str, str] | None = None
    gauge: bool = False  # a per-backup value (duration, polls), not a count to add up


class MetricsRecorder(Protocol):
    def record_started(self, n: int = 1) -> None: ...

    def record_result(self, event: ResultEvent) -> None: ...

    def count(self, name: Counter, n: int = 1, *, sink: str | None = None) -> None: ...

    def flush(self) -> None: ...


class NullRecorder:
    """Records nothing (METRICS_ENABLED=false, METRICS_BACKEND=none, or no backend for this platform)."""

    backend = "none"

    def record_started(self, n: int = 1) -> None:
        return None

    def record_result(self, event: ResultEvent) -> None:
        return None

    def count(self, name: Counter, n: int = 1, *, sink: str | None = None) -> None:
        return None

    def flush(self) -> None:
        return None


def error_code_label(code: str | None) -> str:
    """An error code as a dimension value: a gRPC-style name, else `OTHER` (keeps the cardinality bounded)."""
    return code if isinstance(code, str) and ERROR_CODE_PATTERN.fullmatch(code) else OTHER_CODE


def sink_label(sink: str | None) -> str:
    return sink if sink in KNOWN_SINKS else OTHER_SINK


def result_points(event: ResultEvent, now: datetime) -> list[Point]:
    """What one result event adds: its status count, and its duration and polls when known.

    Per-backup values are stamped with the backup's end (not after `now`); counts with `now`.
    """
    d = event.data
    points: list[Point] = []
    if d.status == "succeeded":
        points.append(Point("backups_succeeded", 1.0, now))
    elif d.status == "timed_out":
        points.append(Point("backups_timed_out", 1.0, now))
    else:
        code = error_code_label(d.error.code if d.error is not None else None)
        points.append(Point("backups_failed", 1.0, now, (ERROR_CODE, code)))
    finished = d.finished_at if d.finished_at.tzinfo is not None else d.finished_at.replace(tzinfo=UTC)
    at = min(finished, now)
    if d.duration_seconds is not None and d.duration_seconds >= 0:
        points.append(Point("backup_duration_seconds", float(d.duration_seconds), at, gauge=True))
    if d.polls is not None and d.polls >= 0:
        points.append(Point("backup_polls", float(d.polls), at, gauge=True))
    return points


class BufferedRecorder:
    """Collects points in memory; `flush()` hands them to `_write` once and never raises.

    Subclasses implement `_write(points)`: raise on failure, with a message that names no secret.
    """

    backend = "buffered"

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._points: list[Point] = []
        self._clock = clock or (lambda: datetime.now(UTC))
        self._log = get_logger()

    @property
    def points(self) -> list[Point]:
        """What the next flush writes (a copy)."""
        return list(self._points)

    def record_started(self, n: int = 1) -> None:
        if n > 0:
            self._add([Point("backups_started", float(n), self._clock())])

    def record_result(self, event: ResultEvent) -> None:
        try:
            self._add(result_points(event, self._clock()))
        except Exception as exc:  # a metric must never break the result path
            self._log.warning("metric not recorded", extra={"backend": self.backend, "reason": type(exc).__name__})

    def count(self, name: Counter, n: int = 1, *, sink: str | None = None) -> None:
        if n <= 0:
            return
        if name == "sink_failures":
            self._add([Point("sink_failures", float(n), self._clock(), (SINK, sink_label(sink)))])
        elif name in ("redeliveries", "stale_checked"):
            self._add([Point(name, float(n), self._clock())])
        else:
            self._log.warning("unknown metric counter", extra={"backend": self.backend, "counter": str(name)[:40]})

    def _add(self, points: Iterable[Point]) -> None:
        self._points.extend(points)

    def flush(self) -> None:
        points, self._points = self._points, []
        if not points:
            return
        if len(points) > MAX_POINTS:
            self._log.warning(
                "metrics dropped: too many points in one invocation",
                extra={"backend": self.backend, "points": len(points), "kept": MAX_POINTS},
            )
            points = points[:MAX_POINTS]
        try:
            self._write(points)
        except Exception as exc:
            self._log.warning(
                "metrics not written",
                extra={"backend": self.backend, "points": len(points), "reason": _reason(exc)},
            )

    def _write(self, points: list[Point]) -> None:
        raise NotImplementedError


class _Emitted(Protocol):
    """What `emit_result` reports (backups.results.EmitReport): the sinks that failed, and whether all took it."""

    @property
    def failed(self) -> Mapping[str, str]: ...

    @property
    def ok(self) -> bool: ...


def record_emitted(recorder: MetricsRecorder, event: ResultEvent, report: _Emitted) -> None:
    """After `emit_result`: one `sink_failures` per failed sink, and the result itself only once every sink took
    it. A result whose delivery failed comes back (the ticket is redelivered) and is counted when it gets
    through; one that never does ends in a dead-letter queue, which has its own alarm."""
    for sink in report.failed:
        recorder.count("sink_failures", sink=sink)
    if report.ok:
        recorder.record_result(event)


class Settled:
    """A recorder for one message: `backups_started` and results wait until the message is settled.

    `commit()` passes them on (each result event id once per invocation: `seen` is shared by the messages of one
    invocation); `discard()` drops them, for a message that comes back (its redelivery records them again).
    Counters (`sink_failures`, `redeliveries`, `stale_checked`) pass at once: they count what did happen.
    """

    def __init__(self, inner: MetricsRecorder, seen: set[str] | None = None) -> None:
        self._inner = inner
        self._seen = seen if seen is not None else set()
        self._started = 0
        self._results: list[ResultEvent] = []

    def record_started(self, n: int = 1) -> None:
        self._started += max(n, 0)

    def record_result(self, event: ResultEvent) -> None:
        self._results.append(event)

    def count(self, name: Counter, n: int = 1, *, sink: str | None = None) -> None:
        self._inner.count(name, n, sink=sink)

    def flush(self) -> None:
        return None  # the invocation's recorder is flushed once, by its owner

    def commit(self) -> None:
        started, results, self._started, self._results = self._started, self._results, 0, []
        if started:
            self._inner.record_started(started)
        for event in results:
            if event.id not in self._seen:
                self._seen.add(event.id)
                self._inner.record_result(event)

    def discard(self) -> None:
        self._started, self._results = 0, []


def summed(points: Iterable[Point]) -> dict[tuple[MetricName, tuple[str, str] | None], float]:
    """Counts added up per (metric, label) over one invocation; gauges are left out."""
    totals: dict[tuple[MetricName, tuple[str, str] | None], float] = {}
    for point in points:
        if not point.gauge:
            key = (point.name, point.label)
            totals[key] = totals.get(key, 0.0) + point.value
    return totals


def _reason(exc: BaseException) -> str:
    """A failed write's reason: our own errors carry a secret-free message; anything else only its type."""
    if isinstance(exc, MetricsWriteError):
        return str(exc)
    return type(exc).__name__


class MetricsWriteError(Exception):
    """A metrics write was refused or did not arrive. The message names a host and a status, never a token."""
