"""The emulator against the protos: every answer parses as its RPC's response (or google.rpc.Status), and the
emulator refuses exactly the request shapes the protos refuse (a hypothesis property over query strings)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.emulator import EmulatorConfig, EmulatorHandle, ManualClock, start_emulator
from local.emulator import seed as demo
from tests.conformance import oracle


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    handle = start_emulator(EmulatorConfig(port=0, clock=ManualClock()))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def http(emu: EmulatorHandle) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {emu.token}"
    yield session
    session.close()


OP_ID = "cdg" + "0" * 17
CALLS = [
    ("GET", f"/backup/v1/policies/{demo.POLICY_DAILY}", {}, None),
    ("GET", "/backup/v1/policies", {"folderId": demo.DEMO_FOLDER_ID}, None),
    ("GET", "/backup/v1/policies", {"computeInstanceId": demo.INSTANCE_TWO_POLICIES}, None),
    ("GET", "/backup/v1/policies", {"computeInstanceId": demo.INSTANCE_NO_POLICY}, None),  # {}: empty list
    ("GET", f"/backup/v1/policies/{demo.POLICY_DAILY}/applications", {"showProcessing": "true"}, None),
    ("POST", f"/backup/v1/policies/{demo.POLICY_WEEKLY}:apply", {}, {"computeInstanceId": demo.INSTANCE_PROD_WEB}),
    ("POST", f"/backup/v1/policies/{demo.POLICY_DAILY}:execute", {}, {"computeInstanceId": demo.INSTANCE_PROD_DB}),
    ("POST", f"/backup/v1/policies/{demo.POLICY_DAILY}:revoke", {}, {"computeInstanceId": demo.INSTANCE_STOPPED}),
    ("GET", f"/backup/v1/resources/{demo.INSTANCE_PROD_DB}", {"includeTenantInfo": "true"}, None),
    ("GET", "/backup/v1/resources", {"folderId": demo.DEMO_FOLDER_ID, "pageSize": "3", "type": "COMPUTE"}, None),
    ("GET", f"/compute/v1/instances/{demo.INSTANCE_PROD_DB}", {"view": "FULL"}, None),
    ("GET", "/compute/v1/instances", {"folderId": demo.DEMO_FOLDER_ID, "filter": 'status="RUNNING"'}, None),
    # refusals: every error body is a google.rpc.Status
    ("GET", "/backup/v1/policies/-/applications", {"folderId": demo.DEMO_FOLDER_ID}, None),
    ("GET", "/backup/v1/policies", {"folderId": demo.OTHER_FOLDER_ID}, None),
    ("GET", f"/backup/v1/policies/{demo.POLICY_DAILY}:execute", {}, None),
    ("POST", f"/backup/v1/policies/{demo.POLICY_DAILY}:execute", {}, {"computeInstanceId": demo.INSTANCE_OFFLINE}),
    ("POST", f"/backup/v1/policies/{demo.POLICY_DAILY}:execute", {}, {"computeInstanceId": "x", "y": 1}),
    ("GET", f"/operations/{OP_ID}", {}, None),
    ("GET", f"/compute/v1/instances/{demo.INSTANCE_PROD_DB}", {"view": "INSTANCE_VIEW_UNSPECIFIED"}, None),
    ("POST", "/iam/v1/tokens", {}, {"jwt": "not.a.jwt"}),
]


def test_every_answer_parses_as_the_rpc_response_or_a_status(emu: EmulatorHandle, http: requests.Session) -> None:
    codes = set()
    for method, path, query, body in CALLS:
        resp = http.request(method, emu.url + path, params=query, json=body)
        rule = oracle.rule_for(method, emu.url + path)
        if resp.status_code == 200:
            rule.parse_response(resp.text)
            if "operations" not in path and rule.response.full_name == "yandex.cloud.operation.Operation":
                op = resp.json()
                for later in ("GET", "POST"):  # the operation, then Cancel by both verbs
                    again = http.request(later, f"{emu.url}/operations/{op['id']}:cancel")
                    oracle.rule("OperationService.Cancel").parse_response(again.text)
        else:
            status = oracle.parse_status(resp.text)
            codes.add((resp.status_code, status.code))
    assert codes == {(400, 3), (403, 7), (501, 12), (400, 9), (404, 5)}


def test_a_failed_operation_and_progress_as_a_string_parse(emu: EmulatorHandle, http: requests.Session) -> None:
    emu.state.set_progress_mode("string", demo.INSTANCE_FLAKY)
    op = http.post(
        f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}:execute", json={"computeInstanceId": demo.INSTANCE_FLAKY}
    ).json()
    get = oracle.rule("OperationService.Get")
    emu.state.advance_clock(60)
    running = http.get(f"{emu.url}/operations/{op['id']}")
    assert isinstance(running.json()["metadata"]["progressPercentage"], str)
    get.parse_response(running.text)
    emu.state.advance_clock(3600)
    failed = http.get(f"{emu.url}/operations/{op['id']}")
    assert failed.json()["error"]["code"] == 13
    get.parse_response(failed.text)


# --- the emulator refuses what the protos refuse ------------------------------------------------------------

BOOLS = st.sampled_from(["true", "false", "maybe", ""])
JUNK = st.sampled_from(["x", "pageSize", "policyId", "folder"])


def queries(known: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, str]]:
    """Any subset of the known fields (json names) with good or bad values, sometimes an unknown name."""
    return st.fixed_dictionaries({}, optional={**known, **{"zz_unknown": JUNK}})


CASES = {
    "ListApplications": (
        f"/backup/v1/policies/{demo.POLICY_DAILY}/applications",
        {},
        {
            "showProcessing": BOOLS,
            "folderId": st.just(demo.DEMO_FOLDER_ID),
            "computeInstanceId": st.just(demo.INSTANCE_PROD_DB),
        },
    ),
    "GetInstance": (
        f"/compute/v1/instances/{demo.INSTANCE_PROD_DB}",
        {},
        {"view": st.sampled_from(["BASIC", "FULL", "0", "1", "", "INSTANCE_VIEW_UNSPECIFIED", "full", "9"])},
    ),
    "ListResources": (
        "/backup/v1/resources",
        {"folderId": demo.DEMO_FOLDER_ID},
        {
            "pageSize": st.sampled_from(["5", "ten", ""]),
            "type": st.sampled_from(["COMPUTE", "RESOURCE_TYPE_UNSPECIFIED", "1", "VM", ""]),
        },
    ),
    "ListInstances": (
        "/compute/v1/instances",
        {"folderId": demo.DEMO_FOLDER_ID},
        {"pageSize": st.sampled_from(["5", "x"]), "orderBy": st.just("id"), "filter": st.just('status="RUNNING"')},
    ),
    "GetResource": (f"/backup/v1/resources/{demo.INSTANCE_PROD_DB}", {}, {"includeTenantInfo": BOOLS}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_emulator_refuses_exactly_what_the_protos_refuse(
    emu: EmulatorHandle, http: requests.Session, case: str, data: st.DataObject
) -> None:
    path, fixed, known = CASES[case]
    query = {**fixed, **data.draw(queries(known))}
    query = {("x" if k == "zz_unknown" else k): v for k, v in query.items()}
    url = f"{emu.url}{path}?{urlencode(query)}" if query else emu.url + path
    try:
        oracle.rule_for("GET", url).check_request("GET", url, None)
        proto_ok = True
    except oracle.Mismatch:
        proto_ok = False
    resp = http.get(url)
    assert (resp.status_code == 200) == proto_ok, (query, resp.text)
    if not proto_ok:
        assert resp.status_code == 400 and oracle.parse_status(resp.text).code == 3
