"""The emulator's Monitoring write endpoint: validated as the reference says, recorded, readable back."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from local.emulator import EmulatorHandle
from local.emulator import seed as demo
from local.emulator.errors import ApiError
from local.emulator.monitoring import parse_write

WRITE = "/monitoring/v2/data/write"
QUERY = {"folderId": demo.DEMO_FOLDER_ID, "service": "custom"}


def write(emu: EmulatorHandle, body: Any, token: str | None = None, **query: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or emu.token}"} if token != "" else {}
    return requests.post(emu.url + WRITE, params={**QUERY, **query}, json=body, headers=headers)


def test_a_write_is_recorded_and_read_back(emu: EmulatorHandle) -> None:
    body = {
        "ts": "2026-11-27T12:00:00Z",
        "labels": {"function": "yc-backup"},
        "metrics": [
            {"name": "backups.succeeded", "labels": {"policy": "daily"}, "type": "COUNTER", "value": 1},
            {"name": "backup.duration", "timeseries": [{"ts": "2026-11-27T12:01:00Z", "value": 5400.0}, {"value": 2}]},
        ],
    }
    resp = write(emu, body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"writtenMetricsCount": "3"}
    points = emu.state.metric_points()
    assert points[0] == {
        "name": "backups.succeeded",
        "labels": {"function": "yc-backup", "policy": "daily"},
        "type": "COUNTER",
        "ts": "2026-11-27T12:00:00.000000Z",
        "value": 1.0,
    }
    assert [p["ts"] for p in points[1:]] == ["2026-11-27T12:01:00.000000Z", "2026-11-27T12:00:00.000000Z"]
    assert all(p["type"] == "DGAUGE" for p in points[1:])  # the default type
    control = requests.get(f"{emu.url}/_emulator/metrics", params={"name": "backup.duration"}).json()
    assert [p["value"] for p in control["points"]] == [5400.0, 2.0]
    assert control["writes"][0]["folderId"] == demo.DEMO_FOLDER_ID
    assert control["writes"][0]["subject"] == demo.DEMO_USER_ID
    assert requests.delete(f"{emu.url}/_emulator/metrics").status_code == 200
    assert emu.state.metric_writes == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "metrics"),
        ({"metrics": []}, "metrics"),
        ({"metrics": [{"value": 1}]}, "metrics[0].name"),
        ({"metrics": [{"name": "m"}]}, "metrics[0].value"),
        ({"metrics": [{"name": "m", "value": 1, "timeseries": [{"value": 1}]}]}, "metrics[0].value"),
        ({"metrics": [{"name": "m", "value": "1"}]}, "metrics[0].value"),
        ({"metrics": [{"name": "m", "value": True}]}, "metrics[0].value"),
        ({"metrics": [{"name": "m", "value": 1, "type": "HISTOGRAM"}]}, "metrics[0].type"),
        ({"metrics": [{"name": "m", "value": 1, "ts": "yesterday"}]}, "metrics[0].ts"),
        ({"metrics": [{"name": "m", "value": 1, "ts": "2026-11-27T12:00:00"}]}, "metrics[0].ts"),
        ({"metrics": [{"name": "m", "value": 1, "labels": {"a": 1}}]}, "metrics[0].labels"),
        ({"metrics": [{"name": "m", "value": 1, "unit": "s"}]}, "metrics[0].unit"),
        (
            {"metrics": [{"name": "m", "timeseries": [{"ts": "2026-11-27T12:00:00Z"}]}]},
            "metrics[0].timeseries[0].value",
        ),
        ({"metrics": [{"name": "m", "value": 1}], "extra": 1}, "body.extra"),
        ({"labels": ["x"], "metrics": [{"name": "m", "value": 1}]}, "labels"),
    ],
)
def test_invalid_bodies_are_refused_with_the_field(emu: EmulatorHandle, body: Any, field: str) -> None:
    resp = write(emu, body)
    assert resp.status_code == 400, resp.text
    status = resp.json()
    assert status["code"] == 3
    assert status["details"][1]["fieldViolations"][0]["field"] == field
    assert emu.state.metric_writes == []


def test_auth_folder_service_and_query(emu: EmulatorHandle) -> None:
    ok = {"metrics": [{"name": "m", "value": 1}]}
    assert write(emu, ok, token="").status_code == 401
    assert write(emu, ok, token="t1.nope.nope").status_code == 401
    assert write(emu, ok, folderId=demo.OTHER_FOLDER_ID).status_code == 403
    assert write(emu, ok, token=demo.VIEWER_TOKEN).status_code == 403  # read-only: no monitoring.editor
    assert write(emu, ok, service="compute").status_code == 400
    assert write(emu, ok, folderId="NOT AN ID").status_code == 400
    assert write(emu, ok, region="ru-central1").status_code == 400  # unknown query parameter
    bearer = {"Authorization": f"Bearer {emu.token}"}
    no_folder = requests.post(emu.url + WRITE, params={"service": "custom"}, json=ok, headers=bearer)
    assert no_folder.status_code == 400
    assert requests.get(emu.url + WRITE, params=QUERY).status_code == 501  # the wrong verb
    assert emu.state.metric_writes == []


def test_writes_go_through_faults_like_any_call(emu: EmulatorHandle) -> None:
    emu.state.add_fault(path=WRITE, rate_503=1.0, times=1)
    ok = {"metrics": [{"name": "m", "value": 1}]}
    assert write(emu, ok).status_code == 503
    assert write(emu, ok).status_code == 200
    assert len(emu.state.metric_writes) == 1


json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
keys = st.sampled_from(["name", "value", "ts", "labels", "type", "timeseries", "metrics", "x"])
json_any = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4), max_leaves=10
)


@settings(max_examples=300)
@given(body=st.dictionaries(st.sampled_from(["metrics", "labels", "ts", "x"]), json_any, max_size=3))
def test_any_body_is_points_or_invalid_argument(body: dict[str, Any]) -> None:
    """Hostile bodies: parse_write returns points or raises INVALID_ARGUMENT, nothing else."""
    try:
        points = parse_write(body, 1_800_000_000.0)
    except ApiError as exc:
        assert exc.code == 3 and exc.field
        return
    assert points and all(isinstance(p["value"], float) and p["name"] for p in points)


valid_metric = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=20).filter(str.strip),
        "value": st.floats(allow_nan=False, allow_infinity=False),
    },
    optional={
        "labels": st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=3),
        "type": st.sampled_from(["DGAUGE", "GAUGE", "COUNTER", "RATE", "IGAUGE"]),
    },
)


@given(metrics=st.lists(valid_metric, min_size=1, max_size=5), common=st.dictionaries(st.just("app"), st.text()))
def test_valid_metrics_are_all_recorded_with_merged_labels(metrics: list[dict[str, Any]], common: dict) -> None:
    points = parse_write({"labels": common, "metrics": metrics}, 1_800_000_000.0)
    assert [(p["name"], p["value"]) for p in points] == [(m["name"], float(m["value"])) for m in metrics]
    assert all(p["labels"] == {**common, **m.get("labels", {})} for p, m in zip(points, metrics, strict=True))
