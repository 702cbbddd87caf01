"""The metrics port: points per result, bounded labels, the null recorder, a flush that never raises, and the
choice of backend from the settings."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import metrics as adapters_metrics
from adapters.metrics import EmfRecorder, build_metrics, recording
from adapters.monitoring import YandexMonitoringRecorder
from metrics import (
    MAX_POINTS,
    BufferedRecorder,
    NullRecorder,
    Point,
    error_code_label,
    record_emitted,
    result_points,
    sink_label,
    summed,
)
from settings import Settings
from tests.metrics_helpers import NOW, failed, failed_start, succeeded, timed_out

FIXED = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)


class Recording(BufferedRecorder):
    backend = "test"

    def __init__(self, fail: BaseException | None = None) -> None:
        super().__init__(clock=lambda: FIXED)
        self.written: list[list[Point]] = []
        self.fail = fail

    def _write(self, points: list[Point]) -> None:
        self.written.append(points)
        if self.fail is not None:
            raise self.fail


# --- points ------------------------------------------------------------------------------------------------
def test_succeeded_result_counts_once_with_duration_and_polls() -> None:
    points = result_points(succeeded(minutes=90), NOW)
    assert [(p.name, p.value, p.label, p.gauge) for p in points] == [
        ("backups_succeeded", 1.0, None, False),
        ("backup_duration_seconds", 5400.0, None, True),
        ("backup_polls", 7.0, None, True),
    ]
    assert points[1].at < NOW  # stamped with the backup's end, not the flush


def test_failed_result_carries_its_error_code() -> None:
    [count, *_] = result_points(failed(code=9), NOW)
    assert (count.name, count.label) == ("backups_failed", ("error_code", "FAILED_PRECONDITION"))
    start = result_points(failed_start("POLICY_NOT_APPLIED"), NOW)
    assert [(p.name, p.label) for p in start] == [("backups_failed", ("error_code", "POLICY_NOT_APPLIED"))]


def test_timed_out_result() -> None:
    names = [p.name for p in result_points(timed_out(), NOW)]
    assert names == ["backups_timed_out", "backup_duration_seconds", "backup_polls"]


@given(st.text(max_size=80))
def test_error_code_label_is_bounded(code: str) -> None:
    label = error_code_label(code)
    assert label == code or label == "OTHER"
    assert len(label) <= 40 and label.replace("_", "").isalnum() and label.isupper()


@pytest.mark.parametrize("code", ["vm1234abc", "NOT FOUND", "x" * 10, "A" * 41, "", "FOO\nBAR"])
def test_unbounded_error_codes_become_other(code: str) -> None:
    assert error_code_label(code) == "OTHER"


def test_sink_label_is_one_of_the_known_sinks() -> None:
    assert [sink_label(s) for s in ("webhook", "chat", "queue", "log", "https://x/y", None)] == [
        "webhook",
        "chat",
        "queue",
        "log",
        "other",
        "other",
    ]


def test_counts_are_summed_per_label_and_gauges_left_out() -> None:
    rec = Recording()
    rec.record_started(3)
    rec.record_result(failed())
    rec.record_result(failed())
    rec.count("sink_failures", sink="webhook")
    rec.count("sink_failures", 2, sink="webhook")
    rec.count("redeliveries")
    totals = summed(rec.points)
    assert totals == {
        ("backups_started", None): 3.0,
        ("backups_failed", ("error_code", "FAILED_PRECONDITION")): 2.0,
        ("sink_failures", ("sink", "webhook")): 3.0,
        ("redeliveries", None): 1.0,
    }


def test_zero_and_negative_counts_record_nothing() -> None:
    rec = Recording()
    rec.record_started(0)
    rec.count("redeliveries", 0)
    rec.count("sink_failures", -1, sink="chat")
    rec.flush()
    assert rec.points == [] and rec.written == []


def test_unknown_counter_is_logged_not_recorded(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recording()
    with caplog.at_level(logging.WARNING):
        rec.count("instances", 1)  # type: ignore[arg-type]
    assert rec.points == []
    assert "unknown metric counter" in caplog.text


# --- flush -------------------------------------------------------------------------------------------------
def test_flush_writes_once_and_clears() -> None:
    rec = Recording()
    rec.record_result(succeeded())
    rec.flush()
    rec.flush()
    assert len(rec.written) == 1 and rec.points == []


@pytest.mark.parametrize("error", [RuntimeError("boom t0ken"), OSError("disk"), KeyError("x")])
def test_flush_never_raises_and_logs_once_without_the_message(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recording(fail=error)
    rec.record_result(succeeded())
    with caplog.at_level(logging.WARNING):
        rec.flush()
    lines = [r for r in caplog.records if r.getMessage() == "metrics not written"]
    assert len(lines) == 1
    assert lines[0].reason == type(error).__name__  # type: ignore[attr-defined]
    assert "t0ken" not in caplog.text


def test_too_many_points_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recording()
    for _ in range(MAX_POINTS):
        rec.record_result(succeeded())
    with caplog.at_level(logging.WARNING):
        rec.flush()
    assert len(rec.written[0]) == MAX_POINTS
    assert "too many points" in caplog.text


def test_recording_flushes_even_when_the_invocation_raises() -> None:
    rec = Recording()
    with pytest.raises(ValueError), recording(rec) as metrics:
        metrics.record_started()
        raise ValueError("handler failed")
    assert len(rec.written) == 1


def test_null_recorder_does_nothing() -> None:
    null = NullRecorder()
    null.record_started(5)
    null.record_result(failed())
    null.count("redeliveries", 3)
    null.flush()


# --- choosing a backend ------------------------------------------------------------------------------------
def token() -> str:
    return "t1"


@pytest.mark.parametrize(
    ("env", "platform", "context", "expected"),
    [
        ({}, "aws", None, EmfRecorder),
        ({}, "direct", SimpleNamespace(invoked_function_arn="arn:aws:lambda:x"), EmfRecorder),
        ({"FOLDER_ID": "b1gfolder"}, "yandex", None, YandexMonitoringRecorder),
        ({"FOLDER_ID": "b1gfolder"}, "direct", None, YandexMonitoringRecorder),  # a token source: Yandex
        ({"METRICS_ENABLED": "false"}, "aws", None, NullRecorder),
        ({"METRICS_BACKEND": "none"}, "aws", None, NullRecorder),
        ({"METRICS_BACKEND": "emf"}, "yandex", None, EmfRecorder),
        ({"METRICS_BACKEND": "yandex", "METRICS_FOLDER_ID": "b1gother"}, "aws", None, YandexMonitoringRecorder),
    ],
)
def test_backend_choice(env: dict[str, str], platform: str, context: Any, expected: type) -> None:
    recorder = build_metrics(Settings.from_env(env), platform=platform, context=context, token=token)
    assert type(recorder) is expected


def test_namespace_and_folder_reach_the_recorders() -> None:
    emf = build_metrics(Settings.from_env({"METRICS_NAMESPACE": "Backups/Prod"}), platform="aws")
    assert isinstance(emf, EmfRecorder) and emf.namespace == "Backups/Prod"
    settings = Settings.from_env({"FOLDER_ID": "b1gfolder", "METRICS_FOLDER_ID": "b1gmetrics"})
    yandex = build_metrics(settings, platform="yandex", token=token)
    assert isinstance(yandex, YandexMonitoringRecorder)
    assert (
        yandex.url
        == "https://monitoring.api.cloud.yandex.net/monitoring/v2/data/write?folderId=b1gmetrics&service=custom"
    )
    emulated = build_metrics(
        Settings.from_env({"FOLDER_ID": "b1gfolder", "YC_API_ENDPOINT": "http://127.0.0.1:8080/"}),
        platform="yandex",
        token=token,
    )
    assert isinstance(emulated, YandexMonitoringRecorder)
    assert emulated.url.startswith("http://127.0.0.1:8080/monitoring/v2/data/write?")


def test_yandex_without_folder_token_or_safe_endpoint_is_off_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(adapters_metrics, "_warned", set())
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert isinstance(build_metrics(Settings(), platform="yandex", token=token), NullRecorder)
            assert isinstance(build_metrics(Settings(FOLDER_ID="b1g"), platform="yandex"), NullRecorder)
            plain = Settings(FOLDER_ID="b1g", YC_API_ENDPOINT="http://api.example")
            assert isinstance(build_metrics(plain, platform="yandex", token=token), NullRecorder)
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("metrics off")]
    assert len(messages) == 3, messages
    assert any("FOLDER_ID" in m for m in messages) and any("https" in m for m in messages)


def test_no_platform_no_token_means_no_metrics() -> None:
    assert isinstance(build_metrics(Settings(), platform="direct"), NullRecorder)


@pytest.mark.parametrize("value", ["AWS/Lambda\n", "", "x" * 256, "bad$name"])
def test_bad_namespace_is_a_settings_error(value: str) -> None:
    with pytest.raises(ValueError, match="METRICS_NAMESPACE"):
        Settings.from_env({"METRICS_NAMESPACE": value})


# --- after emit_result -------------------------------------------------------------------------------------
def test_record_emitted_counts_a_result_once_it_got_through() -> None:
    from backups.results import EmitReport

    rec = Recording()
    event = failed()
    record_emitted(rec, event, EmitReport(event_id=event.id, delivered=["log"], failed={"webhook": "HTTP 500"}))
    assert summed(rec.points) == {("sink_failures", ("sink", "webhook")): 1.0}  # the ticket comes back
    record_emitted(rec, event, EmitReport(event_id=event.id, delivered=["log", "webhook"]))
    assert summed(rec.points) == {
        ("sink_failures", ("sink", "webhook")): 1.0,
        ("backups_failed", ("error_code", "FAILED_PRECONDITION")): 1.0,
    }


def test_metrics_settings_are_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    aliases = [f.alias for f in Settings.model_fields.values() if f.alias and f.alias.startswith("METRICS_")]
    assert sorted(aliases) == ["METRICS_BACKEND", "METRICS_ENABLED", "METRICS_FOLDER_ID", "METRICS_NAMESPACE"]
    for alias in aliases:
        assert f"`{alias}`" in readme, alias
