"""Property tests: whatever comes in, parse_event returns a valid Invocation or raises one of its two errors.

The internal `_parse` (without parse_event's last-resort guard) is held to the same contract, so a bug that the
guard would hide still fails these tests.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_triggers_samples import AWS_REFERENCE, EVENTS
from triggers import detect
from triggers.detect import parse_event
from triggers.model import Invocation, MalformedEvent, UnrecognisedEvent

SAMPLES: dict[str, Any] = {
    path.name: json.loads(path.read_text()) for path in [*EVENTS.glob("*.json"), *AWS_REFERENCE.glob("*.json")]
}
MAX_BODY = 256

text = st.text(max_size=40) | st.sampled_from(["", "aws:sqs", "2.0", "1.0", "$default", "\ud800", "\x00", "é" * 30])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
key_names = st.sampled_from(
    [
        "messages",
        "Records",
        "detail-type",
        "source",
        "detail",
        "scheduler",
        "request",
        "httpMethod",
        "requestContext",
        "version",
        "rawPath",
        "routeKey",
        "path",
        "url",
        "body",
        "isBase64Encoded",
        "headers",
        "policyId",
        "correlationId",
    ]
)
shaped = st.dictionaries(key_names, json_like, max_size=6)


class Context:
    request_id = "ctx-request"
    aws_request_id = "ctx-request"


def assert_contract(event: Any) -> None:
    for parse in (parse_event, lambda e, c, **kw: detect._parse(e, c, kw["max_body_bytes"])):
        try:
            invocation = parse(event, Context(), max_body_bytes=MAX_BODY)
        except (UnrecognisedEvent, MalformedEvent) as exc:
            error = str(exc)
            assert error and len(error) < 600
            continue
        assert isinstance(invocation, Invocation)
        assert invocation.messages
        for message in invocation.messages:
            assert message.trigger_id
            assert len(message.body_text.encode("utf-8")) <= MAX_BODY
        if invocation.kind == "http":
            assert invocation.http is not None
            assert len(invocation.http.body) <= MAX_BODY
            assert all(name == name.lower() for name in invocation.http.headers)
        else:
            assert invocation.http is None
        # the models round-trip: a caller may log or persist them
        Invocation.model_validate(invocation.model_dump())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_like)
def test_arbitrary_json_values(event: Any) -> None:
    assert_contract(event)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped)
def test_objects_with_trigger_keys(event: Any) -> None:
    assert_contract(event)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


def mutate(event: Any, data: st.DataObject) -> Any:
    event = copy.deepcopy(event)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p in _paths(event) if p]
        if not paths:
            return event
        path = data.draw(st.sampled_from(paths))
        parent, key = _parent(event, path), path[-1]
        operation = data.draw(
            st.sampled_from(
                ["drop", "swap", "truncate", "bad_base64", "oversize", "oversize_base64", "non_utf8", "surrogate"]
            )
        )
        if operation == "drop":
            del parent[key]
        elif operation == "swap":
            parent[key] = data.draw(json_like)
        elif operation == "truncate" and isinstance(parent[key], str):
            parent[key] = parent[key][: data.draw(st.integers(0, max(0, len(parent[key]) - 1)))]
        elif operation == "bad_base64" and isinstance(parent, dict):
            parent["body"] = data.draw(st.sampled_from(["%%%", "abc", "a===", "é", "YWJj\n"]))
            parent["isBase64Encoded"] = True
        elif operation == "oversize":
            parent[key] = "x" * data.draw(st.integers(MAX_BODY - 2, MAX_BODY * 4))
        elif operation == "oversize_base64" and isinstance(parent, dict):
            size = data.draw(st.integers(MAX_BODY - 2, MAX_BODY * 4))
            parent["body"] = base64.b64encode(b"x" * size).decode()
            parent["isBase64Encoded"] = True
        elif operation == "non_utf8" and isinstance(parent, dict):
            parent["body"] = base64.b64encode(b"\xff\xfe" + bytes(data.draw(st.binary(max_size=8)))).decode()
            parent["isBase64Encoded"] = True
        elif operation == "surrogate":
            parent[key] = "\udcff" + (parent[key] if isinstance(parent[key], str) else "")
    return event


@pytest.mark.parametrize("name", sorted(SAMPLES))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_samples(name: str, data: st.DataObject) -> None:
    assert_contract(mutate(SAMPLES[name], data))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_unmutated_samples_satisfy_the_contract(name: str) -> None:
    # the properties above are only meaningful if the samples themselves parse (within a generous limit)
    invocation = parse_event(copy.deepcopy(SAMPLES[name]), Context())
    assert isinstance(invocation, Invocation)


def test_deeply_nested_direct_request_is_malformed_not_a_crash() -> None:
    nested: Any = "leaf"
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(MalformedEvent):
        parse_event({"reason": nested}, None)


def test_huge_string_event_is_rejected_quickly() -> None:
    with pytest.raises((UnrecognisedEvent, MalformedEvent)):
        parse_event("x" * 5_000_000, None)


def test_sample_files_are_valid_json_on_disk() -> None:
    for path in EVENTS.glob("*.json"):
        assert isinstance(json.loads(Path(path).read_text()), dict)
