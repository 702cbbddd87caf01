"""Yandex Monitoring's write endpoint: `POST /monitoring/v2/data/write?folderId=&service=custom`.

The body is validated as the reference describes it (../shared/reference/yandex-monitoring.md, "Write"): `ts`
(RFC3339) and `labels` at the top apply to every metric; each metric has `name` (required), `labels`, `type`
(DGAUGE by default, or GAUGE, COUNTER, RATE, IGAUGE), `ts`, and exactly one of `value` (a number) and
`timeseries` ([{ts, value}]). Unknown fields are refused, as a proto gateway does. What was accepted is recorded
(one entry per write, each point flattened with its merged labels) for tests to read back.
"""

from __future__ import annotations

import copy
import math
import threading
from datetime import datetime
from typing import Any

from local.emulator.errors import invalid
from local.emulator.records import Subject, rfc3339

METRIC_TYPES = ("DGAUGE", "GAUGE", "COUNTER", "RATE", "IGAUGE")
_TOP = {"ts", "labels", "metrics"}
_METRIC = {"name", "labels", "type", "ts", "value", "timeseries"}
_POINT = {"ts", "value"}


def _labels(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid(f"{where}: labels must be an object of strings", where)
    if any(not k for k in value):
        raise invalid(f"{where}: a label name is empty", where)
    return dict(value)


def _ts(value: Any, where: str, default: float) -> float:
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(f"{where}: ts must be an RFC3339 string", where)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise invalid(f"{where}: ts is not RFC3339: {value!r}", where) from exc
    if parsed.tzinfo is None:
        raise invalid(f"{where}: ts needs a time zone (RFC3339)", where)
    return parsed.timestamp()


def _value(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(f"{where}: value must be a finite number", where)
    return float(value)


def _unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise invalid(f"{where}: unknown field(s) {', '.join(extra)}", f"{where}.{extra[0]}")


def parse_write(body: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """The points of one write, or INVALID_ARGUMENT naming the first field that is wrong."""
    _unknown(body, _TOP, "body")
    common_ts = _ts(body.get("ts"), "ts", now)
    common = _labels(body.get("labels"), "labels")
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise invalid("metrics: a non-empty list is required", "metrics")
    points: list[dict[str, Any]] = []
    for i, metric in enumerate(metrics):
        where = f"metrics[{i}]"
        if not isinstance(metric, dict):
            raise invalid(f"{where}: must be an object", where)
        _unknown(metric, _METRIC, where)
        name = metric.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid(f"{where}.name: required", f"{where}.name")
        kind = metric.get("type", "DGAUGE")
        if kind not in METRIC_TYPES:
            raise invalid(f"{where}.type: {kind!r} is not one of {', '.join(METRIC_TYPES)}", f"{where}.type")
        labels = {**common, **_labels(metric.get("labels"), f"{where}.labels")}
        ts = _ts(metric.get("ts"), f"{where}.ts", common_ts)
        has_value, has_series = "value" in metric, "timeseries" in metric
        if has_value == has_series:
            raise invalid(f"{where}: exactly one of value, timeseries is required", f"{where}.value")
        if has_value:
            series = [(ts, _value(metric["value"], f"{where}.value"))]
        else:
            raw = metric["timeseries"]
            if not isinstance(raw, list) or not raw:
                raise invalid(f"{where}.timeseries: a non-empty list is required", f"{where}.timeseries")
            series = []
            for j, point in enumerate(raw):
                at = f"{where}.timeseries[{j}]"
                if not isinstance(point, dict):
                    raise invalid(f"{at}: must be an object", at)
                _unknown(point, _POINT, at)
                if "value" not in point:
                    raise invalid(f"{at}.value: required", f"{at}.value")
                series.append((_ts(point.get("ts"), f"{at}.ts", ts), _value(point["value"], f"{at}.value")))
        for when, value in series:
            points.append({"name": name, "labels": labels, "type": kind, "ts": rfc3339(when), "value": value})
    return points


class MetricsPart:
    """The metric writes the emulator received (cleared by reset and by `clear_metrics`)."""

    lock: threading.RLock
    _metric_writes: list[dict[str, Any]]

    def reset_metrics(self) -> None:
        self._metric_writes = []

    def record_metric_write(
        self, subject: Subject, folder_id: str, service: str, points: list[dict[str, Any]], now: float
    ) -> dict[str, Any]:
        entry = {
            "time": now,
            "at": rfc3339(now),
            "folderId": folder_id,
            "service": service,
            "subject": subject.id,
            "points": points,
        }
        with self.lock:
            self._metric_writes.append(entry)
        return entry

    @property
    def metric_writes(self) -> list[dict[str, Any]]:
        """Every accepted write: time, at, folderId, service, subject, points [{name, labels, type, ts, value}]."""
        with self.lock:
            return copy.deepcopy(self._metric_writes)

    def metric_points(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every point received, in order, optionally only those of one metric name."""
        return [p for w in self.metric_writes for p in w["points"] if name is None or p["name"] == name]

    def clear_metrics(self) -> None:
        with self.lock:
            self._metric_writes.clear()
