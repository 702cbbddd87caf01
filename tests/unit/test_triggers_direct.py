"""Direct invocations (a plain request object), unrecognised shapes, and what error messages may contain."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.unit.test_triggers_samples import SAMPLE_REQUEST, body_of
from triggers.detect import parse_event
from triggers.model import BodyTooLarge, MalformedEvent, TriggerError, UnrecognisedEvent


class YcContext:
    request_id = "yc-req"
    aws_request_id = "yc-aws-req"


class AwsContext:
    aws_request_id = "aws-req"


class BrokenContext:
    @property
    def request_id(self) -> str:
        raise RuntimeError("boom")


def test_plain_request_is_direct_with_the_body_as_json() -> None:
    invocation = parse_event(dict(SAMPLE_REQUEST), None)
    assert (invocation.source, invocation.platform, invocation.kind) == ("direct", "direct", "direct")
    assert invocation.http is None
    assert body_of(invocation.messages[0]) == SAMPLE_REQUEST


@pytest.mark.parametrize(
    ("context", "expected"),
    [(YcContext(), "yc-req"), (AwsContext(), "aws-req"), ({"aws_request_id": "dict-req"}, "dict-req")],
)
def test_direct_trigger_id_comes_from_the_context(context: Any, expected: str) -> None:
    assert parse_event(dict(SAMPLE_REQUEST), context).messages[0].trigger_id == expected


def test_direct_correlation_id_wins_over_the_context() -> None:
    body = dict(SAMPLE_REQUEST, correlationId="ticket-77")
    assert parse_event(body, AwsContext()).messages[0].trigger_id == "ticket-77"


@pytest.mark.parametrize("context", [None, object(), BrokenContext(), {"request_id": 5}])
def test_direct_without_any_id_gets_a_uuid(context: Any) -> None:
    first = parse_event(dict(SAMPLE_REQUEST), context).messages[0].trigger_id
    second = parse_event(dict(SAMPLE_REQUEST), context).messages[0].trigger_id
    assert uuid.UUID(first) and uuid.UUID(second)
    assert first != second


def test_empty_object_is_a_direct_request_with_defaults() -> None:
    invocation = parse_event({}, AwsContext())
    assert invocation.source == "direct"
    assert body_of(invocation.messages[0]) == {}


@pytest.mark.parametrize("text", ["", "  "])
def test_empty_text_event_is_a_direct_empty_request(text: str) -> None:
    # `yc serverless function invoke` with no data sends an empty string
    assert body_of(parse_event(text, YcContext()).messages[0]) == {}


def test_json_text_event_is_read_as_the_object() -> None:
    invocation = parse_event(json.dumps(SAMPLE_REQUEST), None)
    assert invocation.source == "direct"
    assert body_of(invocation.messages[0]) == SAMPLE_REQUEST


def test_snake_case_request_is_direct() -> None:
    assert parse_event({"policy_id": "p1"}, None).source == "direct"


def test_direct_request_over_the_limit() -> None:
    with pytest.raises(BodyTooLarge) as caught:
        parse_event({"reason": "r" * 1000}, None, max_body_bytes=500)
    assert (caught.value.source, caught.value.kind) == ("direct", "direct")


@pytest.mark.parametrize(
    "event",
    [None, 42, 1.5, True, [], [{"policyId": "x"}], {"hello": "world"}, "not json", "[1]", '{"x": 1}', b"\xff"],
)
def test_other_values_are_unrecognised_with_the_expected_shapes_named(event: Any) -> None:
    with pytest.raises(UnrecognisedEvent) as caught:
        parse_event(event, None)
    message = str(caught.value)
    assert "messages[].details" in message
    assert "Records, detail-type, requestContext" in message
    assert "backup request object" in message
    assert isinstance(caught.value, ValueError)


def test_error_messages_do_not_echo_input() -> None:
    secret = "<script>alert('s3cr3t')</script>" * 10
    candidates: list[Any] = [
        {"hello": secret},
        {"messages": [{"event_metadata": {"event_type": secret}, "details": {}}]},
        {"Records": [{"eventSource": secret}]},
        {"httpMethod": secret, "requestContext": {"requestId": "r"}},
        {"detail-type": "x", "source": "y", "id": secret + "\x00"},
        secret,
    ]
    for event in candidates:
        with pytest.raises(TriggerError) as caught:
            parse_event(event, None)
        message = str(caught.value)
        assert secret not in message
        assert len(message) < 600
        assert message.isprintable()


def test_unexpected_internal_errors_become_malformed_events() -> None:
    class Hostile(dict):  # a mapping whose reads blow up
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("hostile")

    with pytest.raises(MalformedEvent, match="could not be read"):
        parse_event(Hostile(messages=[]), None)
