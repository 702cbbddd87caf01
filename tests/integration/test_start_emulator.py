"""The trigger domain (resolve + start) against the local Yandex Cloud emulator, through the real client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backups.errors import NothingMatched
from backups.events import failed_start_event
from backups.models import TriggerInfo
from backups.report import StartReport
from backups.request import build_request
from backups.run import start_backups
from backups.target import idempotency_key
from local.emulator import EmulatorHandle
from local.emulator.seed import (
    DEMO_FOLDER_ID,
    INSTANCE_NO_AGENT,
    INSTANCE_NO_POLICY,
    INSTANCE_OFFLINE,
    INSTANCE_OPT_OUT,
    INSTANCE_PROD_DB,
    INSTANCE_PROD_WEB,
    INSTANCE_TWO_POLICIES,
    POLICY_DAILY,
    POLICY_WEEKLY,
)
from settings import Settings
from tests.fakes import FakeQueue
from ycloud.client import YandexCloud

FOLLOWUP = "https://queue.local/followup"


@pytest.fixture()
def emu(start_emu: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    """The wall clock, backups 60 times faster."""
    return start_emu(time_scale=60.0)


def settings_for(emu: Any, **env: Any) -> Settings:
    base = {
        "YC_API_ENDPOINT": emu.url,
        "YC_IAM_TOKEN": emu.token,
        "FOLDER_ID": DEMO_FOLDER_ID,
        "FOLLOWUP_QUEUE_URL": FOLLOWUP,
        "YC_MAX_RETRIES": "2",
    }
    base.update(env)
    return Settings.model_validate(base)


def run(emu: Any, body: dict[str, Any], trigger_id: str = "timer-1", **env: Any) -> tuple[StartReport, FakeQueue]:
    settings = settings_for(emu, **env)
    queue = FakeQueue()
    request = build_request(body, settings)
    report = start_backups(
        request,
        TriggerInfo(source="yc.timer", trigger_id=trigger_id),
        cloud=YandexCloud.from_settings(settings),
        settings=settings,
        queue=queue,
    )
    return report, queue


def test_labels_without_policy_one_execute_per_target(emu: Any) -> None:
    report, queue = run(emu, {"instanceLabels": {"env": "prod"}})
    assert sorted(s.compute_instance_id for s in report.started) == sorted([INSTANCE_PROD_DB, INSTANCE_PROD_WEB])
    assert [s.compute_instance_id for s in report.skipped] == [INSTANCE_OPT_OUT]
    failed = {f.compute_instance_id: f for f in report.failed}
    assert failed[INSTANCE_OFFLINE].error.code == "AGENT_OFFLINE"
    assert failed[INSTANCE_OFFLINE].error.grpc_code == 9  # FAILED_PRECONDITION
    assert failed[INSTANCE_TWO_POLICIES].error.code == "AMBIGUOUS_POLICY"
    log = emu.state.execute_log
    assert sorted(e["computeInstanceId"] for e in log) == sorted([INSTANCE_PROD_DB, INSTANCE_PROD_WEB])
    for entry in log:
        assert entry["idempotencyKey"] == idempotency_key("timer-1", POLICY_DAILY, entry["computeInstanceId"])
    assert report.tickets_sent == 2 and len(queue.bodies(FOLLOWUP)) == 2


def test_redelivered_trigger_starts_no_second_backup(emu: Any) -> None:
    body = {"computeInstanceIds": [INSTANCE_PROD_DB, INSTANCE_PROD_WEB], "policyName": "Default daily"}
    first, _ = run(emu, body, "evt-7")
    again, _ = run(emu, body, "evt-7")
    assert len(emu.state.execute_log) == 2
    assert sorted(s.operation_id for s in first.started) == sorted(s.operation_id for s in again.started)
    assert again.failed == []


def test_offline_agent_reported_per_target(emu: Any) -> None:
    report, _ = run(emu, {"computeInstanceIds": [INSTANCE_OFFLINE, INSTANCE_PROD_DB], "policyId": POLICY_DAILY})
    assert [s.compute_instance_id for s in report.started] == [INSTANCE_PROD_DB]
    (failed,) = report.failed
    assert (failed.compute_instance_id, failed.error.code, failed.error.grpc_code) == (
        INSTANCE_OFFLINE,
        "AGENT_OFFLINE",
        9,
    )
    data = failed_start_event(failed, source="urn:test").data
    assert data.error is not None and "offline" in data.error.message
    assert [e["computeInstanceId"] for e in emu.state.execute_log] == [INSTANCE_PROD_DB]


def test_few_api_calls(emu: Any) -> None:
    run(emu, {"instanceLabels": {"env": "prod"}, "policyName": "Default daily"})
    paths = [(c["method"], c["path"]) for c in emu.state.call_log]
    executes = [p for p in paths if p[1].endswith(":execute")]
    assert len(executes) == 4  # prod-db-1, prod-web-1, prod-app-1 (offline), prod-db-2
    assert len(paths) - len(executes) == 3  # instances, policies, applications of the policy


def test_instance_name_and_not_applied(emu: Any) -> None:
    report, _ = run(emu, {"instanceName": "dev-db-1", "policyId": POLICY_DAILY})
    (failed,) = report.failed
    assert failed.error.code == "POLICY_NOT_APPLIED" and "applyIfMissing: true" in failed.error.message
    assert emu.state.execute_log == []


def test_apply_if_missing_applies_then_executes(emu: Any) -> None:
    report, _ = run(emu, {"computeInstanceId": INSTANCE_NO_POLICY, "policyId": POLICY_WEEKLY, "applyIfMissing": True})
    (started,) = report.started
    assert started.applied
    assert [e["computeInstanceId"] for e in emu.state.execute_log] == [INSTANCE_NO_POLICY]


def test_apply_on_unregistered_instance_fails(emu: Any) -> None:
    report, _ = run(emu, {"computeInstanceId": INSTANCE_NO_AGENT, "policyId": POLICY_DAILY, "applyIfMissing": True})
    assert report.started == []
    assert len(report.failed) == 1 and "applying policy" in report.failed[0].error.message


def test_nothing_matched(emu: Any) -> None:
    with pytest.raises(NothingMatched):
        run(emu, {"instanceLabels": {"env": "nowhere"}, "policyId": POLICY_DAILY})


# --- no policy given: the applied one, through proto-valid calls only (issue 11 #1; the emulator is strict) -----


def _calls(emu: Any) -> list[tuple[str, str]]:
    return [(c["method"], c["path"]) for c in emu.state.call_log if not c["path"].endswith(":execute")]


def test_one_instance_without_policy_resolves_the_applied_one(emu: Any) -> None:
    report, _ = run(emu, {"computeInstanceId": INSTANCE_PROD_DB})
    assert [(s.compute_instance_id, s.policy_id) for s in report.started] == [(INSTANCE_PROD_DB, POLICY_DAILY)]
    calls = _calls(emu)
    assert all("/policies/-/" not in path for _, path in calls)  # the "-" placeholder a strict gateway refuses
    assert len(calls) == 2  # the instance, and the policies applied to it (one: Execute checks the rest)


def test_a_name_without_policy_resolves_the_applied_one(emu: Any) -> None:
    report, _ = run(emu, {"instanceName": "prod-web-1"})
    assert [(s.compute_instance_id, s.policy_id) for s in report.started] == [(INSTANCE_PROD_WEB, POLICY_DAILY)]
    assert all("/policies/-/" not in path for _, path in _calls(emu))


def test_labels_without_policy_list_the_folder_policies_once(emu: Any) -> None:
    run(emu, {"instanceLabels": {"env": "prod"}})
    calls = _calls(emu)
    assert sum(1 for _, p in calls if p == "/backup/v1/policies") == 1  # the folder's policies, once
    assert all("/policies/-/" not in path for _, path in calls)
