"""Every sample event (ours in events/ and the real AWS ones) parses to the right source, trigger id and body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backups.request import BackupRequest
from triggers.detect import REQUEST_KEYS, parse_event
from triggers.model import parse_json_object

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
# The shared references sit beside the repository (../shared), for developers and CI alike.
AWS_REFERENCE = ROOT.parent / "shared" / "reference" / "events" / "aws"
SAMPLE_REQUEST = {"policyId": "cbpdefaultdaily00001", "computeInstanceId": "fhmproddb00000000001", "reason": "sample"}


def body_of(message: Any) -> dict[str, Any]:
    """The message body as a JSON object (the one strict reader)."""
    return parse_json_object(message.body_text, "the message body")


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of one of our sample events."""
    value: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return value


def load_reference(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((AWS_REFERENCE / name).read_text())
    return value


OURS = {
    # file: (source, platform, kind, trigger_id, message_id, http path)
    "yc-timer.json": ("yc.timer", "yandex", "schedule", "a1s41g2n5g0oqdemo001", None, None),
    "yc-message-queue.json": (
        "yc.message-queue",
        "yandex",
        "queue",
        "cce76685-5828-4304-a83d-95643c0507a0",
        "cce76685-5828-4304-a83d-95643c0507a0",
        None,
    ),
    "yc-http.json": ("yc.http", "yandex", "http", "daf60d95-007e-44d3-8d06-1dfdd83f0ce0", None, "/"),
    "yc-api-gateway.json": ("yc.api-gateway", "yandex", "http", "nightly-2026-09-01", None, "/backup"),
    "aws-eventbridge-schedule.json": (
        "aws.eventbridge",
        "aws",
        "schedule",
        "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        None,
        None,
    ),
    "aws-scheduler.json": (
        "aws.scheduler",
        "aws",
        "schedule",
        "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly-backup|2026-09-01T02:00:00Z",
        None,
        None,
    ),
    "aws-sqs.json": (
        "aws.sqs",
        "aws",
        "queue",
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        None,
    ),
    "aws-api-gateway-rest.json": (
        "aws.api-gateway-rest",
        "aws",
        "http",
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        None,
        "/backup",
    ),
    "aws-http-api.json": ("aws.http-api", "aws", "http", "nightly-2026-09-01-http-api", None, "/backup"),
    "aws-function-url.json": ("aws.function-url", "aws", "http", "2a5e8f7c-93b4-4c0d-8d1e-6f2b7c9a1e44", None, "/"),
}


def test_every_file_in_events_is_covered() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == set(OURS)


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_sample_parses_to_its_source_with_the_sample_request(name: str) -> None:
    # Given one of our sample events
    source, platform, kind, trigger_id, message_id, path = OURS[name]
    # When it is parsed
    invocation = parse_event(load_event(name), None)
    # Then the source, identity and body are the expected ones
    assert (invocation.source, invocation.platform, invocation.kind) == (source, platform, kind)
    assert len(invocation.messages) == 1
    message = invocation.messages[0]
    assert message.trigger_id == trigger_id
    assert message.message_id == message_id
    assert body_of(message) == SAMPLE_REQUEST
    request = BackupRequest.model_validate(body_of(message))
    assert (request.policy_id, request.compute_instance_id) == ("cbpdefaultdaily00001", "fhmproddb00000000001")
    if path is None:
        assert invocation.http is None
    else:
        assert invocation.http is not None
        assert invocation.http.path == path
        assert invocation.http.method == "POST"
        assert invocation.http.content_type == "application/json"
        assert json.loads(invocation.http.body) == SAMPLE_REQUEST


REFERENCE = {
    # file: (source, [(trigger_id, body_text)], http (method, path, source_ip) or None)
    "apiGatewayProxyEvent.json": ("aws.api-gateway-rest", [("id=", "Hello from Lambda!")], ("GET", "/my/path")),
    "apiGatewayProxyV2Event.json": (
        "aws.http-api",
        [("id", '{"message": "hello world", "username": "tom"}')],
        ("POST", "/my/path"),
    ),
    "lambdaFunctionUrlEvent.json": ("aws.function-url", [("id", "")], ("GET", "/")),
    "sqsEvent.json": (
        "aws.sqs",
        [
            ("059f36b4-87a3-44ab-83d2-661975830a7d", "Test message."),
            ("2e1424d4-f796-459a-8184-9c92662be6da", '{"message": "foo1"}'),
        ],
        None,
    ),
    "eventBridgeEvent.json": (
        "aws.eventbridge",
        [("6a7e8feb-b491-4cf7-a9f1-bf3703467718", '{"instance_id":"i-1234567890abcdef0","state":"terminated"}')],
        None,
    ),
}


def test_every_reference_sample_is_covered() -> None:
    assert {p.name for p in AWS_REFERENCE.glob("*.json")} == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_real_aws_sample_parses(name: str) -> None:
    source, expected, http = REFERENCE[name]
    invocation = parse_event(load_reference(name), None)
    assert invocation.source == source
    assert invocation.platform == "aws"
    assert [(m.trigger_id, m.body_text) for m in invocation.messages] == expected
    if http is None:
        assert invocation.http is None
    else:
        assert invocation.http is not None
        assert (invocation.http.method, invocation.http.path) == http


def test_real_rest_sample_headers_query_and_ip() -> None:
    invocation = parse_event(load_reference("apiGatewayProxyEvent.json"), None)
    assert invocation.http is not None
    assert invocation.http.headers["header1"] == "value1"
    assert invocation.http.header("ORIGIN") == "https://aws.amazon.com"
    assert invocation.http.query == {"parameter1": "value1", "parameter2": "value"}
    assert invocation.http.source_ip == "192.168.0.1/32"
    assert invocation.http.request_id == "id="
    assert invocation.messages[0].received_at.year == 2020


def test_real_sqs_sample_attributes_and_times() -> None:
    invocation = parse_event(load_reference("sqsEvent.json"), None)
    first = invocation.messages[0]
    assert first.attributes["ApproximateReceiveCount"] == "1"
    assert first.message_attributes == {"testAttr": "100"}
    assert first.received_at.timestamp() == pytest.approx(1545082649.183)


def test_request_keys_match_backup_request_fields() -> None:
    # detect.py keeps its own copy so that importing it does not import the domain models.
    names = set(BackupRequest.model_fields)
    aliases = {field.alias for field in BackupRequest.model_fields.values() if field.alias}
    assert names | aliases == REQUEST_KEYS


def test_importing_detect_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.path[:0] = ['function']; import triggers.detect, triggers.http, triggers.queue; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'aws_lambda_powertools', 'requests', 'backups')]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
