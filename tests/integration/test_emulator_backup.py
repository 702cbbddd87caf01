"""The emulator's Cloud Backup and Operation APIs over real HTTP (plain requests, loopback only)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local.emulator import EmulatorHandle, ManualClock
from local.emulator import seed as demo

EXECUTE_META = "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata"
EMPTY = "type.googleapis.com/google.protobuf.Empty"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def assert_error(resp: requests.Response, http_status: int, code: int) -> dict[str, Any]:
    """A google.rpc.Status with the documented HTTP status and a RequestInfo equal to x-request-id."""
    assert resp.status_code == http_status, resp.text
    body = resp.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.RequestInfo"
    assert info["requestId"] == resp.headers["x-request-id"]
    return body


def execute(
    http: requests.Session, emu: EmulatorHandle, policy: str, instance: str, key: str | None = None
) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return http.post(
        f"{emu.url}/backup/v1/policies/{policy}:execute", json={"computeInstanceId": instance}, headers=headers
    )


def get_op(http: requests.Session, emu: EmulatorHandle, op_id: str) -> dict[str, Any]:
    resp = http.get(f"{emu.url}/operations/{op_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


# --- policies ----------------------------------------------------------------------------------------------


def test_get_policy_shape(emu: EmulatorHandle, http: requests.Session) -> None:
    resp = http.get(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["x-request-id"]
    body = resp.json()
    assert body["id"] == demo.POLICY_DAILY
    assert body["name"] == "Default daily"
    assert body["folderId"] == demo.DEMO_FOLDER_ID
    assert body["enabled"] is True
    assert RFC3339.match(body["createdAt"]) and RFC3339.match(body["updatedAt"])
    settings = body["settings"]
    assert settings["retention"]["rules"][0]["maxCount"] == "15"  # int64 as a string
    assert settings["scheduling"]["backupSets"][0]["type"] == "TYPE_INCREMENTAL"
    assert settings["splitting"]["size"] == "1099511627776"


def test_get_policy_errors(emu: EmulatorHandle, http: requests.Session) -> None:
    assert_error(http.get(f"{emu.url}/backup/v1/policies/cbpnosuchpolicy00000"), 404, 5)
    body = assert_error(http.get(f"{emu.url}/backup/v1/policies/Bad_Id"), 400, 3)
    assert body["details"][1]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert_error(http.get(f"{emu.url}/backup/v1/policies/{'a' * 51}"), 400, 3)
    other = requests.get(
        f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}", headers={"Authorization": f"Bearer {demo.OTHER_TOKEN}"}
    )
    assert_error(other, 403, 7)


def test_list_policies(emu: EmulatorHandle, http: requests.Session) -> None:
    by_folder = http.get(f"{emu.url}/backup/v1/policies", params={"folderId": demo.DEMO_FOLDER_ID}).json()
    assert [p["name"] for p in by_folder["policies"]] == ["Default daily", "Default weekly", "Default monthly"]
    assert "nextPageToken" not in by_folder
    by_instance = http.get(
        f"{emu.url}/backup/v1/policies", params={"computeInstanceId": demo.INSTANCE_TWO_POLICIES}
    ).json()
    assert {p["id"] for p in by_instance["policies"]} == {demo.POLICY_DAILY, demo.POLICY_WEEKLY}
    # no policy applied: the empty list is left out (proto3)
    none = http.get(f"{emu.url}/backup/v1/policies", params={"computeInstanceId": demo.INSTANCE_NO_POLICY})
    assert none.status_code == 200 and none.json() == {}
    assert_error(http.get(f"{emu.url}/backup/v1/policies"), 400, 3)
    both = {"folderId": demo.DEMO_FOLDER_ID, "computeInstanceId": demo.INSTANCE_PROD_DB}
    assert_error(http.get(f"{emu.url}/backup/v1/policies", params=both), 400, 3)
    assert_error(http.get(f"{emu.url}/backup/v1/policies", params={"folderId": demo.OTHER_FOLDER_ID}), 403, 7)
    assert_error(http.get(f"{emu.url}/backup/v1/policies", params={"computeInstanceId": "fhmnope"}), 404, 5)


# --- applications ------------------------------------------------------------------------------------------


def test_list_applications_by_policy_and_policies_by_instance(emu: EmulatorHandle, http: requests.Session) -> None:
    base = f"{emu.url}/backup/v1/policies"
    by_policy = http.get(f"{base}/{demo.POLICY_WEEKLY}/applications").json()["applications"]
    assert by_policy == [
        {
            "policyId": demo.POLICY_WEEKLY,
            "computeInstanceId": demo.INSTANCE_TWO_POLICIES,
            "enabled": True,
            "status": "OK",
            "createdAt": by_policy[0]["createdAt"],
        }
    ]
    # By instance: Policy.List?computeInstanceId (policies applied there). ListApplications takes the policy id
    # only: policyId, folderId and computeInstanceId are one oneof, and the "-" placeholder is not an id.
    by_instance = http.get(f"{base}", params={"computeInstanceId": demo.INSTANCE_TWO_POLICIES})
    assert {p["id"] for p in by_instance.json()["policies"]} == {demo.POLICY_DAILY, demo.POLICY_WEEKLY}
    by_daily = http.get(f"{base}/{demo.POLICY_DAILY}/applications").json()["applications"]
    assert len(by_daily) == 7  # the 7 demo instances with Default daily
    assert_error(http.get(f"{base}/-/applications"), 400, 3)
    for one_more in ({"folderId": demo.DEMO_FOLDER_ID}, {"computeInstanceId": demo.INSTANCE_PROD_DB}):
        refused = assert_error(http.get(f"{base}/-/applications", params=one_more), 400, 3)
        assert "multiple id oneof fields" in refused["message"]
        assert_error(http.get(f"{base}/{demo.POLICY_DAILY}/applications", params=one_more), 400, 3)
    assert_error(http.get(f"{base}/{demo.POLICY_DAILY}/applications", params={"showProcessing": "maybe"}), 400, 3)
    assert_error(http.get(f"{base}/{demo.POLICY_OTHER}/applications"), 403, 7)
    assert_error(http.get(f"{base}/cbpnosuchpolicy00000/applications"), 404, 5)
    monthly = http.get(f"{base}/{demo.POLICY_MONTHLY}/applications")
    assert monthly.status_code == 200 and monthly.json() == {}


def test_apply_is_an_operation_and_show_processing(
    emu: EmulatorHandle, http: requests.Session, clock: ManualClock
) -> None:
    base = f"{emu.url}/backup/v1/policies"
    resp = http.post(f"{base}/{demo.POLICY_WEEKLY}:apply", json={"computeInstanceId": demo.INSTANCE_PROD_DB})
    assert resp.status_code == 200, resp.text
    op = resp.json()
    assert op["description"] == "apply policy"
    assert "done" not in op
    assert op["metadata"] == {
        "@type": "type.googleapis.com/yandex.cloud.backup.v1.ApplyPolicyMetadata",
        "policyId": demo.POLICY_WEEKLY,
        "computeInstanceId": demo.INSTANCE_PROD_DB,
    }
    params = {"computeInstanceId": demo.INSTANCE_PROD_DB}
    weekly = f"{base}/{demo.POLICY_WEEKLY}/applications"
    hidden = http.get(weekly).json().get("applications", [])
    assert [a for a in hidden if a["computeInstanceId"] == demo.INSTANCE_PROD_DB] == []
    applied = http.get(base, params=params).json()["policies"]
    assert [p["id"] for p in applied] == [demo.POLICY_DAILY]  # still processing: not applied yet
    shown = http.get(weekly, params={"showProcessing": "true"}).json()["applications"]
    processing = [a for a in shown if a["computeInstanceId"] == demo.INSTANCE_PROD_DB]
    assert processing and processing[0]["isProcessing"] is True

    clock.advance(emu.state.apply_duration)
    done = get_op(http, emu, op["id"])
    assert done["done"] is True and done["response"] == {"@type": EMPTY}
    after = http.get(base, params=params).json()["policies"]
    assert {p["id"] for p in after} == {demo.POLICY_DAILY, demo.POLICY_WEEKLY}
    assert all("isProcessing" not in a for a in http.get(weekly).json()["applications"])

    again = http.post(f"{base}/{demo.POLICY_WEEKLY}:apply", json={"computeInstanceId": demo.INSTANCE_PROD_DB})
    assert_error(again, 409, 6)
    no_agent = http.post(f"{base}/{demo.POLICY_WEEKLY}:apply", json={"computeInstanceId": demo.INSTANCE_NO_AGENT})
    assert_error(no_agent, 404, 5)


def test_revoke_removes_the_application(emu: EmulatorHandle, http: requests.Session, clock: ManualClock) -> None:
    base = f"{emu.url}/backup/v1/policies"
    body = {"computeInstanceId": demo.INSTANCE_TWO_POLICIES}
    op = http.post(f"{base}/{demo.POLICY_WEEKLY}:revoke", json=body).json()
    assert op["metadata"]["@type"] == "type.googleapis.com/yandex.cloud.backup.v1.RevokeMetadata"
    clock.advance(emu.state.apply_duration)
    assert get_op(http, emu, op["id"])["done"] is True
    applied = http.get(base, params=body).json()["policies"]
    assert [p["id"] for p in applied] == [demo.POLICY_DAILY]
    assert_error(http.post(f"{base}/{demo.POLICY_WEEKLY}:revoke", json=body), 404, 5)


# --- resources ---------------------------------------------------------------------------------------------


def test_get_resource_is_wrapped(emu: EmulatorHandle, http: requests.Session) -> None:
    resp = http.get(f"{emu.url}/backup/v1/resources/{demo.INSTANCE_PROD_DB}")
    assert resp.status_code == 200
    res = resp.json()["resource"]
    assert res["computeInstanceId"] == demo.INSTANCE_PROD_DB
    assert res["online"] is True and res["enabled"] is True
    assert res["status"] == "IDLE" and res["initStatus"] == "REGISTRED" and res["type"] == "COMPUTE"
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", res["resourceId"])
    offline = http.get(f"{emu.url}/backup/v1/resources/{demo.INSTANCE_OFFLINE}").json()["resource"]
    assert "online" not in offline  # false is left out
    nopol = http.get(f"{emu.url}/backup/v1/resources/{demo.INSTANCE_NO_POLICY}").json()["resource"]
    assert (nopol["status"], nopol["statusDetails"]) == ("OTHER", "no_policies_applied")
    assert_error(http.get(f"{emu.url}/backup/v1/resources/{demo.INSTANCE_NO_AGENT}"), 404, 5)
    assert_error(http.get(f"{emu.url}/backup/v1/resources/NOPE"), 400, 3)


def test_list_resources_pages(emu: EmulatorHandle, http: requests.Session) -> None:
    ids = demo.create_large_folder(emu.state, count=250)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"folderId": demo.BENCH_FOLDER_ID}
        if token:
            params["pageToken"] = token
        body = http.get(f"{emu.url}/backup/v1/resources", params=params).json()
        seen += [r["computeInstanceId"] for r in body["resources"]]
        pages += 1
        token = body.get("nextPageToken")
        if not token:
            break
        assert isinstance(token, str)
    assert pages == 3 and seen == sorted(ids)
    small = http.get(f"{emu.url}/backup/v1/resources", params={"folderId": demo.DEMO_FOLDER_ID, "pageSize": "4"})
    assert len(small.json()["resources"]) == 4 and small.json()["nextPageToken"]
    url = f"{emu.url}/backup/v1/resources"
    assert_error(http.get(url), 400, 3)
    assert_error(http.get(url, params={"folderId": demo.BENCH_FOLDER_ID, "pageSize": "1001"}), 400, 3)
    assert_error(http.get(url, params={"folderId": demo.BENCH_FOLDER_ID, "pageSize": "ten"}), 400, 3)
    assert_error(http.get(url, params={"folderId": demo.BENCH_FOLDER_ID, "pageToken": "%%%"}), 400, 3)
    assert_error(http.get(url, params={"folderId": demo.OTHER_FOLDER_ID}), 403, 7)


# --- execute -----------------------------------------------------------------------------------------------


def test_execute_progresses_with_the_clock(emu: EmulatorHandle, http: requests.Session, clock: ManualClock) -> None:
    resp = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB)
    assert resp.status_code == 200, resp.text
    op = resp.json()
    assert re.match(r"^[a-z0-9]{20}$", op["id"])
    assert op["description"] == "execute policy"
    assert op["createdBy"] == demo.DEMO_USER_ID
    assert RFC3339.match(op["createdAt"]) and RFC3339.match(op["modifiedAt"])
    assert "done" not in op and "error" not in op and "response" not in op
    assert op["metadata"] == {
        "@type": EXECUTE_META,
        "policyId": demo.POLICY_DAILY,
        "computeInstanceId": demo.INSTANCE_PROD_DB,
    }  # progressPercentage 0 is the proto3 default: left out

    seen = []
    for _ in range(3):
        clock.advance(150)  # default nominal duration 600 s at time_scale 1
        cur = get_op(http, emu, op["id"])
        assert "done" not in cur
        seen.append(cur["metadata"]["progressPercentage"])
        assert isinstance(seen[-1], float)
    assert seen == [25.0, 50.0, 75.0]
    res = http.get(f"{emu.url}/backup/v1/resources/{demo.INSTANCE_PROD_DB}").json()["resource"]
    assert res["status"] == "BACKUPING" and res["statusProgress"] == "75"
    apps = http.get(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}/applications").json()["applications"]
    assert {a["computeInstanceId"]: a["status"] for a in apps}[demo.INSTANCE_PROD_DB] == "RUNNING"

    clock.advance(150)
    final = get_op(http, emu, op["id"])
    assert final["done"] is True
    assert final["response"] == {"@type": EMPTY}
    assert "error" not in final
    assert final["metadata"]["progressPercentage"] == 100.0
    res = http.get(f"{emu.url}/backup/v1/resources/{demo.INSTANCE_PROD_DB}").json()["resource"]
    assert res["status"] == "IDLE" and RFC3339.match(res["lastBackupTime"])

    log = emu.state.execute_log
    assert len(log) == 1
    assert log[0]["policyId"] == demo.POLICY_DAILY and log[0]["computeInstanceId"] == demo.INSTANCE_PROD_DB
    assert log[0]["operationId"] == op["id"] and log[0]["idempotencyKey"] is None


def test_time_scale_shortens_backups(start_emu: Callable[..., EmulatorHandle], clock: ManualClock) -> None:
    emu = start_emu(clock=clock, time_scale=60.0)
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {emu.token}"
        op = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
        clock.advance(5)  # 600 nominal seconds / 60 = 10 clock seconds
        assert get_op(http, emu, op["id"])["metadata"]["progressPercentage"] == 50.0
        clock.advance(5)
        assert get_op(http, emu, op["id"])["done"] is True


def test_virtual_two_hour_backup_runs_instantly(
    emu: EmulatorHandle, http: requests.Session, clock: ManualClock
) -> None:
    emu.state.set_backup_duration(demo.INSTANCE_PROD_WEB, 7200)
    op = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_WEB).json()
    clock.advance(3600)
    assert get_op(http, emu, op["id"])["metadata"]["progressPercentage"] == 50.0
    clock.advance(3600)
    assert get_op(http, emu, op["id"])["done"] is True


def test_failure_ends_the_operation_with_an_error(
    emu: EmulatorHandle, http: requests.Session, clock: ManualClock
) -> None:
    emu.state.set_failure(demo.INSTANCE_PROD_DB, "INTERNAL", "vault is full", at=0.5)
    op = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    clock.advance(240)
    assert "error" not in get_op(http, emu, op["id"])
    clock.advance(60)
    failed = get_op(http, emu, op["id"])
    assert failed["done"] is True
    assert failed["error"] == {"code": 13, "message": "vault is full", "details": []}
    assert "response" not in failed
    clock.advance(600)
    assert get_op(http, emu, op["id"])["metadata"]["progressPercentage"] == 50.0  # frozen where it failed
    res = http.get(f"{emu.url}/backup/v1/resources/{demo.INSTANCE_PROD_DB}").json()["resource"]
    assert res["status"] == "FAILED"
    # the failure persists until cleared
    second = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    clock.advance(600)
    assert get_op(http, emu, second["id"])["error"]["code"] == 13
    emu.state.clear_failure(demo.INSTANCE_PROD_DB)
    third = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    clock.advance(600)
    assert "error" not in get_op(http, emu, third["id"])


def test_error_appears_before_done(emu: EmulatorHandle, http: requests.Session, clock: ManualClock) -> None:
    emu.state.set_failure(demo.INSTANCE_PROD_DB, 9, "snapshot failed, rolling back", at=0.25, before_done=True)
    op = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    clock.advance(200)
    rolling_back = get_op(http, emu, op["id"])
    assert "done" not in rolling_back
    assert rolling_back["error"]["code"] == 9
    # still running: a second backup of the instance is refused until done
    assert_error(execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB), 400, 9)
    clock.advance(400)
    final = get_op(http, emu, op["id"])
    assert final["done"] is True and final["error"]["code"] == 9 and "response" not in final


def test_failure_once_and_demo_flaky_instance(emu: EmulatorHandle, http: requests.Session, clock: ManualClock) -> None:
    emu.state.set_failure(demo.INSTANCE_PROD_WEB, "UNAVAILABLE", "agent lost", at=0.0, once=True)
    first = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_WEB).json()
    assert get_op(http, emu, first["id"])["error"]["code"] == 14
    second = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_WEB).json()
    clock.advance(600)
    assert "error" not in get_op(http, emu, second["id"])
    flaky = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_FLAKY).json()
    clock.advance(600)
    assert get_op(http, emu, flaky["id"])["error"]["code"] == 13


@pytest.mark.parametrize("mode", ["string", "none"])
def test_progress_modes(emu: EmulatorHandle, http: requests.Session, clock: ManualClock, mode: str) -> None:
    emu.state.set_progress_mode(mode)
    op = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    clock.advance(150)
    meta = get_op(http, emu, op["id"])["metadata"]
    if mode == "string":
        assert meta["progressPercentage"] == "25" and float(meta["progressPercentage"]) == 25.0
    else:
        assert "progressPercentage" not in meta
    clock.advance(450)
    done = get_op(http, emu, op["id"])
    assert done["done"] is True
    assert ("progressPercentage" in done["metadata"]) == (mode == "string")


def test_progress_mode_per_instance(emu: EmulatorHandle, http: requests.Session, clock: ManualClock) -> None:
    emu.state.set_progress_mode("none", demo.INSTANCE_PROD_WEB)
    a = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    b = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_WEB).json()
    clock.advance(60)
    assert get_op(http, emu, a["id"])["metadata"]["progressPercentage"] == 10.0
    assert "progressPercentage" not in get_op(http, emu, b["id"])["metadata"]


@pytest.mark.parametrize(
    ("policy", "instance", "http_status", "code"),
    [
        (demo.POLICY_WEEKLY, demo.INSTANCE_PROD_DB, 400, 9),  # policy not applied to the instance
        (demo.POLICY_DAILY, demo.INSTANCE_OFFLINE, 400, 9),  # agent offline
        (demo.POLICY_DAILY, demo.INSTANCE_NO_POLICY, 400, 9),  # no policy at all
        (demo.POLICY_DAILY, demo.INSTANCE_STOPPED, 400, 9),  # instance stopped
        (demo.POLICY_DAILY, demo.INSTANCE_NO_AGENT, 400, 9),  # not registered in Cloud Backup
        (demo.POLICY_DAILY, "fhmnosuchinstance000", 404, 5),
        ("cbpnosuchpolicy00000", demo.INSTANCE_PROD_DB, 404, 5),
        (demo.POLICY_DAILY, "Not-An-Id", 400, 3),
        ("BAD", demo.INSTANCE_PROD_DB, 400, 3),
        (demo.POLICY_DAILY, demo.INSTANCE_OTHER_FOLDER, 403, 7),
    ],
)
def test_execute_refusals(
    emu: EmulatorHandle, http: requests.Session, policy: str, instance: str, http_status: int, code: int
) -> None:
    assert_error(execute(http, emu, policy, instance), http_status, code)
    assert emu.state.execute_log == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b"{}",
        b'{"computeInstanceId": 5}',
        b'{"computeInstanceId": "fhmproddb00000000001", "x": 1}',
    ],
)
def test_execute_malformed_bodies(emu: EmulatorHandle, http: requests.Session, body: bytes) -> None:
    resp = http.post(
        f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}:execute",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert_error(resp, 400, 3)


def test_execute_accepts_the_proto_field_name(emu: EmulatorHandle, http: requests.Session) -> None:
    resp = http.post(
        f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}:execute",
        json={"compute_instance_id": demo.INSTANCE_PROD_DB},
    )
    assert resp.status_code == 200


def test_concurrent_backup_of_one_instance_is_refused(
    emu: EmulatorHandle, http: requests.Session, clock: ManualClock
) -> None:
    first = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_TWO_POLICIES)
    assert first.status_code == 200
    body = assert_error(execute(http, emu, demo.POLICY_WEEKLY, demo.INSTANCE_TWO_POLICIES), 400, 9)
    assert "already running" in body["message"]
    assert_error(execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_TWO_POLICIES), 400, 9)
    # other instances are not affected
    assert execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).status_code == 200
    clock.advance(600)
    assert execute(http, emu, demo.POLICY_WEEKLY, demo.INSTANCE_TWO_POLICIES).status_code == 200
    assert len(emu.state.execute_log) == 3


def test_idempotency_key_replays_the_first_operation(
    emu: EmulatorHandle, http: requests.Session, clock: ManualClock
) -> None:
    first = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, key="key-1").json()
    clock.advance(300)
    again = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, key="key-1")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["metadata"]["progressPercentage"] == 50.0  # the current state, not a copy of the first
    clock.advance(300)
    done = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, key="key-1").json()
    assert done["id"] == first["id"] and done["done"] is True
    assert [e["idempotencyKey"] for e in emu.state.execute_log] == ["key-1"]
    # the same key for a different request is refused; a new key starts a new backup
    assert_error(execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_WEB, key="key-1"), 400, 3)
    new = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, key="key-2").json()
    assert new["id"] != first["id"]
    assert len(emu.state.execute_log) == 2


def test_idempotency_keys_are_per_subject(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.add_subject("ajesecond00000000001", [demo.DEMO_FOLDER_ID])
    token, _ = emu.state.issue_token("ajesecond00000000001")
    first = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, key="shared").json()
    other = requests.post(
        f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}:execute",
        json={"computeInstanceId": demo.INSTANCE_PROD_DB},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "shared"},
    )
    assert_error(other, 400, 9)  # not a replay of the first subject's operation: a concurrent backup
    assert first["id"]


# --- operations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["POST", "GET"])
def test_cancel_with_both_verbs(emu: EmulatorHandle, http: requests.Session, clock: ManualClock, verb: str) -> None:
    op = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    clock.advance(60)
    resp = http.request(verb, f"{emu.url}/operations/{op['id']}:cancel")
    assert resp.status_code == 200, resp.text
    cancelled = resp.json()
    assert cancelled["done"] is True and cancelled["error"]["code"] == 1
    assert cancelled["metadata"]["progressPercentage"] == 10.0
    # the instance is free again; cancelling a finished operation returns it unchanged
    assert execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).status_code == 200
    assert http.request(verb, f"{emu.url}/operations/{op['id']}:cancel").json() == get_op(http, emu, op["id"])


def test_operation_errors(emu: EmulatorHandle, http: requests.Session) -> None:
    assert_error(http.get(f"{emu.url}/operations/cdgnosuchoperation00"), 404, 5)
    assert_error(http.get(f"{emu.url}/operations/NOT_AN_ID"), 400, 3)
    op = execute(http, emu, demo.POLICY_DAILY, demo.INSTANCE_PROD_DB).json()
    other = {"Authorization": f"Bearer {demo.OTHER_TOKEN}"}
    assert_error(requests.get(f"{emu.url}/operations/{op['id']}", headers=other), 403, 7)
    viewer = {"Authorization": f"Bearer {demo.VIEWER_TOKEN}"}
    assert requests.get(f"{emu.url}/operations/{op['id']}", headers=viewer).status_code == 200
    assert_error(requests.post(f"{emu.url}/operations/{op['id']}:cancel", headers=viewer), 403, 7)


def test_every_response_has_a_request_id(emu: EmulatorHandle, http: requests.Session) -> None:
    answers = [
        http.get(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}"),
        http.get(f"{emu.url}/backup/v1/policies/cbpnosuchpolicy00000"),
        requests.get(f"{emu.url}/compute/v1/instances/{demo.INSTANCE_PROD_DB}"),
        http.get(f"{emu.url}/no/such/path"),
        http.delete(f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}"),
    ]
    ids = [a.headers["x-request-id"] for a in answers]
    assert len(set(ids)) == len(ids)
    assert_error(answers[3], 404, 5)
    assert_error(answers[4], 501, 12)
    assert [c["status"] for c in emu.state.call_log] == [200, 404, 401, 404, 501]


def test_set_backup_convenience(emu: EmulatorHandle, http: requests.Session, clock: ManualClock) -> None:
    emu.state.set_backup(demo.DEMO_INSTANCE_ID, minutes=2, fail=True)
    op = execute(http, emu, demo.DEMO_POLICY_ID, demo.DEMO_INSTANCE_ID).json()
    clock.advance(60)
    assert get_op(http, emu, op["id"])["error"]["code"] == 13  # fails half way
    emu.state.set_backup(demo.DEMO_INSTANCE_ID, seconds=30)
    ok = execute(http, emu, demo.DEMO_POLICY_ID, demo.DEMO_INSTANCE_ID).json()
    clock.advance(30)
    assert get_op(http, emu, ok["id"])["response"] == {"@type": EMPTY}
