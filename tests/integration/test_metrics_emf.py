"""AWS: the EMF lines powertools prints for each flow (success, failure, timeout, sink failure), read back as
CloudWatch would: namespace, dimension sets and values."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.metrics import EmfRecorder, build_metrics
from settings import Settings
from tests.metrics_helpers import emf_lines, emf_values, failed, failed_start, succeeded, timed_out

SERVICE = (("service", "yc-backup-runner"),)


def flushed(capsys: pytest.CaptureFixture[str], recorder: EmfRecorder) -> list[dict[str, Any]]:
    capsys.readouterr()
    recorder.flush()
    return emf_lines(capsys.readouterr().out)


def test_success_flow(capsys: pytest.CaptureFixture[str]) -> None:
    rec = EmfRecorder("yc-backup-runner")
    rec.record_started()
    rec.record_result(succeeded(minutes=90))
    [line] = flushed(capsys, rec)
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "yc-backup-runner"
    assert directive["Dimensions"] == [["service"]]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {
        "BackupsStarted": "Count",
        "BackupsSucceeded": "Count",
        "BackupDuration": "Seconds",
        "BackupPolls": "Count",
    }
    assert emf_values([line]) == {
        ("BackupsStarted", SERVICE): [1.0],
        ("BackupsSucceeded", SERVICE): [1.0],
        ("BackupDuration", SERVICE): [5400.0],
        ("BackupPolls", SERVICE): [7.0],
    }
    assert isinstance(line["_aws"]["Timestamp"], int)


def test_failure_flow_counts_the_total_and_per_error_code(capsys: pytest.CaptureFixture[str]) -> None:
    rec = EmfRecorder("yc-backup-runner")
    rec.record_result(failed(code=9))
    rec.record_result(failed(code=9))
    rec.record_result(failed_start("POLICY_NOT_APPLIED"))
    values = emf_values(flushed(capsys, rec))
    assert values[("BackupsFailed", (("service", "yc-backup-runner"),))] == [2.0, 1.0]  # what the alarm sums
    assert values[("BackupsFailed", (*SERVICE, ("ErrorCode", "FAILED_PRECONDITION")))] == [2.0]
    assert values[("BackupsFailed", (*SERVICE, ("ErrorCode", "POLICY_NOT_APPLIED")))] == [1.0]
    assert sum(values[("BackupsFailed", SERVICE)]) == 3


def test_timeout_flow(capsys: pytest.CaptureFixture[str]) -> None:
    rec = EmfRecorder("yc-backup-runner")
    rec.record_result(timed_out())
    values = emf_values(flushed(capsys, rec))
    assert values[("BackupsTimedOut", SERVICE)] == [1.0]
    assert values[("BackupPolls", SERVICE)] == [40.0]
    assert values[("BackupDuration", SERVICE)] == [86405.0]
    assert not any(name == "BackupsFailed" for name, _ in values)


def test_sink_failure_flow(capsys: pytest.CaptureFixture[str]) -> None:
    rec = EmfRecorder("yc-backup-runner")
    rec.record_result(succeeded())
    rec.count("sink_failures", sink="webhook")
    rec.count("redeliveries")
    lines = flushed(capsys, rec)
    values = emf_values(lines)
    assert values[("SinkFailures", SERVICE)] == [1.0]
    assert values[("SinkFailures", (*SERVICE, ("Sink", "webhook")))] == [1.0]
    assert values[("Redeliveries", SERVICE)] == [1.0]
    assert values[("BackupsSucceeded", SERVICE)] == [1.0]


def test_many_results_are_one_line_per_dimension_set(capsys: pytest.CaptureFixture[str]) -> None:
    rec = EmfRecorder("ns")
    for minutes in (10, 20, 30):
        rec.record_result(succeeded(minutes=minutes))
    [line] = flushed(capsys, rec)
    assert line["BackupsSucceeded"] == [3.0]
    assert line["BackupDuration"] == [600.0, 1200.0, 1800.0]


def test_no_instance_or_operation_id_in_any_dimension(capsys: pytest.CaptureFixture[str]) -> None:
    rec = EmfRecorder("yc-backup-runner")
    for event in (succeeded(instance="vm1secret"), failed(), timed_out(), failed_start()):
        rec.record_result(event)
    rec.count("sink_failures", sink="https://hooks.example/t0ken")
    text = capsys.readouterr().out
    lines = flushed(capsys, rec)
    dimension_names = {
        d for line in lines for x in line["_aws"]["CloudWatchMetrics"] for s in x["Dimensions"] for d in s
    }
    assert dimension_names == {"service", "ErrorCode", "Sink"}
    blob = str(lines) + text
    for forbidden in ("vm1secret", "vm9", "op1", "trig-1", "t0ken"):
        assert forbidden not in blob


def test_nothing_recorded_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert flushed(capsys, EmfRecorder("ns")) == []


def test_switched_off_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    rec = build_metrics(Settings.from_env({"METRICS_ENABLED": "0"}), platform="aws")
    rec.record_result(failed())
    capsys.readouterr()
    rec.flush()
    assert emf_lines(capsys.readouterr().out) == []
