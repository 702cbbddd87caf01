"""Yandex Cloud: the Monitoring write request for each flow, as a loopback receiver gets it (the contract of
../shared/reference/yandex-monitoring.md), and every way a write can fail: logged once, never raised, no token."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from adapters.metrics import build_metrics
from adapters.monitoring import YandexMonitoringRecorder
from settings import Settings
from tests.metrics_helpers import failed, failed_start, succeeded, timed_out
from tests.receivers import Receiver

TOKEN = "t1.9euelZqSecretIamToken"
FLUSHED_AT = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)


class Monitoring(Receiver):
    """A loopback stand-in for the write endpoint: records each request, answers the scripted (status, body)."""

    def __init__(self) -> None:
        super().__init__(default_answer={"writtenMetricsCount": "99"})

    def body(self, i: int = -1) -> dict[str, Any]:
        loaded: dict[str, Any] = self.requests[i].json()
        return loaded


@pytest.fixture()
def monitoring() -> Iterator[Monitoring]:
    m = Monitoring()
    try:
        yield m
    finally:
        m.stop()


def recorder(endpoint: str, token: Any = lambda: SecretStr(TOKEN)) -> YandexMonitoringRecorder:
    return YandexMonitoringRecorder(folder_id="b1gfolder", token=token, endpoint=endpoint, clock=lambda: FLUSHED_AT)


def by_name(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for metric in body["metrics"]:
        out.setdefault(metric["name"], []).append(metric)
    return out


# --- the request -------------------------------------------------------------------------------------------
def test_success_flow_is_one_write_with_the_documented_shape(monitoring: Monitoring) -> None:
    rec = recorder(monitoring.url)
    rec.record_started()
    rec.record_result(succeeded(minutes=90))
    rec.flush()
    [request] = monitoring.requests
    url = urlsplit(request.path)
    assert url.path == "/monitoring/v2/data/write"
    assert parse_qs(url.query) == {"folderId": ["b1gfolder"], "service": ["custom"]}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    body = monitoring.body()
    assert body["labels"] == {"app": "yc-backup-runner"}
    metrics = by_name(body)
    assert metrics["backups.started"] == [
        {"name": "backups.started", "type": "DGAUGE", "ts": "2026-11-27T04:00:00.000Z", "value": 1.0}
    ]
    assert metrics["backups.succeeded"][0]["value"] == 1.0
    assert metrics["backup.duration_seconds"] == [
        {
            "name": "backup.duration_seconds",
            "type": "DGAUGE",
            "timeseries": [{"ts": "2026-11-27T03:30:00.000Z", "value": 5400.0}],  # when the backup ended
        }
    ]
    assert metrics["backup.polls"][0]["timeseries"][0]["value"] == 7.0


def test_failure_flow_is_labelled_by_error_code(monitoring: Monitoring) -> None:
    rec = recorder(monitoring.url)
    rec.record_result(failed(code=9))
    rec.record_result(failed(code=9))
    rec.record_result(failed_start("POLICY_NOT_APPLIED"))
    rec.flush()
    failures = {m["labels"]["error_code"]: m["value"] for m in by_name(monitoring.body())["backups.failed"]}
    assert failures == {"FAILED_PRECONDITION": 2.0, "POLICY_NOT_APPLIED": 1.0}


def test_timeout_flow(monitoring: Monitoring) -> None:
    rec = recorder(monitoring.url)
    rec.record_result(timed_out())
    rec.flush()
    metrics = by_name(monitoring.body())
    assert metrics["backups.timed_out"][0]["value"] == 1.0
    assert metrics["backup.polls"][0]["timeseries"][0]["value"] == 40.0
    assert "backups.failed" not in metrics


def test_sink_failure_flow(monitoring: Monitoring) -> None:
    rec = recorder(monitoring.url)
    rec.record_result(succeeded())
    rec.count("sink_failures", sink="webhook")
    rec.count("redeliveries")
    rec.flush()
    metrics = by_name(monitoring.body())
    assert metrics["sink.failures"] == [
        {"name": "sink.failures", "type": "DGAUGE", "ts": "2026-11-27T04:00:00.000Z", "labels": {"sink": "webhook"},
         "value": 1.0}
    ]  # fmt: skip
    assert metrics["redeliveries"][0]["value"] == 1.0


def test_backups_ending_in_the_same_millisecond_keep_both_points(monitoring: Monitoring) -> None:
    rec = recorder(monitoring.url)
    rec.record_result(succeeded(minutes=30, instance="vm1"))
    rec.record_result(succeeded(minutes=30, instance="vm2"))
    rec.flush()
    [duration] = by_name(monitoring.body())["backup.duration_seconds"]
    stamps = [p["ts"] for p in duration["timeseries"]]
    assert stamps == ["2026-11-27T02:30:00.000Z", "2026-11-27T02:30:00.001Z"]


def test_one_write_per_invocation_and_none_when_idle(monitoring: Monitoring) -> None:
    rec = recorder(monitoring.url)
    rec.flush()
    assert monitoring.requests == []
    for _ in range(20):
        rec.record_result(failed())
    rec.flush()
    assert len(monitoring.requests) == 1


def test_through_build_metrics_with_the_emulator_endpoint(monitoring: Monitoring) -> None:
    settings = Settings.from_env({"FOLDER_ID": "b1gfolder", "YC_API_ENDPOINT": monitoring.url})
    rec = build_metrics(settings, platform="yandex", token=lambda: TOKEN)
    rec.record_result(failed())
    rec.flush()
    assert parse_qs(urlsplit(monitoring.requests[0].path).query)["folderId"] == ["b1gfolder"]


# --- failures: logged once, never raised, never the token --------------------------------------------------
def failing_flush(rec: YandexMonitoringRecorder, caplog: pytest.LogCaptureFixture) -> str:
    rec.record_result(failed())
    with caplog.at_level(logging.DEBUG):
        rec.flush()  # must not raise
    lines = [r for r in caplog.records if r.getMessage() == "metrics not written"]
    assert len(lines) == 1, caplog.text
    assert TOKEN not in caplog.text
    assert getattr(lines[0], "backend", None) == "yandex"
    return str(getattr(lines[0], "reason", ""))


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (403, {"code": 7, "message": "Permission denied for folder b1gfolder"}, "HTTP 403: Permission denied"),
        (400, {"code": 3, "message": "bad ts\nat metrics[0]"}, "HTTP 400: bad ts at metrics[0]"),
        (500, b"<html>oops</html>", "HTTP 500"),
        (200, {"writtenMetricsCount": "1", "errorMessage": "label limit reached"}, "wrote 1 of 3 metrics: label"),
        (200, {"metrics_written": "0"}, "wrote 0 of 3 metrics"),
    ],
)
def test_refused_write_is_one_warning(
    monitoring: Monitoring, caplog: pytest.LogCaptureFixture, status: int, answer: Any, expected: str
) -> None:
    monitoring.answers.append((status, answer))
    reason = failing_flush(recorder(monitoring.url), caplog)
    assert expected in reason
    assert "127.0.0.1" in reason


def test_503_is_retried_once(monitoring: Monitoring) -> None:
    monitoring.answers += [(503, {"code": 14}), (200, {"metrics_written": "3"})]
    rec = recorder(monitoring.url)
    rec.record_result(failed())
    rec.flush()
    assert len(monitoring.requests) == 2


def test_unreachable_monitoring_names_the_host(caplog: pytest.LogCaptureFixture) -> None:
    reason = failing_flush(recorder("http://127.0.0.1:9"), caplog)
    assert reason.startswith("Monitoring at 127.0.0.1 unreachable")


def test_token_failure_is_a_failed_write_not_an_error(monitoring: Monitoring, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> str:
        raise RuntimeError(f"metadata said {TOKEN}")

    reason = failing_flush(recorder(monitoring.url, token=broken), caplog)
    assert reason == "no IAM token for Monitoring: RuntimeError"
    assert monitoring.requests == []


def test_plain_http_only_to_a_loopback_receiver() -> None:
    receiver = Receiver()  # the shared loopback receiver: a write accepted with a non-JSON body is fine
    try:
        rec = recorder(receiver.url)
        rec.record_result(succeeded())
        rec.flush()
        assert len(receiver.requests) == 1 and receiver.requests[0].json()["metrics"]
    finally:
        receiver.stop()
    with pytest.raises(ValueError, match="https"):
        recorder("http://monitoring.example")
