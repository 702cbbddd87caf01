"""Yandex Cloud Functions envelopes: timer, Message Queue batches, HTTP calls (direct and API Gateway)."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.test_triggers_samples import SAMPLE_REQUEST, body_of, load_event
from triggers.detect import parse_event
from triggers.model import MalformedEvent, UnrecognisedEvent
from triggers.yandex import QUEUE_TYPE, TIMER_TYPE


def queue_message(message_id: str, body: str, created_at: Any = "2026-09-01T02:00:01.5Z", **attributes: str) -> dict:
    return {
        "event_metadata": {"event_id": message_id, "event_type": QUEUE_TYPE, "created_at": created_at},
        "details": {
            "queue_id": "yrn:yc:ymq:ru-central1:b1gfolder:requests",
            "message": {
                "message_id": message_id,
                "md5_of_body": "x",
                "body": body,
                "attributes": {"SentTimestamp": "1788228001456", **attributes},
                "message_attributes": {"kind": {"dataType": "String", "stringValue": "followup"}},
            },
        },
    }


class YcContext:
    request_id = "yc-request-1"
    aws_request_id = "yc-request-1"
    token = {"access_token": "t"}


def test_timer_payload_is_the_body_and_event_id_the_trigger_id() -> None:
    event = load_event("yc-timer.json")
    assert event["messages"][0]["event_metadata"]["event_type"] == TIMER_TYPE
    invocation = parse_event(event, YcContext())
    message = invocation.messages[0]
    assert invocation.source == "yc.timer"
    assert message.trigger_id == "a1s41g2n5g0oqdemo001"
    assert message.body_text == json.dumps(SAMPLE_REQUEST)
    assert message.received_at == datetime(2026, 9, 1, 2, 0, 0, 227761, tzinfo=UTC)
    assert message.message_id is None


def test_timer_without_payload_has_an_empty_body() -> None:
    event = load_event("yc-timer.json")
    del event["messages"][0]["details"]["payload"]
    message = parse_event(event, None).messages[0]
    assert message.body_text == ""
    assert body_of(message) == {}


def test_timer_with_text_payload_keeps_it_raw() -> None:
    event = load_event("yc-timer.json")
    event["messages"][0]["details"]["payload"] = "payload-message"
    message = parse_event(event, None).messages[0]
    assert message.body_text == "payload-message"
    with pytest.raises(ValueError, match="not valid JSON"):
        body_of(message)


def test_timer_is_recognised_by_shape_without_event_type() -> None:
    event = load_event("yc-timer.json")
    del event["messages"][0]["event_metadata"]["event_type"]
    assert parse_event(event, None).source == "yc.timer"


def test_timer_without_event_id_is_malformed() -> None:
    event = load_event("yc-timer.json")
    del event["messages"][0]["event_metadata"]["event_id"]
    with pytest.raises(MalformedEvent, match=r"messages\[0\]\.event_metadata\.event_id") as caught:
        parse_event(event, None)
    assert caught.value.source is None  # timer or queue: only the parser knew
    assert caught.value.kind is None


def test_queue_batch_keeps_every_message_in_order_with_ids_and_attributes() -> None:
    event = {
        "messages": [
            queue_message("m-1", json.dumps(SAMPLE_REQUEST), ApproximateReceiveCount="3"),
            queue_message("m-2", '{"kind":"followup"}'),
            queue_message("m-3", "not json"),
        ]
    }
    invocation = parse_event(event, None)
    assert (invocation.source, invocation.platform, invocation.kind) == ("yc.message-queue", "yandex", "queue")
    assert [m.message_id for m in invocation.messages] == ["m-1", "m-2", "m-3"]
    assert [m.trigger_id for m in invocation.messages] == ["m-1", "m-2", "m-3"]
    assert body_of(invocation.messages[0]) == SAMPLE_REQUEST
    assert invocation.messages[0].attributes["ApproximateReceiveCount"] == "3"
    assert invocation.messages[1].message_attributes == {"kind": "followup"}
    assert invocation.messages[2].body_text == "not json"


@pytest.mark.parametrize(
    "created_at",
    [
        "2026-09-01T02:00:01.5Z",
        "2026-09-01T02:00:01.500000000Z",
        "2026-09-01T05:00:01.5+03:00",
        {"seconds": 1788228001, "nanos": 500000000},
        {"seconds": "1788228001", "nanos": 500000000},
    ],
)
def test_queue_created_at_rfc3339_or_seconds_nanos(created_at: Any) -> None:
    message = parse_event({"messages": [queue_message("m-1", "{}", created_at)]}, None).messages[0]
    assert message.received_at == datetime(2026, 9, 1, 2, 0, 1, 500000, tzinfo=UTC)


def test_queue_unreadable_created_at_falls_back_to_sent_timestamp() -> None:
    message = parse_event({"messages": [queue_message("m-1", "{}", {"seconds": "soon"})]}, None).messages[0]
    assert message.received_at.timestamp() == pytest.approx(1788228001.456)


def test_queue_body_must_be_text() -> None:
    event = {"messages": [queue_message("m-1", "{}")]}
    event["messages"][0]["details"]["message"]["body"] = {"policyId": "x"}
    with pytest.raises(MalformedEvent, match=r"details\.message\.body must be a string") as caught:
        parse_event(event, None)
    assert caught.value.kind is None


def test_queue_body_over_the_limit_is_body_too_large() -> None:
    from triggers.model import BodyTooLarge

    event = {"messages": [queue_message("m-1", "x" * 101)]}
    with pytest.raises(BodyTooLarge) as caught:
        parse_event(event, None, max_body_bytes=100)
    assert caught.value.http_status == 413
    assert parse_event(event, None, max_body_bytes=101).messages[0].body_text == "x" * 101
    # the limit counts UTF-8 bytes, not characters
    with pytest.raises(BodyTooLarge):
        parse_event({"messages": [queue_message("m-1", "é" * 51)]}, None, max_body_bytes=101)


def test_mixed_event_types_in_one_batch_are_malformed() -> None:
    event = {"messages": [queue_message("m-1", "{}"), load_event("yc-timer.json")["messages"][0]]}
    with pytest.raises(MalformedEvent, match="mixes event types"):
        parse_event(event, None)


def test_other_yandex_trigger_types_are_unrecognised() -> None:
    event = {
        "messages": [
            {
                "event_metadata": {"event_id": "e", "event_type": "yandex.cloud.events.storage.ObjectCreate"},
                "details": {"bucket_id": "b", "object_id": "o"},
            }
        ]
    }
    with pytest.raises(UnrecognisedEvent, match="unsupported Yandex Cloud trigger event type"):
        parse_event(event, None)


def test_empty_messages_list_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="messages is empty"):
        parse_event({"messages": []}, None)


# --- HTTP ---


def test_direct_http_call_has_root_path_and_request_id_trigger() -> None:
    invocation = parse_event(load_event("yc-http.json"), YcContext())
    assert invocation.source == "yc.http"
    assert invocation.http is not None
    assert invocation.http.path == "/"
    assert invocation.http.source_ip == "203.0.113.10"
    assert invocation.http.request_id == "daf60d95-007e-44d3-8d06-1dfdd83f0ce0"
    assert invocation.messages[0].trigger_id == "daf60d95-007e-44d3-8d06-1dfdd83f0ce0"
    assert invocation.messages[0].received_at == datetime(2026, 9, 1, 2, 0, 2, tzinfo=UTC)


def test_minimal_direct_http_call_without_yandex_extras() -> None:
    event = {
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": "{}",
        "isBase64Encoded": False,
        "requestContext": {"requestId": "r-1"},
    }
    invocation = parse_event(event, None)
    assert invocation.source == "yc.http"
    assert invocation.messages[0].trigger_id == "r-1"


def test_direct_http_call_without_request_id_uses_the_context_request_id() -> None:
    event = load_event("yc-http.json")
    del event["requestContext"]["requestId"]
    assert parse_event(event, YcContext()).messages[0].trigger_id == "yc-request-1"


def test_direct_http_base64_body_is_decoded() -> None:
    event = load_event("yc-http.json")
    raw = json.dumps(SAMPLE_REQUEST).encode()
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    invocation = parse_event(event, None)
    assert invocation.http is not None
    assert invocation.http.body == raw
    assert body_of(invocation.messages[0]) == SAMPLE_REQUEST


def test_api_gateway_v01_path_is_the_url_actually_asked_for() -> None:
    event = load_event("yc-api-gateway.json")
    event["path"] = "/backups/{id}"
    event["url"] = "/backups/abc?x=1"
    invocation = parse_event(event, None)
    assert invocation.source == "yc.api-gateway"
    assert invocation.http is not None
    assert invocation.http.path == "/backups/abc"
    assert invocation.http.query == {"dryRun": "false"}


def test_api_gateway_v10_is_yandex_not_aws_rest() -> None:
    event = copy.deepcopy(load_event("yc-api-gateway.json"))
    for key in ("url", "pathParams", "params", "multiValueParams"):
        event.pop(key)
    event.update(
        {"version": "1.0", "resource": "/backups", "path": "/backups", "operationId": "runBackup", "parameters": {}}
    )
    invocation = parse_event(event, None)
    assert invocation.source == "yc.api-gateway"
    assert invocation.http is not None
    assert invocation.http.path == "/backups"


def test_api_gateway_idempotency_key_wins_over_request_id() -> None:
    invocation = parse_event(load_event("yc-api-gateway.json"), None)
    assert invocation.messages[0].trigger_id == "nightly-2026-09-01"
    assert invocation.http is not None
    assert invocation.http.request_id == "7e8d2c5a-1b4f-4c1e-9a55-3f1c2d9b8e01"


def test_http_error_carries_source_and_kind_for_the_reply() -> None:
    event = load_event("yc-http.json")
    event["isBase64Encoded"] = True
    event["body"] = "%%%not base64%%%"
    with pytest.raises(MalformedEvent, match="not valid base64") as caught:
        parse_event(event, None)
    assert (caught.value.source, caught.value.kind) == ("yc.http", "http")
    assert caught.value.http_status == 400
