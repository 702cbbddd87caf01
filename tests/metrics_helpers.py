"""Result events for the metrics tests (one per flow), and a reader for the EMF lines a test captured."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from backups.events import failed_start_event, result_from_operation, timed_out_result
from backups.handoff import FollowupTicket
from backups.models import ResultError, ResultEvent, TriggerInfo
from backups.target import BackupTarget, Failed
from ycloud.models import Operation, Status

START = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
NOW = START + timedelta(minutes=95)


def ticket(compute_instance_id: str = "vm1", **kw: Any) -> FollowupTicket:
    fields: dict[str, Any] = {
        "operation_id": "op1",
        "target": BackupTarget(
            trigger=TriggerInfo(source="aws.scheduler", trigger_id="trig-1"),
            asked=f"computeInstanceId={compute_instance_id}",
            policy_id="pol1",
            compute_instance_id=compute_instance_id,
        ),
        "started_at": START,
        "deadline": START + timedelta(days=1),
        "attempt": 7,
    }
    fields.update(kw)
    return FollowupTicket(**fields)


def succeeded(minutes: float = 90, instance: str = "vm1") -> ResultEvent:
    op = Operation(id="op1", done=True, response={}, modified_at=START + timedelta(minutes=minutes))
    return result_from_operation(ticket(compute_instance_id=instance), op, NOW)


def failed(code: int = 9) -> ResultEvent:
    op = Operation(id="op1", done=True, error=Status(code=code, message="agent reported an error"))
    return result_from_operation(ticket(), op, NOW)


def failed_start(code: str = "POLICY_NOT_APPLIED") -> ResultEvent:
    target = BackupTarget(
        trigger=TriggerInfo(source="direct", trigger_id="t2"),
        asked="computeInstanceId=vm9",
        policy_id="pol1",
        compute_instance_id="vm9",
    )
    return failed_start_event(Failed(target=target, error=ResultError(code=code, message="no policy"), finished_at=NOW))


def timed_out() -> ResultEvent:
    return timed_out_result(ticket(attempt=40), START + timedelta(days=1, seconds=5))


def emf_lines(stdout: str) -> list[dict[str, Any]]:
    """Every EMF document printed (a JSON line with an `_aws` key), in order."""
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            out.append(json.loads(line))
    return out


def emf_values(lines: list[dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    """(metric, dimensions) -> values, over every dimension set of every line (as CloudWatch would read them)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for doc in lines:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                for dims in directive["Dimensions"]:
                    key = (metric["Name"], tuple((d, doc[d]) for d in dims))
                    found.setdefault(key, []).extend(float(v) for v in values)
    return found
