"""Metrics end to end: the real handlers through LocalPlatform, then the metrics read back and checked.

Both backends, one per platform shape:

- AWS (`METRICS_BACKEND=emf`): the EMF documents the function printed on stdout (captured with capfd, read with
  tests.metrics_helpers.emf_values);
- Yandex Cloud (`METRICS_BACKEND=yandex`, YC_API_ENDPOINT = the emulator): the writes the emulator's Monitoring
  endpoint accepted (`emu.state.metric_writes`).

Each flow (success, failure, timeout, a target that cannot start, a sink that fails, metrics off) is read back
into one neutral form, `{(metric, labels): [values]}`, so both backends are checked against the same figures.
No metric may carry an instance, operation or trigger id; a metric write that fails never fails an invocation.
"""

from __future__ import annotations

import copy
import json
import socket
import time
from datetime import timedelta
from typing import Any

import pytest

from adapters.metrics import EMF_DIMENSIONS, EMF_NAMES
from adapters.monitoring import YANDEX_NAMES
from local.emulator.seed import DEMO_FOLDER_ID, INSTANCE_NO_POLICY, INSTANCE_PROD_DB, POLICY_DAILY
from tests.e2e.conftest import TIME_SCALE, Harness, LogLines, Receiver, ShiftedClock, load_event
from tests.metrics_helpers import emf_lines, emf_values

# platform shape -> the backend it ships with
BACKENDS = {"aws": "emf", "yandex": "yandex"}
BOTH = pytest.mark.parametrize("platform_kind", ["aws", "yandex"])
REQUEST = {"computeInstanceId": INSTANCE_PROD_DB, "policyId": POLICY_DAILY, "reason": "e2e metrics"}
TRIGGER_ID = "metrics-flow-1"
NAMESPACE = "e2e-backups"
NOMINAL_BACKUP_SECONDS = 600
NOMINAL_BACKUP = NOMINAL_BACKUP_SECONDS / TIME_SCALE  # the emulator's default 600 s backup lasts ~2.4 s
COUNTS = (
    "backups_started",
    "backups_succeeded",
    "backups_failed",
    "backups_timed_out",
    "sink_failures",
    "redeliveries",
)
LABELLED = ("backups_failed", "sink_failures")  # the metrics with a label (error code, sink)
Key = tuple[str, tuple[tuple[str, str], ...]]

_FROM_EMF = {emf: neutral for neutral, (emf, _unit) in EMF_NAMES.items()}
_FROM_EMF_DIMENSION = {emf: neutral for neutral, emf in EMF_DIMENSIONS.items()}
_FROM_YANDEX = {yandex: neutral for neutral, yandex in YANDEX_NAMES.items()}


# --- reading the metrics back -------------------------------------------------------------------------------


class Readback:
    """What one test's invocations published, in the neutral form, whichever the backend."""

    def __init__(self, e2e: Harness, backend: str, capfd: pytest.CaptureFixture[str]) -> None:
        self.e2e = e2e
        self.backend = backend
        self._capfd = capfd
        self._stdout = ""

    def docs(self) -> list[dict[str, Any]]:
        """The EMF documents printed so far (AWS)."""
        self._stdout += self._capfd.readouterr().out
        return emf_lines(self._stdout)

    def writes(self) -> list[dict[str, Any]]:
        """The Monitoring writes the emulator accepted so far (Yandex)."""
        writes: list[dict[str, Any]] = self.e2e.state.metric_writes
        return writes

    def raw(self) -> list[dict[str, Any]]:
        return self.docs() if self.backend == "emf" else self.writes()

    def values(self) -> dict[Key, list[float]]:
        found: dict[Key, list[float]] = {}
        if self.backend == "emf":
            for (metric, dims), values in emf_values(self.docs()).items():
                assert metric in _FROM_EMF, f"unknown EMF metric {metric}"
                assert dims[0] == ("service", "yc-backup-runner"), dims
                labels = tuple(sorted((_FROM_EMF_DIMENSION[k], v) for k, v in dims[1:]))
                found.setdefault((_FROM_EMF[metric], labels), []).extend(values)
            for name in LABELLED:  # also published per `service` alone (what the alarms watch): the same total
                total = found.pop((name, ()), [])
                assert sum(total) == sum(sum(v) for (n, labels), v in found.items() if n == name and labels)
        else:
            for write in self.writes():
                assert write["folderId"] == DEMO_FOLDER_ID and write["service"] == "custom"
                for point in write["points"]:
                    assert point["name"] in _FROM_YANDEX, f"unknown Monitoring metric {point['name']}"
                    assert point["type"] == "DGAUGE"
                    given = dict(point["labels"])
                    assert given.pop("app") == NAMESPACE  # the common label, METRICS_NAMESPACE
                    key = (_FROM_YANDEX[point["name"]], tuple(sorted(given.items())))
                    found.setdefault(key, []).append(float(point["value"]))
        return found

    def totals(self) -> dict[Key, float]:
        """The counts added up over every invocation (what an alarm's sum over a window sees)."""
        return {key: sum(v) for key, v in self.values().items() if key[0] in COUNTS}

    def gauge(self, name: str) -> list[float]:
        return self.values().get((name, ()), [])

    def assert_no_ids(self, *ids: str) -> None:
        """No instance / operation / trigger id anywhere in what was published, and only the bounded labels."""
        assert all(ids)
        text = json.dumps(self.raw() if self.backend == "emf" else [w["points"] for w in self.writes()])
        for value in ids:
            assert value not in text, f"{value!r} appears in a metric"
        for _name, labels in self.values():
            assert {k for k, _ in labels} <= {"error_code", "sink"}, labels


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- the flows ------------------------------------------------------------------------------------------------


def schedule_event(kind: str, request: dict[str, Any], trigger_id: str) -> dict[str, Any]:
    if kind == "yandex":
        event = load_event("yc-timer")
        event["messages"][0]["event_metadata"]["event_id"] = trigger_id
        event["messages"][0]["details"]["payload"] = json.dumps(request)
        return event
    event = load_event("aws-eventbridge-schedule")
    event["id"] = trigger_id
    event["detail"] = copy.deepcopy(request)
    return event


@pytest.fixture(autouse=True)
def _logger_before_capture() -> None:
    """The function's logger binds its handler to the sys.stdout of its first use: make that pytest's own, not
    capfd's (closed after the test), so the EMF capture below takes the function's stdout only."""
    from observability import get_logger

    get_logger()


@pytest.fixture()
def metrics(e2e: Harness, platform_kind: str, capfd: pytest.CaptureFixture[str]) -> Readback:
    """Metrics on, the platform's backend, read back after each flow."""
    backend = BACKENDS[platform_kind]
    e2e.setenv(METRICS_ENABLED="true", METRICS_BACKEND=backend, METRICS_NAMESPACE=NAMESPACE)
    capfd.readouterr()  # what the fixtures printed is not the function's
    return Readback(e2e, backend, capfd)


def start(e2e: Harness, kind: str, request: dict[str, Any] = REQUEST, trigger_id: str = TRIGGER_ID) -> Any:
    return e2e.trigger(schedule_event(kind, request, trigger_id))


def no_leftovers(e2e: Harness) -> None:
    assert e2e.invocation_errors == []
    for name in ("requests", "followups", "results"):
        assert e2e.platform.drain(name, dead_letter=True) == []


@BOTH
def test_success(e2e: Harness, platform_kind: str, metrics: Readback) -> None:
    began = time.monotonic()
    reply = start(e2e, platform_kind)
    [execute] = e2e.executes()
    assert reply["started"][0]["operationId"] == execute["operationId"]
    assert metrics.totals() == {("backups_started", ()): 1.0}  # flushed when the trigger's invocation ended

    [event] = e2e.run_until_results(1, settle=True)
    elapsed = time.monotonic() - began

    data = event["data"]
    assert data["status"] == "succeeded"
    assert metrics.totals() == {("backups_started", ()): 1.0, ("backups_succeeded", ()): 1.0}
    [duration] = metrics.gauge("backup_duration_seconds")
    assert duration == pytest.approx(data["durationSeconds"], abs=1)
    assert NOMINAL_BACKUP * 0.8 <= duration <= elapsed + 1  # the backup's own length, within the flow's
    [polls] = metrics.gauge("backup_polls")
    assert polls == data["polls"] >= 1
    assert polls == float(int(polls)) and polls <= 20
    metrics.assert_no_ids(INSTANCE_PROD_DB, execute["operationId"], TRIGGER_ID, POLICY_DAILY)
    no_leftovers(e2e)


@BOTH
def test_backup_failure(e2e: Harness, platform_kind: str, metrics: Readback) -> None:
    e2e.state.set_failure(INSTANCE_PROD_DB, code=13, message="backup failed: not enough space in the vault", at=0.4)
    start(e2e, platform_kind)
    [event] = e2e.run_until_results(1, settle=True)
    assert event["data"]["status"] == "failed" and event["data"]["error"]["code"] == "INTERNAL"

    totals = metrics.totals()
    assert totals == {("backups_started", ()): 1.0, ("backups_failed", (("error_code", "INTERNAL"),)): 1.0}
    [polls] = metrics.gauge("backup_polls")
    assert polls == event["data"]["polls"] >= 1
    metrics.assert_no_ids(INSTANCE_PROD_DB, e2e.executes()[0]["operationId"], TRIGGER_ID)
    no_leftovers(e2e)


@BOTH
def test_timeout(e2e: Harness, platform_kind: str, metrics: Readback) -> None:
    """The deadline passes for the function's clock (an hour ahead) while the backup still runs on the emulator."""
    from handlers.followup import handle

    e2e.setenv(FOLLOWUP_DEADLINE_SECONDS=60)
    e2e.state.set_backup_duration(INSTANCE_PROD_DB, 1_000_000)
    start(e2e, platform_kind)

    def later(event: dict[str, Any], context: Any) -> Any:
        return handle(event, context, e2e.deps(clock=ShiftedClock(timedelta(hours=1))))

    [event] = e2e.run_until_results(1, followup=later, settle=True)
    assert event["data"]["status"] == "timed_out"

    assert metrics.totals() == {("backups_started", ()): 1.0, ("backups_timed_out", ()): 1.0}
    assert all(key[0] != "backups_succeeded" and key[0] != "backups_failed" for key in metrics.values())
    for polls in metrics.gauge("backup_polls"):
        assert polls == event["data"]["polls"] >= 1
    for duration in metrics.gauge("backup_duration_seconds"):
        assert duration >= 60  # at least the deadline, by the function's clock
    metrics.assert_no_ids(INSTANCE_PROD_DB, e2e.executes()[0]["operationId"], TRIGGER_ID)
    no_leftovers(e2e)


@BOTH
def test_target_that_cannot_start(e2e: Harness, platform_kind: str, metrics: Readback) -> None:
    reply = start(e2e, platform_kind, {"computeInstanceId": INSTANCE_NO_POLICY})
    assert reply["ok"] is False and reply["failed"][0]["code"] == "POLICY_NOT_APPLIED"
    [event] = e2e.run_until_results(1, settle=True)
    assert event["data"]["status"] == "failed"

    # failed by its code, nothing started, no duration or polls (it never ran)
    assert metrics.totals() == {("backups_failed", (("error_code", "POLICY_NOT_APPLIED"),)): 1.0}
    assert metrics.gauge("backup_polls") == []
    assert e2e.executes() == []
    metrics.assert_no_ids(INSTANCE_NO_POLICY, TRIGGER_ID)
    no_leftovers(e2e)


@BOTH
def test_sink_failure_counts_the_result_once_delivered(
    e2e: Harness, platform_kind: str, metrics: Readback, receiver: Receiver, log_lines: LogLines
) -> None:
    """The webhook is down: the follow-up counts the failed sink and the redelivery, not the result; once the
    webhook is back the redelivered ticket delivers it and the result is counted, once."""
    e2e.setenv(RESULT_WEBHOOK_URL=f"http://127.0.0.1:{closed_port()}/results", RESULT_WEBHOOK_SECRET="s3cr3t-1")
    start(e2e, platform_kind)
    e2e.run_until_results(1)  # the queue sink took it, the webhook did not: the ticket comes back
    assert metrics.totals() == {
        ("backups_started", ()): 1.0,
        ("sink_failures", (("sink", "webhook"),)): 1.0,
        ("redeliveries", ()): 1.0,
    }
    assert metrics.gauge("backup_duration_seconds") == [] and metrics.gauge("backup_polls") == []
    assert log_lines.messages("metrics not written") == []
    # Yandex's queue trigger has no partial batch reply: the follow-up sends the ticket back itself (handlers.batch)
    assert e2e.invocation_errors == []
    e2e.invocation_errors.clear()

    e2e.setenv(RESULT_WEBHOOK_URL=f"{receiver.url}/results")
    results = e2e.run_until_results(2, settle=True)
    assert len({r["id"] for r in results}) == 1 and len(receiver.requests) == 1

    assert metrics.totals() == {
        ("backups_started", ()): 1.0,
        ("sink_failures", (("sink", "webhook"),)): 1.0,
        ("redeliveries", ()): 1.0,
        ("backups_succeeded", ()): 1.0,
    }
    assert len(metrics.gauge("backup_duration_seconds")) == 1 and len(metrics.gauge("backup_polls")) == 1
    metrics.assert_no_ids(INSTANCE_PROD_DB, e2e.executes()[0]["operationId"], TRIGGER_ID, "s3cr3t-1")
    no_leftovers(e2e)


@BOTH
def test_sink_failure_of_a_target_that_cannot_start(
    e2e: Harness, platform_kind: str, metrics: Readback, receiver: Receiver
) -> None:
    """The failed-start result cannot reach the webhook: the trigger is given back (it raises), the failed sink
    is counted and the result is not, until a retried trigger delivers it."""
    from backups.errors import RedeliveryRequested

    e2e.setenv(RESULT_WEBHOOK_URL=f"http://127.0.0.1:{closed_port()}/results", RESULT_WEBHOOK_SECRET="s3cr3t-2")
    with pytest.raises(RedeliveryRequested):
        start(e2e, platform_kind, {"computeInstanceId": INSTANCE_NO_POLICY})
    totals = metrics.totals()
    assert totals.get(("sink_failures", (("sink", "webhook"),))) == 1.0
    assert not any(key[0] == "backups_failed" for key in totals)

    e2e.setenv(RESULT_WEBHOOK_URL=f"{receiver.url}/results")
    reply = start(e2e, platform_kind, {"computeInstanceId": INSTANCE_NO_POLICY})  # the platform's retry
    assert reply["ok"] is False and len(receiver.requests) == 1
    totals = metrics.totals()
    assert totals.get(("backups_failed", (("error_code", "POLICY_NOT_APPLIED"),))) == 1.0
    assert totals.get(("sink_failures", (("sink", "webhook"),))) == 1.0


@BOTH
def test_sink_failure_of_a_target_that_cannot_start_counts_the_redelivery(
    e2e: Harness, platform_kind: str, metrics: Readback
) -> None:
    from backups.errors import RedeliveryRequested

    e2e.setenv(RESULT_WEBHOOK_URL=f"http://127.0.0.1:{closed_port()}/results", RESULT_WEBHOOK_SECRET="s3cr3t-3")
    with pytest.raises(RedeliveryRequested):  # the event goes back to the platform
        start(e2e, platform_kind, {"computeInstanceId": INSTANCE_NO_POLICY})
    assert metrics.totals() == {("sink_failures", (("sink", "webhook"),)): 1.0, ("redeliveries", ()): 1.0}


@pytest.mark.parametrize("platform_kind", ["aws", "yandex"])
def test_sink_failure_of_a_queued_target_that_cannot_start(e2e: Harness, platform_kind: str, metrics: Readback) -> None:
    """The same on the request queue (one message of a batch): the message comes back, and is counted."""
    e2e.setenv(RESULT_WEBHOOK_URL=f"http://127.0.0.1:{closed_port()}/results", RESULT_WEBHOOK_SECRET="s3cr3t-4")
    body = json.dumps({"computeInstanceId": INSTANCE_NO_POLICY})
    if platform_kind == "aws":
        event = load_event("aws-sqs")
        event["Records"][0]["body"] = body
        reply = e2e.trigger(event)
        assert [f["itemIdentifier"] for f in reply["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    else:
        event = load_event("yc-message-queue")
        event["messages"][0]["details"]["message"]["body"] = body
        # no partial batch reply on Yandex: the function sends that message back itself, the batch is acknowledged
        assert e2e.trigger(event) == {"ok": True}
    assert metrics.totals() == {("sink_failures", (("sink", "webhook"),)): 1.0, ("redeliveries", ()): 1.0}


@BOTH
def test_metrics_disabled(e2e: Harness, platform_kind: str, metrics: Readback) -> None:
    e2e.setenv(METRICS_ENABLED="false")
    start(e2e, platform_kind)
    start(e2e, platform_kind, {"computeInstanceId": INSTANCE_NO_POLICY}, trigger_id="metrics-flow-2")
    events = e2e.run_until_results(2, settle=True)
    assert sorted(e["data"]["status"] for e in events) == ["failed", "succeeded"]
    assert metrics.docs() == []
    assert e2e.state.metric_writes == []
    no_leftovers(e2e)


# --- a metric write that fails ----------------------------------------------------------------------------------


@pytest.mark.parametrize("platform_kind", ["yandex"])
@pytest.mark.parametrize("refusal", ["unavailable", "foreign folder"])
def test_refused_write_never_fails_the_invocation(
    e2e: Harness, platform_kind: str, metrics: Readback, log_lines: LogLines, refusal: str
) -> None:
    if refusal == "unavailable":
        e2e.state.add_fault(path="/monitoring/v2/data/write", rate_503=1.0)
        why = "HTTP 503"
    else:
        e2e.setenv(METRICS_FOLDER_ID="b1gsomeoneelsesfolder")
        why = "HTTP 40"
    reply = start(e2e, platform_kind)
    assert reply["ok"] is True and len(reply["started"]) == 1  # the normal reply
    [warning] = log_lines.messages("metrics not written")
    assert warning["level"] == "WARNING" and warning["backend"] == "yandex"
    assert "127.0.0.1" in warning["reason"] and why in warning["reason"]

    [event] = e2e.run_until_results(1, settle=True)  # the backup goes on, its result is delivered
    assert event["data"]["status"] == "succeeded"
    assert len(log_lines.messages("metrics not written")) == 2  # one per invocation that had points
    assert e2e.state.metric_writes == []
    assert e2e.token not in log_lines.text
    no_leftovers(e2e)
