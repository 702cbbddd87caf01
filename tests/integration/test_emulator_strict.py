"""The emulator is as strict as a proto gateway: what the protos refuse is refused, with the documented Status.

Oneofs (the "-" placeholder plus a query id), unknown or repeated query parameters, invalid enum values, query
parameters on a call whose body is the whole request, booleans and integers that do not parse, the wrong verb.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.emulator import EmulatorHandle
from local.emulator import seed as demo
from tests.conformance import oracle


def refused(resp: requests.Response, http_status: int = 400, code: int = 3) -> dict[str, Any]:
    """The documented error shape: the code's HTTP status and a google.rpc.Status body (parsed by the protos)."""
    assert resp.status_code == http_status, resp.text
    assert oracle.parse_status(resp.text).code == code
    body = resp.json()
    assert body["code"] == code and body["message"]
    assert body["details"][0]["requestId"] == resp.headers["x-request-id"]
    return body


APPS = f"/backup/v1/policies/{demo.POLICY_DAILY}/applications"
INSTANCE = f"/compute/v1/instances/{demo.INSTANCE_PROD_DB}"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/backup/v1/policies/-/applications", {"folderId": demo.DEMO_FOLDER_ID}),  # "-" + folderId: two members
        ("/backup/v1/policies/-/applications", {"computeInstanceId": demo.INSTANCE_PROD_DB}),
        (APPS, {"folderId": demo.DEMO_FOLDER_ID}),
        (APPS, {"compute_instance_id": demo.INSTANCE_PROD_DB}),  # the proto name is the same field
    ],
)
def test_two_members_of_a_oneof_are_refused(
    emu: EmulatorHandle, http: requests.Session, path: str, params: dict[str, str]
) -> None:
    body = refused(http.get(emu.url + path, params=params))
    assert "should not have multiple id oneof fields" in body["message"]
    assert body["details"][1]["fieldViolations"][0]["field"]


def test_the_placeholder_alone_is_not_an_id(emu: EmulatorHandle, http: requests.Session) -> None:
    assert "invalid resource id" in refused(http.get(f"{emu.url}/backup/v1/policies/-/applications"))["message"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/backup/v1/policies", {"folderId": demo.DEMO_FOLDER_ID, "pageToken": "x"}),  # no page fields here
        ("/backup/v1/policies", {"folderId": demo.DEMO_FOLDER_ID, "filter": "name='x'"}),
        (APPS, {"pageSize": "10"}),
        ("/backup/v1/resources", {"folderId": demo.DEMO_FOLDER_ID, "orderBy": "id"}),
        (INSTANCE, {"fields": "id"}),
        (f"/operations/{'cdg' + '0' * 17}", {"x": "1"}),
        ("/compute/v1/instances", {"folderId": demo.DEMO_FOLDER_ID, "folderID": demo.DEMO_FOLDER_ID}),
    ],
)
def test_unknown_query_parameters_are_refused(
    emu: EmulatorHandle, http: requests.Session, path: str, params: dict[str, str]
) -> None:
    assert "unknown query parameter" in refused(http.get(emu.url + path, params=params))["message"]


def test_a_repeated_query_parameter_is_refused(emu: EmulatorHandle, http: requests.Session) -> None:
    twice = f"{emu.url}/backup/v1/policies?folderId={demo.DEMO_FOLDER_ID}&folderId={demo.DEMO_FOLDER_ID}"
    assert "too many values" in refused(http.get(twice))["message"]
    both_names = f"{emu.url}/backup/v1/policies?folderId={demo.DEMO_FOLDER_ID}&folder_id={demo.DEMO_FOLDER_ID}"
    refused(http.get(both_names))


@pytest.mark.parametrize("view", ["", "INSTANCE_VIEW_UNSPECIFIED", "basic", "HUGE", "2", "-1"])
def test_invalid_enum_values_are_refused(emu: EmulatorHandle, http: requests.Session, view: str) -> None:
    refused(http.get(emu.url + INSTANCE, params={"view": view}))


@pytest.mark.parametrize("view", ["BASIC", "FULL", "0", "1"])
def test_enum_values_by_name_or_number(emu: EmulatorHandle, http: requests.Session, view: str) -> None:
    assert http.get(emu.url + INSTANCE, params={"view": view}).status_code == 200


def test_resource_type_enum(emu: EmulatorHandle, http: requests.Session) -> None:
    url = f"{emu.url}/backup/v1/resources"
    folder = {"folderId": demo.DEMO_FOLDER_ID}
    assert http.get(url, params={**folder, "type": "COMPUTE"}).json()["resources"]
    assert http.get(url, params={**folder, "type": "BMS"}).json() == {}  # no such resources here
    refused(http.get(url, params={**folder, "type": "VM"}))


@pytest.mark.parametrize("value", ["", "maybe", "yes", "2"])
def test_booleans_parse_as_strconv_parsebool(emu: EmulatorHandle, http: requests.Session, value: str) -> None:
    refused(http.get(emu.url + APPS, params={"showProcessing": value}))


@pytest.mark.parametrize("value", ["1", "t", "TRUE", "True", "0", "f", "false"])
def test_booleans_the_gateway_reads(emu: EmulatorHandle, http: requests.Session, value: str) -> None:
    assert http.get(emu.url + APPS, params={"showProcessing": value}).status_code == 200


@pytest.mark.parametrize("value", ["", "ten", "1.5", "1e3"])
def test_integers_must_parse(emu: EmulatorHandle, http: requests.Session, value: str) -> None:
    refused(http.get(f"{emu.url}/backup/v1/resources", params={"folderId": demo.DEMO_FOLDER_ID, "pageSize": value}))


def test_query_on_a_call_whose_body_is_the_request_is_refused(emu: EmulatorHandle, http: requests.Session) -> None:
    url = f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}:execute"
    resp = http.post(url, params={"computeInstanceId": demo.INSTANCE_PROD_DB}, json={})
    refused(resp)
    assert emu.state.execute_log == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/backup/v1/policies"),  # Create: not emulated
        ("GET", f"/backup/v1/policies/{demo.POLICY_DAILY}:execute"),
        ("PUT", APPS),
        ("DELETE", f"/operations/{'cdg' + '0' * 17}"),
        ("POST", INSTANCE),
    ],
)
def test_the_wrong_verb_is_unimplemented(emu: EmulatorHandle, http: requests.Session, method: str, path: str) -> None:
    refused(http.request(method, emu.url + path), 501, 12)


@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_cancel_takes_both_verbs(emu: EmulatorHandle, http: requests.Session, verb: str) -> None:
    op = http.post(
        f"{emu.url}/backup/v1/policies/{demo.POLICY_DAILY}:execute", json={"computeInstanceId": demo.INSTANCE_PROD_DB}
    ).json()
    assert http.request(verb, f"{emu.url}/operations/{op['id']}:cancel").json()["error"]["code"] == 1


def test_shape_is_checked_before_the_token(emu: EmulatorHandle) -> None:
    """As a gateway: the request is read into its message first, then the service checks the token."""
    refused(requests.get(emu.url + INSTANCE, params={"view": "HUGE"}))
    refused(requests.get(emu.url + INSTANCE), 401, 16)


def test_policies_by_instance_are_the_policies_applied_to_it(emu: EmulatorHandle, http: requests.Session) -> None:
    """ListPoliciesRequest.compute_instance_id: the policies applied to that instance (not processing)."""
    url = f"{emu.url}/backup/v1/policies"

    def applied(instance: str) -> set[str]:
        return {p["id"] for p in http.get(url, params={"computeInstanceId": instance}).json().get("policies", [])}

    assert applied(demo.INSTANCE_PROD_DB) == {demo.POLICY_DAILY}
    assert applied(demo.INSTANCE_TWO_POLICIES) == {demo.POLICY_DAILY, demo.POLICY_WEEKLY}
    assert applied(demo.INSTANCE_NO_POLICY) == set()
    apply = http.post(f"{url}/{demo.POLICY_MONTHLY}:apply", json={"computeInstanceId": demo.INSTANCE_NO_POLICY})
    assert apply.status_code == 200
    assert applied(demo.INSTANCE_NO_POLICY) == set()  # still processing
    emu.state.advance_clock(emu.state.apply_duration)
    assert applied(demo.INSTANCE_NO_POLICY) == {demo.POLICY_MONTHLY}
    refused(http.get(url, params={"computeInstanceId": demo.INSTANCE_OTHER_FOLDER}), 403, 7)
    refused(http.get(url, params={"computeInstanceId": "fhmnosuchinstance000"}), 404, 5)
