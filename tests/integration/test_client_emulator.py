"""The client against the local Yandex Cloud emulator over real HTTP (local.emulator, its demo folder)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.emulator import EmulatorHandle
from local.emulator import seed as demo
from settings import Settings
from tests.integration.test_client_transport import capture_logs
from ycloud import auth
from ycloud.client import YandexCloud
from ycloud.errors import CloudError
from ycloud.transport import RetryPolicy

FAST_RETRIES = RetryPolicy(max_retries=4, backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture()
def emu(start_emu: Callable[..., EmulatorHandle]) -> Iterator[EmulatorHandle]:
    """The wall clock, backups 60 times faster; the client's token cache is cleared around each test."""
    auth.clear_token_cache()
    try:
        yield start_emu(time_scale=60.0)
    finally:
        auth.clear_token_cache()


def client(emu: Any, **env: str) -> YandexCloud:
    values = {"YC_API_ENDPOINT": emu.url, "YC_IAM_TOKEN": emu.token, **env}
    return YandexCloud.from_settings(Settings.from_env({k: v for k, v in values.items() if v}), retry=FAST_RETRIES)


# --- happy paths -------------------------------------------------------------------------------------------


def test_policies_and_applications(emu: Any) -> None:
    yc = client(emu)
    assert yc.backup_policies.get(demo.POLICY_DAILY).name == "Default daily"
    names = {p.name for p in yc.backup_policies.list(folder_id=demo.DEMO_FOLDER_ID)}
    assert names == {"Default daily", "Default weekly", "Default monthly"}
    on_two = {p.id for p in yc.backup_policies.list(compute_instance_id=demo.INSTANCE_TWO_POLICIES)}
    assert on_two == {demo.POLICY_DAILY, demo.POLICY_WEEKLY}

    by_policy = yc.backup_policies.list_applications(policy_id=demo.POLICY_WEEKLY)
    assert [(a.policy_id, a.compute_instance_id) for a in by_policy] == [
        (demo.POLICY_WEEKLY, demo.INSTANCE_TWO_POLICIES)
    ]
    # "Which policy is applied here" is Policy.List by instance (the proto-valid form), not ListApplications.
    by_instance = yc.backup_policies.list(compute_instance_id=demo.INSTANCE_PROD_DB)
    assert [p.id for p in by_instance] == [demo.POLICY_DAILY]
    by_daily = yc.backup_policies.list_applications(demo.POLICY_DAILY, show_processing=True)
    assert {a.compute_instance_id for a in by_daily} >= {demo.INSTANCE_PROD_DB, demo.INSTANCE_PROD_WEB}


def test_compute_get_list_filter_and_paging(emu: Any) -> None:
    yc = client(emu)
    assert yc.compute.get(demo.INSTANCE_PROD_DB).labels == {"env": "prod", "role": "db"}
    everything = list(yc.compute.list(demo.DEMO_FOLDER_ID))
    calls = yc.calls
    paged = list(yc.compute.list(demo.DEMO_FOLDER_ID, page_size=2))
    assert [i.id for i in paged] == [i.id for i in everything] and len(everything) > 4
    assert yc.calls - calls == (len(everything) + 1) // 2  # one call per page of two
    first = yc.compute.list_page(demo.DEMO_FOLDER_ID, page_size=2)
    second = yc.compute.list_page(demo.DEMO_FOLDER_ID, page_size=2, page_token=first.next_page_token)
    assert [i.id for i in first.instances + second.instances] == [i.id for i in everything[:4]]
    stopped = list(yc.compute.list(demo.DEMO_FOLDER_ID, filter='status = "STOPPED"'))
    assert [i.id for i in stopped] == [demo.INSTANCE_STOPPED]


def test_resources_get_and_list(emu: Any) -> None:
    yc = client(emu)
    resource = yc.backup_resources.get(demo.INSTANCE_PROD_DB)
    assert resource.compute_instance_id == demo.INSTANCE_PROD_DB and resource.online
    listed = [r.compute_instance_id for r in yc.backup_resources.list(demo.DEMO_FOLDER_ID, page_size=3)]
    assert demo.INSTANCE_PROD_DB in listed and demo.INSTANCE_NO_AGENT not in listed
    assert len(listed) == len(set(listed))


def test_execute_runs_to_completion_and_the_operation_is_followed(emu: Any) -> None:
    yc = client(emu)
    op = yc.backup_policies.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, idempotency_key="run-1")
    assert not op.done and op.metadata.compute_instance_id == demo.INSTANCE_PROD_DB
    emu.state.advance_clock(3600)
    done = yc.operations.get(op.id)
    assert done.done and done.succeeded and done.progress in (None, 100.0)


def test_apply_and_cancel(emu: Any) -> None:
    yc = client(emu)
    applied = yc.backup_policies.apply(demo.POLICY_MONTHLY, demo.INSTANCE_NO_POLICY, idempotency_key="apply-1")
    assert applied.metadata.policy_id == demo.POLICY_MONTHLY
    running = yc.backup_policies.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_WEB)
    cancelled = yc.operations.cancel(running.id)
    assert cancelled.done and cancelled.error is not None and cancelled.error.code == 1  # CANCELLED


# --- errors --------------------------------------------------------------------------------------------------


def test_not_found(emu: Any) -> None:
    yc = client(emu)
    for call in (
        lambda: yc.backup_policies.get("cbpnosuchpolicy00000"),
        lambda: yc.compute.get("fhmnosuchinstance000"),
        lambda: yc.operations.get("cdgnosuchoperation00"),
        lambda: yc.backup_resources.get(demo.INSTANCE_NO_AGENT),  # not registered in Cloud Backup
    ):
        with pytest.raises(CloudError) as info:
            call()
        err = info.value
        assert (err.name, err.http_status) == ("NOT_FOUND", 404)
        assert err.request_id and err.client_request_id


def test_failed_precondition(emu: Any) -> None:
    yc = client(emu)
    for instance in (demo.INSTANCE_OFFLINE, demo.INSTANCE_NO_POLICY, demo.INSTANCE_STOPPED):
        with pytest.raises(CloudError) as info:
            yc.backup_policies.execute(demo.POLICY_DAILY, instance, idempotency_key=f"k-{instance}")
        assert (info.value.name, info.value.http_status, info.value.transient) == ("FAILED_PRECONDITION", 400, False)
    assert emu.state.execute_log == []


def test_invalid_argument(emu: Any) -> None:
    yc = client(emu)
    with pytest.raises(CloudError) as info:
        list(yc.compute.list(demo.DEMO_FOLDER_ID, filter="labels.env = 'prod'"))
    assert info.value.name == "INVALID_ARGUMENT" and info.value.http_status == 400
    with pytest.raises(CloudError) as info:
        yc.compute.list_page(demo.DEMO_FOLDER_ID, page_size=5000)
    assert info.value.name == "INVALID_ARGUMENT"


def test_permission_denied_on_another_folder(emu: Any) -> None:
    with pytest.raises(CloudError) as info:
        client(emu).compute.get(demo.INSTANCE_OTHER_FOLDER)
    assert (info.value.name, info.value.http_status) == ("PERMISSION_DENIED", 403)


def test_a_bad_static_token_is_401_and_not_retried(emu: Any) -> None:
    yc = client(emu, YC_IAM_TOKEN="t1.not-a-token")
    with pytest.raises(CloudError) as info:
        yc.compute.get(demo.INSTANCE_PROD_DB)
    assert (info.value.name, info.value.http_status) == ("UNAUTHENTICATED", 401)
    assert yc.attempts == 1 and "t1.not-a-token" not in str(info.value)


# --- idempotency and faults ---------------------------------------------------------------------------------


def test_the_same_idempotency_key_returns_the_same_operation(emu: Any) -> None:
    yc = client(emu)
    first = yc.backup_policies.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, idempotency_key="same-key")
    again = yc.backup_policies.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, idempotency_key="same-key")
    assert again.id == first.id
    assert len(emu.state.execute_log) == 1


def test_a_lost_answer_to_execute_is_retried_and_starts_one_backup(emu: Any) -> None:
    # Given an Execute the emulator performs but whose answer is lost once
    emu.state.add_fault(path="/backup/v1/policies/*:execute", drop_response_rate=1.0, times=1)
    yc = client(emu)
    # When the client sends it with an Idempotency-Key
    op = yc.backup_policies.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, idempotency_key="lost-answer")
    # Then the retry replays the same operation: one backup, two attempts
    assert yc.attempts == 2
    log = emu.state.execute_log
    assert len(log) == 1 and log[0]["operationId"] == op.id


def test_transient_faults_are_retried(emu: Any) -> None:
    emu.state.add_fault(path="/operations/*", rate_503=1.0, times=2)
    emu.state.add_fault(path="/compute/v1/instances/*", rate_429=1.0, retry_after=0, times=1)
    emu.state.add_fault(path="/backup/v1/resources/*", drop_rate=1.0, times=1)
    yc = client(emu)
    op = yc.backup_policies.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, idempotency_key="k")
    assert yc.operations.get(op.id).id == op.id
    assert yc.compute.get(demo.INSTANCE_PROD_DB).id == demo.INSTANCE_PROD_DB
    assert yc.backup_resources.get(demo.INSTANCE_PROD_DB).online
    assert (yc.calls, yc.attempts) == (4, 8)
    faults = [c["fault"] for c in emu.state.call_log if c["fault"]]
    assert sorted(faults) == ["429", "503", "503", "drop"]


def test_a_post_without_key_meeting_a_503_is_not_retried(emu: Any) -> None:
    emu.state.add_fault(path="/backup/v1/policies/*:execute", rate_503=1.0, times=1)
    yc = client(emu)
    with pytest.raises(CloudError) as info:
        yc.backup_policies.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB)
    assert info.value.name == "UNAVAILABLE" and yc.attempts == 1


# --- authorized key ----------------------------------------------------------------------------------------


def test_an_authorized_key_is_exchanged_and_refreshed_after_a_401(emu: Any) -> None:
    key = emu.state.create_authorized_key(demo.DEMO_SA_ID)
    key_json = json.dumps(key)
    with capture_logs() as records:
        yc = client(emu, YC_IAM_TOKEN="", YC_SERVICE_ACCOUNT_KEY=key_json)
        assert yc.compute.get(demo.INSTANCE_PROD_DB).name == "prod-db-1"
        issued = [t for t, info in emu.state.tokens.items() if info.subject_id == demo.DEMO_SA_ID]
        assert len(issued) == 1
        # When the server forgets the token, the next call gets a 401, exchanges the key again and succeeds
        emu.state.revoke_token(issued[0])
        assert yc.backup_policies.get(demo.POLICY_DAILY).id == demo.POLICY_DAILY
        assert yc.transport.auth_calls == 2 and (yc.calls, yc.attempts) == (2, 3)
        fresh = [t for t, info in emu.state.tokens.items() if info.subject_id == demo.DEMO_SA_ID]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in records)
    for secret in [issued[0], *fresh, key["private_key"][30:90]]:
        assert secret not in logged and secret not in repr(yc)
    assert any(getattr(r, "path", "") == "/iam/v1/tokens" for r in records)


def test_an_unknown_key_is_refused_by_iam(emu: Any) -> None:
    key = emu.state.create_authorized_key(demo.DEMO_SA_ID)
    key["id"] = "ajeunknownkey0000000"
    yc = client(emu, YC_IAM_TOKEN="", YC_SERVICE_ACCOUNT_KEY=json.dumps(key))
    with pytest.raises(CloudError) as info:
        yc.compute.get(demo.INSTANCE_PROD_DB)
    assert info.value.name == "UNAUTHENTICATED" and info.value.path == "/iam/v1/tokens"


def test_debug_log_carries_the_server_request_id(emu: Any) -> None:
    with capture_logs() as records:
        client(emu).compute.get(demo.INSTANCE_PROD_DB)
    [call] = [r for r in records if getattr(r, "path", "") == f"/compute/v1/instances/{demo.INSTANCE_PROD_DB}"]
    assert call.levelno == logging.DEBUG
    assert getattr(call, "request_id", "") == emu.state.call_log[-1]["requestId"]
