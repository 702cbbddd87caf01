"""The emulator's control surface over HTTP (/_emulator/), the command line, and concurrent use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from local.emulator import EmulatorHandle
from local.emulator import seed as demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def emu(start_emu: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    # The wall clock here (out-of-process style); time only moves through POST /_emulator/clock in these tests.
    return start_emu()


def ctl(emu: EmulatorHandle, method: str, path: str, json: Any = None, **kw: Any) -> Any:
    resp = requests.request(method, f"{emu.url}/_emulator{path}", json=json, timeout=10, **kw)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"]
    return resp.json()


def execute(http: requests.Session, emu: EmulatorHandle, instance: str, policy: str = demo.POLICY_DAILY) -> Any:
    return http.post(f"{emu.url}/backup/v1/policies/{policy}:execute", json={"computeInstanceId": instance})


def test_state_settings_and_clock(emu: EmulatorHandle, http: requests.Session) -> None:
    state = ctl(emu, "GET", "/state")
    assert {i["id"] for i in state["instances"]} >= {demo.INSTANCE_PROD_DB, demo.INSTANCE_OFFLINE}
    assert {p["name"] for p in state["policies"]} >= {"Default daily", "Default weekly", "Default monthly"}
    settings = ctl(emu, "POST", "/settings", {"defaultBackupDuration": 7200, "progressMode": "string"})
    assert settings["defaultBackupDuration"] == 7200 and settings["progressMode"] == "string"
    op = execute(http, emu, demo.INSTANCE_PROD_DB).json()
    ctl(emu, "POST", "/clock", {"advance": 3600})
    cur = http.get(f"{emu.url}/operations/{op['id']}").json()
    assert 50.0 <= float(cur["metadata"]["progressPercentage"]) < 51.0  # plus the few real ms since the start
    ctl(emu, "POST", "/clock", {"advance": 3600})
    assert http.get(f"{emu.url}/operations/{op['id']}").json()["done"] is True


def test_instances_over_http(emu: EmulatorHandle, http: requests.Session) -> None:
    created = ctl(
        emu,
        "POST",
        "/instances/fhmnewinstance000001",
        {"name": "new-vm", "labels": {"env": "prod"}, "zoneId": "ru-central1-d", "backupDuration": 60},
    )
    assert created["folder_id"] == demo.DEMO_FOLDER_ID
    got = http.get(f"{emu.url}/compute/v1/instances/fhmnewinstance000001").json()
    assert got["name"] == "new-vm" and got["labels"] == {"env": "prod"} and got["zoneId"] == "ru-central1-d"
    ctl(emu, "POST", "/applications", {"policyId": demo.POLICY_DAILY, "computeInstanceId": "fhmnewinstance000001"})
    ctl(emu, "POST", "/instances/fhmnewinstance000001", {"agentOnline": False})
    assert execute(http, emu, "fhmnewinstance000001").json()["code"] == 9
    ctl(emu, "POST", "/instances/fhmnewinstance000001", {"agentOnline": True, "failure": {"code": "INTERNAL", "at": 0}})
    op = execute(http, emu, "fhmnewinstance000001").json()
    assert http.get(f"{emu.url}/operations/{op['id']}").json()["error"]["code"] == 13
    assert ctl(emu, "GET", "/instances/fhmnewinstance000001")["failure"]["code"] == 13
    ctl(
        emu,
        "DELETE",
        "/applications",
        params={"policyId": demo.POLICY_DAILY, "computeInstanceId": "fhmnewinstance000001"},
    )
    assert execute(http, emu, "fhmnewinstance000001").json()["code"] == 9
    ctl(emu, "DELETE", "/instances/fhmnewinstance000001")
    assert http.get(f"{emu.url}/compute/v1/instances/fhmnewinstance000001").status_code == 404
    bad = requests.post(f"{emu.url}/_emulator/instances/fhmproddb00000000001", json={"noSuchField": 1})
    assert bad.status_code == 400 and bad.json()["code"] == 3
    missing = requests.get(f"{emu.url}/_emulator/instances/fhmnothere0000000000")
    assert missing.status_code == 404


def test_policies_subjects_tokens_over_http(emu: EmulatorHandle) -> None:
    ctl(emu, "POST", "/policies/cbpnewpolicy00000001", {"folderId": demo.DEMO_FOLDER_ID, "name": "Hourly"})
    subject = ctl(
        emu,
        "POST",
        "/subjects",
        {"subjectId": "ajenewuser0000000001", "folders": [demo.DEMO_FOLDER_ID], "readOnly": True},
    )
    headers = {"Authorization": f"Bearer {subject['token']}"}
    got = requests.get(f"{emu.url}/backup/v1/policies/cbpnewpolicy00000001", headers=headers)
    assert got.status_code == 200 and got.json()["name"] == "Hourly"
    short = ctl(emu, "POST", "/tokens", {"subjectId": "ajenewuser0000000001", "lifetime": 30})
    assert "expiresAt" in short
    fixed = ctl(emu, "POST", "/tokens", {"subjectId": "ajenewuser0000000001", "token": "t1.fixed.token"})
    assert fixed["token"] == "t1.fixed.token"
    ok = requests.get(
        f"{emu.url}/backup/v1/policies/cbpnewpolicy00000001", headers={"Authorization": "Bearer t1.fixed.token"}
    )
    assert ok.status_code == 200


def test_keys_over_http(emu: EmulatorHandle) -> None:
    key = ctl(emu, "POST", "/keys", {"serviceAccountId": demo.DEMO_SA_ID})
    now = emu.state.now()
    token = jwt.encode(
        {
            "iss": key["service_account_id"],
            "aud": "https://iam.api.cloud.yandex.net/iam/v1/tokens",
            "iat": int(now),
            "exp": int(now) + 600,
        },
        key["private_key"],
        algorithm="PS256",
        headers={"kid": key["id"]},
    )
    resp = requests.post(f"{emu.url}/iam/v1/tokens", json={"jwt": token})
    assert resp.status_code == 200 and resp.json()["iamToken"].startswith("t1.")


def test_logs_faults_and_reset_over_http(emu: EmulatorHandle, http: requests.Session) -> None:
    execute(http, emu, demo.INSTANCE_PROD_DB)
    http.get(f"{emu.url}/backup/v1/policies/cbpnosuchpolicy00000")
    executes = ctl(emu, "GET", "/executes")["executes"]
    assert [(e["policyId"], e["computeInstanceId"]) for e in executes] == [(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB)]
    assert {"time", "at", "idempotencyKey", "operationId"} <= set(executes[0])
    calls = ctl(emu, "GET", "/calls")["calls"]
    assert [(c["method"], c["status"]) for c in calls] == [("POST", 200), ("GET", 404)]
    assert calls[0]["path"] == f"/backup/v1/policies/{demo.POLICY_DAILY}:execute"

    rules = ctl(emu, "POST", "/faults", {"rules": [{"path": "/backup/*", "rate503": 1.0, "retryAfter": 1}], "seed": 7})
    assert rules["rules"][0]["rate_503"] == 1.0
    assert ctl(emu, "GET", "/faults")["rules"] == rules["rules"]
    faulted = http.get(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}")
    assert faulted.status_code == 503 and faulted.headers["Retry-After"] == "1"
    ctl(emu, "DELETE", "/faults")
    assert http.get(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}").status_code == 200

    ctl(emu, "DELETE", "/logs")
    assert ctl(emu, "GET", "/calls")["calls"] == [] and ctl(emu, "GET", "/executes")["executes"] == []

    ctl(emu, "POST", "/instances/fhmtemp0000000000001", {"name": "temp"})
    ctl(emu, "POST", "/reset")
    assert requests.get(f"{emu.url}/_emulator/instances/fhmtemp0000000000001").status_code == 404
    assert execute(http, emu, demo.INSTANCE_PROD_DB).status_code == 200  # the running backup is gone too
    ctl(emu, "POST", "/reset", {"demo": False})
    assert http.get(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}").status_code == 401  # no tokens left


def test_large_folder_over_http(emu: EmulatorHandle, http: requests.Session) -> None:
    out = ctl(emu, "POST", "/large-folder", {"folderId": "b1glargefolder000001", "count": 50, "labels": {"tier": "a"}})
    assert len(out["instanceIds"]) == 50
    listed = http.get(f"{emu.url}/compute/v1/instances", params={"folderId": "b1glargefolder000001"}).json()
    assert len(listed["instances"]) == 50 and listed["instances"][0]["labels"] == {"tier": "a"}
    apps = http.get(
        f"{emu.url}/backup/v1/policies/{out['policyId']}/applications", params={"showProcessing": "false"}
    ).json()
    assert len(apps["applications"]) == 50


def test_unknown_control_endpoint(emu: EmulatorHandle) -> None:
    resp = requests.get(f"{emu.url}/_emulator/nothing")
    assert resp.status_code == 404 and resp.json()["code"] == 5


def test_concurrent_executes_start_one_backup_per_instance(emu: EmulatorHandle) -> None:
    ids = demo.create_large_folder(emu.state, count=40)
    policy = demo.large_folder_policy_id(demo.BENCH_FOLDER_ID)

    def run(job: tuple[str, int]) -> int:
        instance, attempt = job
        headers = {"Authorization": f"Bearer {emu.token}"}
        if attempt % 2:  # half of the callers share a key per instance, the rest send none
            headers["Idempotency-Key"] = f"k-{instance}"
        resp = requests.post(
            f"{emu.url}/backup/v1/policies/{policy}:execute",
            json={"computeInstanceId": instance},
            headers=headers,
            timeout=30,
        )
        return resp.status_code

    jobs = [(i, n) for i in ids for n in range(4)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(run, jobs))
    assert set(codes) <= {200, 400}
    log = emu.state.execute_log
    assert sorted(e["computeInstanceId"] for e in log) == sorted(ids)  # exactly one backup per instance


def test_command_line(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.emulator", "--port", "0", "--time-scale", "60", "--key-file", str(key_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("# Yandex Cloud emulator listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1]
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        token = lines[1].removeprefix("export YC_IAM_TOKEN=")
        assert lines[0] == f"export YC_API_ENDPOINT={url}" and token == demo.DEMO_TOKEN
        assert lines[2] == f"export FOLDER_ID={demo.DEMO_FOLDER_ID}"  # what the function reads: eval-able
        resp = requests.get(
            f"{url}/compute/v1/instances/{demo.INSTANCE_PROD_DB}", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 200
        assert requests.get(f"{url}/_emulator/settings").json()["timeScale"] == 60.0
        deadline = time.monotonic() + 30
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert key_file.exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_resources_view_on_the_state(emu: EmulatorHandle) -> None:
    resources = emu.state.resources
    assert demo.INSTANCE_NO_AGENT not in resources
    assert resources[demo.INSTANCE_NO_POLICY]["status"] == "OTHER"


def test_command_line_output_is_eval_able_shell() -> None:
    from local.emulator.__main__ import shell_lines

    text = "\n".join(shell_lines("http://127.0.0.1:8710", demo.DEMO_TOKEN))
    out = subprocess.run(
        ["bash", "-c", 'eval "$1"; printf "%s|%s|%s" "$YC_API_ENDPOINT" "$YC_IAM_TOKEN" "$FOLDER_ID"', "-", text],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert out.stdout == f"http://127.0.0.1:8710|{demo.DEMO_TOKEN}|{demo.DEMO_FOLDER_ID}"
    assert out.stderr == ""
