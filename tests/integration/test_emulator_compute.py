"""The emulator's Compute API: get, list, paging and the filter grammar (real HTTP, loopback)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.emulator import EmulatorHandle, ManualClock
from local.emulator import seed as demo
from local.emulator.filters import FilterError, parse


@pytest.fixture(scope="module")
def emu(start_module_emu: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    """One emulator for the module: these tests only read (the large folder is added once)."""
    handle = start_module_emu(clock=ManualClock())
    demo.create_large_folder(handle.state, count=1000, labels={"backup": "daily"})
    return handle


def assert_error(resp: requests.Response, http_status: int, code: int) -> None:
    assert resp.status_code == http_status, resp.text
    body = resp.json()
    assert body["code"] == code and body["message"]
    assert body["details"][0]["requestId"] == resp.headers["x-request-id"]


def names(http: requests.Session, emu: EmulatorHandle, flt: str) -> list[str]:
    resp = http.get(f"{emu.url}/compute/v1/instances", params={"folderId": demo.DEMO_FOLDER_ID, "filter": flt})
    assert resp.status_code == 200, resp.text
    return sorted(i["name"] for i in resp.json().get("instances", []))


def test_get_instance_shape(emu: EmulatorHandle, http: requests.Session) -> None:
    resp = http.get(f"{emu.url}/compute/v1/instances/{demo.INSTANCE_OPT_OUT}")
    assert resp.status_code == 200
    inst = resp.json()
    assert inst["id"] == demo.INSTANCE_OPT_OUT
    assert inst["folderId"] == demo.DEMO_FOLDER_ID
    assert inst["name"] == "prod-db-legacy"
    assert inst["labels"] == {"env": "prod", "role": "db", "backup-opt-out": "true"}
    assert inst["zoneId"] == "ru-central1-a" and inst["platformId"] == "standard-v3"
    assert inst["status"] == "RUNNING"
    assert inst["resources"] == {"memory": "4294967296", "cores": "2", "coreFraction": "100"}  # int64 strings
    assert inst["createdAt"].endswith("Z")
    stopped = http.get(f"{emu.url}/compute/v1/instances/{demo.INSTANCE_STOPPED}").json()
    assert stopped["status"] == "STOPPED" and stopped["zoneId"] == "ru-central1-b"
    assert_error(http.get(f"{emu.url}/compute/v1/instances/fhmnosuchinstance000"), 404, 5)
    assert_error(http.get(f"{emu.url}/compute/v1/instances/UPPER"), 400, 3)
    assert_error(http.get(f"{emu.url}/compute/v1/instances/{demo.INSTANCE_PROD_DB}", params={"view": "HUGE"}), 400, 3)
    assert http.get(f"{emu.url}/compute/v1/instances/{demo.INSTANCE_PROD_DB}", params={"view": "FULL"}).ok


def test_demo_ids_look_real() -> None:
    ids = [spec["id"] for spec in demo.DEMO_INSTANCES] + [
        demo.DEMO_FOLDER_ID,
        demo.OTHER_FOLDER_ID,
        demo.POLICY_DAILY,
        demo.POLICY_WEEKLY,
        demo.POLICY_MONTHLY,
        demo.INSTANCE_OTHER_FOLDER,
    ]
    for value in ids:
        assert len(value) == 20 and value.isalnum() and value == value.lower()
    assert demo.DEMO_FOLDER_ID.startswith("b1g")


def test_list_pages_through_a_large_folder(emu: EmulatorHandle, http: requests.Session) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"folderId": demo.BENCH_FOLDER_ID}
        if token:
            params["pageToken"] = token
        body = http.get(f"{emu.url}/compute/v1/instances", params=params).json()
        assert len(body["instances"]) == 100  # the default page size
        seen += [i["id"] for i in body["instances"]]
        pages += 1
        token = body.get("nextPageToken", "")
        if not token:
            break
    assert pages == 10 and len(set(seen)) == 1000 and seen == sorted(seen)
    assert all(i.startswith("fhmbench") for i in seen)
    whole = http.get(f"{emu.url}/compute/v1/instances", params={"folderId": demo.BENCH_FOLDER_ID, "pageSize": "1000"})
    assert len(whole.json()["instances"]) == 1000 and "nextPageToken" not in whole.json()
    labels = {i["labels"]["backup"] for i in whole.json()["instances"]}
    assert labels == {"daily"}


@pytest.mark.parametrize("size", ["1001", "-1", "abc", "1.5"])
def test_bad_page_size(emu: EmulatorHandle, http: requests.Session, size: str) -> None:
    resp = http.get(f"{emu.url}/compute/v1/instances", params={"folderId": demo.DEMO_FOLDER_ID, "pageSize": size})
    assert_error(resp, 400, 3)


def test_list_needs_a_folder_and_access(emu: EmulatorHandle, http: requests.Session) -> None:
    assert_error(http.get(f"{emu.url}/compute/v1/instances"), 400, 3)
    assert_error(http.get(f"{emu.url}/compute/v1/instances", params={"folderId": demo.OTHER_FOLDER_ID}), 403, 7)
    assert_error(http.get(f"{emu.url}/compute/v1/instances", params={"folderId": "b1gnotmine0000000000"}), 403, 7)
    bad_token = {"folderId": demo.DEMO_FOLDER_ID, "pageToken": "bm90LWEtdG9rZW4"}
    assert_error(http.get(f"{emu.url}/compute/v1/instances", params=bad_token), 400, 3)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ('name="prod-db-1"', ["prod-db-1"]),
        ("name='prod-db-1'", ["prod-db-1"]),
        (r"name='prod\x2ddb\0551'", ["prod-db-1"]),  # C escapes: hex and octal
        ('status != "RUNNING"', ["staging-app-1"]),
        ("status=STOPPED", ["staging-app-1"]),  # an unquoted value
        ('zone_id IN ("ru-central1-b")', ["dev-db-1", "prod-app-1", "staging-app-1"]),
        ('zone_id = "ru-central1-b" AND status = "RUNNING"', ["dev-db-1", "prod-app-1"]),
        ('zone_id = "ru-central1-b" and name not in ("dev-db-1", "prod-app-1")', ["staging-app-1"]),
        (f'id NOT IN ("{demo.INSTANCE_PROD_DB}") AND name IN ("prod-db-1", "prod-db-2")', ["prod-db-2"]),
        ('created_at = "2026-01-15T10:00:00Z"', ["prod-db-1"]),
        ('platform_id = "standard-v3" AND host_id = ""', sorted(s["name"] for s in demo.DEMO_INSTANCES)),
        ("", sorted(s["name"] for s in demo.DEMO_INSTANCES)),
        ('name = "nothing"', []),
    ],
)
def test_filter_grammar(emu: EmulatorHandle, http: requests.Session, flt: str, expected: list[str]) -> None:
    assert names(http, emu, flt) == expected


@pytest.mark.parametrize(
    "flt",
    [
        'labels.env = "prod"',  # labels are not a filter field
        'labels = "env=prod"',
        'env = "prod"',  # unknown field
        'name = "unterminated',
        'name == "x"',
        'name = "x" OR name = "y"',
        'name IN ("a", "b"',
        "name",
        'name "x"',
        "= 'x'",
        'name = "x" AND',
        r'name = "\q"',
        'created_at = "yesterday"',
        'name = "x" ; drop',
        "name = 'x'" + " AND name = 'x'" * 100,  # longer than 1000 characters
    ],
)
def test_bad_filters_are_invalid_argument(emu: EmulatorHandle, http: requests.Session, flt: str) -> None:
    resp = http.get(f"{emu.url}/compute/v1/instances", params={"folderId": demo.DEMO_FOLDER_ID, "filter": flt})
    assert_error(resp, 400, 3)
    assert resp.json()["details"][1]["fieldViolations"][0]["field"] == "filter"


# --- property tests: whatever the filter, the server answers 200 or 400 INVALID_ARGUMENT ------------------------

_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=120)
_PIECES = st.sampled_from(
    [
        "id", "name", "status", "zone_id", "created_at", "labels", "labels.env", "AND", "and", "IN", "NOT", "OR",
        "=", "!=", "==", "!", "(", ")", ",", '"', "'", "\\", '"x"', "'y'", '"a\\"b"', "'\\x41'", "'\\777'",
        "'\\u00e9'", "'\\U0010ffff'", "'\\U00110000'", "RUNNING", '"2026-01-15T10:00:00Z"', " ", "\t", "\n",
    ]
)  # fmt: skip
_GRAMMARISH = st.lists(st.one_of(_PIECES, _TEXT.filter(lambda s: len(s) < 8)), max_size=14).map(" ".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=st.one_of(_TEXT, _GRAMMARISH))
def test_arbitrary_filters_never_break_the_server(emu: EmulatorHandle, http: requests.Session, flt: str) -> None:
    resp = http.get(f"{emu.url}/compute/v1/instances", params={"folderId": demo.DEMO_FOLDER_ID, "filter": flt})
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 400:
        assert resp.json()["code"] == 3
    else:
        assert isinstance(resp.json().get("instances", []), list)


_VALUE = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
_FIELD = st.sampled_from(["id", "name", "status", "zone_id", "platform_id", "host_id"])


def _quote(value: str) -> str:
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@st.composite
def _valid_filter(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, list[str]]]]:
    conditions = []
    for _ in range(draw(st.integers(1, 3))):
        field = draw(_FIELD)
        op = draw(st.sampled_from(["=", "!=", "IN", "NOT IN"]))
        values = draw(st.lists(_VALUE, min_size=1, max_size=3)) if "IN" in op else [draw(_VALUE)]
        conditions.append((field, op, values))
    text = " AND ".join(
        f"{f} {op} ({', '.join(_quote(v) for v in vals)})" if "IN" in op else f"{f} {op} {_quote(vals[0])}"
        for f, op, vals in conditions
    )
    return text, conditions


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_valid_filter())
def test_well_formed_filters_are_accepted_and_parsed_back(
    emu: EmulatorHandle, http: requests.Session, case: tuple[str, list[tuple[str, str, list[str]]]]
) -> None:
    text, conditions = case
    parsed = parse(text)
    assert [(c.field, c.op, list(c.values)) for c in parsed] == conditions
    resp = http.get(f"{emu.url}/compute/v1/instances", params={"folderId": demo.DEMO_FOLDER_ID, "filter": text})
    assert resp.status_code == 200, resp.text


@given(text=_TEXT)
@settings(max_examples=300, deadline=None)
def test_parser_raises_only_filter_error(text: str) -> None:
    with contextlib.suppress(FilterError):
        parse(text)
