"""Fault injection in the emulator: 429/503 rates with a seed, latency, dropped connections (real HTTP)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from local.emulator import EmulatorHandle, FaultRule, ManualClock
from local.emulator import seed as demo


@pytest.fixture()
def emu(start_emu: Callable[..., EmulatorHandle], clock: ManualClock) -> EmulatorHandle:
    return start_emu(clock=clock, seed="faults")


def policy_url(emu: EmulatorHandle) -> str:
    return f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}"


def statuses(http: requests.Session, url: str, n: int) -> list[int]:
    return [http.get(url).status_code for _ in range(n)]


def test_always_429_with_retry_after(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([FaultRule(rate_429=1.0, retry_after=2)])
    resp = http.get(policy_url(emu))
    assert resp.status_code == 429
    body = resp.json()
    assert body["code"] == 8 and body["message"]
    assert body["details"][0]["requestId"] == resp.headers["x-request-id"]
    assert resp.headers["Retry-After"] == "2"
    assert emu.state.call_log[-1]["fault"] == "429" and emu.state.call_log[-1]["status"] == 429


def test_503_without_retry_after(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([{"rate_503": 1.0}])
    resp = http.get(policy_url(emu))
    assert resp.status_code == 503 and resp.json()["code"] == 14
    assert "Retry-After" not in resp.headers


def test_rates_are_repeatable_with_a_seed(emu: EmulatorHandle, http: requests.Session) -> None:
    rule = FaultRule(rate_429=0.3, rate_503=0.2)
    emu.state.set_faults([rule], seed=42)
    first = statuses(http, policy_url(emu), 60)
    emu.state.set_faults([rule], seed=42)
    second = statuses(http, policy_url(emu), 60)
    assert first == second
    assert set(first) == {200, 429, 503}
    assert 5 <= first.count(429) <= 35 and 2 <= first.count(503) <= 25
    emu.state.set_faults([rule], seed=43)
    assert statuses(http, policy_url(emu), 60) != first


def test_faults_per_path_and_method(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([FaultRule(rate_503=1.0)])  # a global rule...
    emu.state.add_fault(path="/compute/v1/instances/*")  # ...and a healthier one in front for compute
    emu.state.add_fault(path="/backup/v1/policies/*:execute", methods=["POST"], rate_429=1.0)
    assert http.get(f"{emu.url}/compute/v1/instances/{demo.INSTANCE_PROD_DB}").status_code == 200
    assert http.get(policy_url(emu)).status_code == 503
    resp = http.post(f"{policy_url(emu)}:execute", json={"computeInstanceId": demo.INSTANCE_PROD_DB})
    assert resp.status_code == 429
    assert emu.state.execute_log == []  # an injected answer means the request was not processed
    emu.state.clear_faults()
    assert http.get(policy_url(emu)).status_code == 200


def test_times_limits_a_rule(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([FaultRule(rate_503=1.0, times=2)])
    assert statuses(http, policy_url(emu), 4) == [503, 503, 200, 200]


def test_dropped_connection_raises_connection_error(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([FaultRule(path="/backup/v1/policies/*:execute", drop_rate=1.0)])
    with pytest.raises(requests.ConnectionError):
        http.post(f"{policy_url(emu)}:execute", json={"computeInstanceId": demo.INSTANCE_PROD_DB}, timeout=5)
    assert emu.state.execute_log == []  # dropped before processing
    entry = emu.state.call_log[-1]
    assert entry["status"] == 0 and entry["fault"] == "drop"
    # the session recovers on a new connection
    assert http.get(policy_url(emu)).status_code == 200


def test_dropped_response_after_processing_and_idempotent_retry(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([FaultRule(path="*:execute", drop_response_rate=1.0, times=1)])
    body = {"computeInstanceId": demo.INSTANCE_PROD_DB}
    headers = {"Idempotency-Key": "retry-me"}
    with pytest.raises(requests.ConnectionError):
        http.post(f"{policy_url(emu)}:execute", json=body, headers=headers, timeout=5)
    assert len(emu.state.execute_log) == 1  # the backup started, the answer was lost
    retry = http.post(f"{policy_url(emu)}:execute", json=body, headers=headers, timeout=5)
    assert retry.status_code == 200
    assert retry.json()["id"] == emu.state.execute_log[0]["operationId"]
    assert len(emu.state.execute_log) == 1
    # without the key, the retry is refused: the first backup is running
    no_key = http.post(f"{policy_url(emu)}:execute", json=body, timeout=5)
    assert no_key.status_code == 400 and no_key.json()["code"] == 9


def test_latency_is_added(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([FaultRule(path="/operations/*", latency=1.0)])
    with pytest.raises(requests.Timeout):
        http.get(f"{emu.url}/operations/cdgnosuchoperation00", timeout=0.2)
    emu.state.clear_faults()
    assert http.get(f"{emu.url}/operations/cdgnosuchoperation00", timeout=5).status_code == 404


def test_iam_is_faulted_but_control_is_not(emu: EmulatorHandle) -> None:
    emu.state.set_faults([FaultRule(rate_503=1.0)])
    assert requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": "x"}).status_code == 503
    assert requests.get(f"{emu.url}/_emulator/executes").status_code == 200
    assert all(not c["path"].startswith("/_emulator") for c in emu.state.call_log)


def test_invalid_rules_are_refused(emu: EmulatorHandle) -> None:
    with pytest.raises(ValueError):
        FaultRule(rate_429=0.8, rate_503=0.5)
    with pytest.raises(ValueError):
        FaultRule(drop_rate=2.0)
    resp = requests.post(f"{emu.url}/_emulator/faults", json={"rules": [{"rate429": 1.5}]})
    assert resp.status_code == 400 and resp.json()["code"] == 3


def test_adding_a_rule_keeps_what_others_have_spent(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_faults([FaultRule(rate_503=1.0, times=1)])
    assert http.get(policy_url(emu)).status_code == 503
    emu.state.add_fault(path="/nothing/*", rate_429=1.0)
    assert http.get(policy_url(emu)).status_code == 200
    assert [r["spent"] for r in emu.state.fault_rules()] == [0, 1]
