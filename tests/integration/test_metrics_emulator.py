"""Yandex Cloud: the Monitoring writer against the emulator's write endpoint, read back through its control API.

The emulator validates a write as the reference describes it (unknown fields, types, RFC3339 times), so this is
the contract check of the writer's body. Skipped where the emulator has no Monitoring endpoint yet.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

pytest.importorskip("local.emulator.monitoring", reason="the emulator has no Monitoring write endpoint here")

from adapters.metrics import build_metrics
from local.emulator import EmulatorHandle
from local.emulator import seed as demo
from settings import Settings
from tests.metrics_helpers import failed, failed_start, succeeded, timed_out


def recorder(emu: EmulatorHandle, **env: str) -> Any:
    settings = Settings.from_env({"FOLDER_ID": demo.DEMO_FOLDER_ID, "YC_API_ENDPOINT": emu.url, **env})
    return build_metrics(settings, platform="yandex", token=lambda: emu.token)


def read_back(emu: EmulatorHandle, name: str) -> list[dict[str, Any]]:
    reply = requests.get(f"{emu.url}/_emulator/metrics", params={"name": name}, timeout=5)
    reply.raise_for_status()
    points: list[dict[str, Any]] = reply.json()["points"]
    return points


def values(emu: EmulatorHandle, name: str) -> list[tuple[dict[str, str], float]]:
    return [(p["labels"], p["value"]) for p in read_back(emu, name)]


APP = {"app": "yc-backup-runner"}


def test_success_flow(emu: EmulatorHandle) -> None:
    rec = recorder(emu)
    rec.record_started()
    rec.record_result(succeeded(minutes=90))
    rec.flush()
    assert values(emu, "backups.started") == [(APP, 1.0)]
    assert values(emu, "backups.succeeded") == [(APP, 1.0)]
    assert values(emu, "backup.duration_seconds") == [(APP, 5400.0)]
    assert values(emu, "backup.polls") == [(APP, 7.0)]
    writes = requests.get(f"{emu.url}/_emulator/metrics", timeout=5).json()["writes"]
    assert len(writes) == 1 and writes[0]["folderId"] == demo.DEMO_FOLDER_ID


def test_failure_flow(emu: EmulatorHandle) -> None:
    rec = recorder(emu)
    rec.record_result(failed(code=9))
    rec.record_result(failed_start("POLICY_NOT_APPLIED"))
    rec.flush()
    assert sorted(values(emu, "backups.failed"), key=lambda v: v[0]["error_code"]) == [
        ({**APP, "error_code": "FAILED_PRECONDITION"}, 1.0),
        ({**APP, "error_code": "POLICY_NOT_APPLIED"}, 1.0),
    ]


def test_timeout_flow(emu: EmulatorHandle) -> None:
    rec = recorder(emu, METRICS_NAMESPACE="backups-prod")
    rec.record_result(timed_out())
    rec.flush()
    assert values(emu, "backups.timed_out") == [({"app": "backups-prod"}, 1.0)]
    assert values(emu, "backup.polls") == [({"app": "backups-prod"}, 40.0)]


def test_sink_failure_flow(emu: EmulatorHandle) -> None:
    rec = recorder(emu)
    rec.count("sink_failures", sink="webhook")
    rec.count("redeliveries", 2)
    rec.flush()
    assert values(emu, "sink.failures") == [({**APP, "sink": "webhook"}, 1.0)]
    assert values(emu, "redeliveries") == [(APP, 2.0)]


def test_switched_off_writes_nothing(emu: EmulatorHandle) -> None:
    rec = recorder(emu, METRICS_ENABLED="false")
    rec.record_result(failed())
    rec.flush()
    assert requests.get(f"{emu.url}/_emulator/metrics", timeout=5).json()["writes"] == []
