"""AWS envelopes: SQS batches, EventBridge, Scheduler envelopes, REST v1 / HTTP API v2 / Function URL detection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.test_triggers_samples import SAMPLE_REQUEST, body_of, load_event, load_reference
from triggers.detect import parse_event
from triggers.model import MalformedEvent, UnrecognisedEvent


class AwsContext:
    aws_request_id = "aws-request-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:backup"


def sqs_record(message_id: str, body: str, receive_count: str = "1") -> dict[str, Any]:
    record = load_reference("sqsEvent.json")["Records"][0]
    record.update({"messageId": message_id, "body": body})
    record["attributes"]["ApproximateReceiveCount"] = receive_count
    return record


def test_sqs_batch_keeps_every_message_with_its_id_and_receive_count() -> None:
    event = {"Records": [sqs_record(f"id-{i}", json.dumps({"n": i}), str(i + 1)) for i in range(5)]}
    invocation = parse_event(event, AwsContext())
    assert (invocation.source, invocation.platform, invocation.kind) == ("aws.sqs", "aws", "queue")
    assert [m.message_id for m in invocation.messages] == [f"id-{i}" for i in range(5)]
    assert [m.trigger_id for m in invocation.messages] == [f"id-{i}" for i in range(5)]
    assert [body_of(m) for m in invocation.messages] == [{"n": i} for i in range(5)]
    assert [m.attributes["ApproximateReceiveCount"] for m in invocation.messages] == ["1", "2", "3", "4", "5"]


def test_sqs_record_from_another_source_in_the_batch_is_malformed() -> None:
    record = sqs_record("id-2", "{}")
    record["eventSource"] = "aws:kinesis"
    with pytest.raises(MalformedEvent, match=r"Records\[1\]\.eventSource") as caught:
        parse_event({"Records": [sqs_record("id-1", "{}"), record]}, None)
    assert (caught.value.source, caught.value.kind) == ("aws.sqs", "queue")


def test_records_of_other_services_are_unrecognised() -> None:
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}
    with pytest.raises(UnrecognisedEvent, match="only aws:sqs"):
        parse_event(sns, None)


def test_sqs_without_message_id_is_malformed() -> None:
    record = sqs_record("id-1", "{}")
    del record["messageId"]
    with pytest.raises(MalformedEvent, match=r"Records\[0\]\.messageId"):
        parse_event({"Records": [record]}, None)


def test_eventbridge_request_is_the_detail() -> None:
    invocation = parse_event(load_event("aws-eventbridge-schedule.json"), None)
    message = invocation.messages[0]
    assert (invocation.source, invocation.kind) == ("aws.eventbridge", "schedule")
    assert message.trigger_id == "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"
    assert body_of(message) == SAMPLE_REQUEST
    assert message.received_at == datetime(2026, 9, 1, 2, tzinfo=UTC)
    assert message.attributes == {
        "detailType": "Scheduled Event",
        "source": "aws.events",
        "resource": "arn:aws:events:us-east-1:123456789012:rule/nightly-backup",
    }


def test_scheduled_event_with_empty_detail_is_an_empty_request() -> None:
    event = load_event("aws-eventbridge-schedule.json")
    event["detail"] = {}
    assert body_of(parse_event(event, None).messages[0]) == {}


def test_eventbridge_detail_of_a_wrong_type_is_malformed() -> None:
    event = load_event("aws-eventbridge-schedule.json")
    event["detail"] = [1, 2]
    with pytest.raises(MalformedEvent, match="detail must be an object"):
        parse_event(event, None)


def test_scheduler_envelope_trigger_id_is_stable_across_attempts() -> None:
    first = load_event("aws-scheduler.json")
    retry = load_event("aws-scheduler.json")
    retry["scheduler"].update({"executionId": "e0ther1d", "attemptNumber": "2"})
    a, b = parse_event(first, None), parse_event(retry, None)
    assert a.source == b.source == "aws.scheduler"
    assert a.messages[0].trigger_id == b.messages[0].trigger_id
    assert body_of(a.messages[0]) == SAMPLE_REQUEST
    assert b.messages[0].attributes["attemptNumber"] == "2"
    assert a.messages[0].received_at == datetime(2026, 9, 1, 2, tzinfo=UTC)


def test_scheduler_with_unsubstituted_placeholders_is_malformed() -> None:
    event = load_event("aws-scheduler.json")
    event["scheduler"]["scheduledTime"] = "<aws.scheduler.scheduled-time>"
    with pytest.raises(MalformedEvent, match="unsubstituted"):
        parse_event(event, None)


def test_scheduler_envelope_with_unknown_keys_is_malformed() -> None:
    event = load_event("aws-scheduler.json")
    event["requests"] = event.pop("request")
    with pytest.raises(MalformedEvent, match="only the keys"):
        parse_event(event, None)


def test_scheduler_plain_request_input_is_direct_with_the_lambda_request_id() -> None:
    invocation = parse_event(dict(SAMPLE_REQUEST), AwsContext())
    assert (invocation.source, invocation.platform, invocation.kind) == ("direct", "direct", "direct")
    assert invocation.messages[0].trigger_id == "aws-request-1"


def test_rest_v1_is_told_apart_from_yandex_by_its_request_context() -> None:
    event = load_event("aws-api-gateway-rest.json")
    del event["resource"]
    assert parse_event(event, None).source == "aws.api-gateway-rest"


def test_http_api_v2_and_function_url_differ_by_domain() -> None:
    v2 = load_event("aws-http-api.json")
    url = load_event("aws-http-api.json")
    url["requestContext"]["domainName"] = "abcdef.lambda-url.us-east-1.on.aws"
    assert parse_event(v2, None).source == "aws.http-api"
    assert parse_event(url, None).source == "aws.function-url"


def test_http_api_v2_query_ip_and_time() -> None:
    invocation = parse_event(load_reference("apiGatewayProxyV2Event.json"), None)
    assert invocation.http is not None
    assert invocation.http.query == {"parameter1": "value1,value2", "parameter2": "value"}
    assert invocation.http.source_ip == "192.168.0.1/32"
    assert invocation.messages[0].received_at.timestamp() == pytest.approx(1583348638.390)


def test_function_url_without_body_has_empty_bytes() -> None:
    invocation = parse_event(load_reference("lambdaFunctionUrlEvent.json"), None)
    assert invocation.http is not None
    assert invocation.http.body == b""
    assert invocation.http.header("X-Forwarded-For") == "123.123.123.123"


def test_alb_events_are_unrecognised() -> None:
    alb = {"requestContext": {"elb": {"targetGroupArn": "arn"}}, "httpMethod": "GET", "path": "/", "body": ""}
    with pytest.raises(UnrecognisedEvent, match="Load Balancer"):
        parse_event(alb, None)
