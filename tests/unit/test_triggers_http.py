"""HTTP request normalisation (headers, Idempotency-Key, base64, limits), body decoding and replies per platform."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.unit.test_triggers_samples import OURS, SAMPLE_REQUEST, load_event
from triggers.detect import parse_event
from triggers.http import decode_body, error_reply, http_reply
from triggers.model import (
    BodyTooLarge,
    HttpRequest,
    InvalidBody,
    MalformedEvent,
    UnsupportedMediaType,
)

HTTP_SAMPLES = sorted(name for name, expected in OURS.items() if expected[2] == "http")


def set_header(event: dict[str, Any], name: str, value: str) -> None:
    event["headers"][name] = value
    if "multiValueHeaders" in event and isinstance(event["multiValueHeaders"], dict):
        event["multiValueHeaders"][name] = [value]


def drop_header(event: dict[str, Any], name: str) -> None:
    for key in list(event["headers"]):
        if key.lower() == name.lower():
            del event["headers"][key]


@pytest.mark.parametrize("name", HTTP_SAMPLES)
@pytest.mark.parametrize("spelling", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
def test_idempotency_key_header_wins_in_any_case(name: str, spelling: str) -> None:
    event = load_event(name)
    drop_header(event, "idempotency-key")
    set_header(event, spelling, "client-key-42")
    invocation = parse_event(event, None)
    assert invocation.messages[0].trigger_id == "client-key-42"
    assert invocation.http is not None
    assert invocation.http.header("Idempotency-Key") == "client-key-42"
    assert invocation.http.request_id != "client-key-42"


@pytest.mark.parametrize("name", HTTP_SAMPLES)
def test_without_idempotency_key_the_platform_request_id_is_the_trigger_id(name: str) -> None:
    event = load_event(name)
    drop_header(event, "idempotency-key")
    invocation = parse_event(event, None)
    assert invocation.http is not None
    assert invocation.messages[0].trigger_id == invocation.http.request_id


@pytest.mark.parametrize("bad", ["", "   ", "x" * 129, "bad\x01key", "ключ"])
def test_invalid_idempotency_key_is_malformed(bad: str) -> None:
    event = load_event("aws-http-api.json")
    set_header(event, "idempotency-key", bad)
    with pytest.raises(MalformedEvent, match="Idempotency-Key"):
        parse_event(event, None)


def test_idempotency_key_of_128_characters_is_accepted() -> None:
    event = load_event("aws-http-api.json")
    set_header(event, "idempotency-key", "k" * 128)
    assert parse_event(event, None).messages[0].trigger_id == "k" * 128


@pytest.mark.parametrize("name", HTTP_SAMPLES)
def test_headers_are_lower_cased(name: str) -> None:
    event = load_event(name)
    set_header(event, "X-Custom-Thing", "Value")
    invocation = parse_event(event, None)
    assert invocation.http is not None
    assert all(key == key.lower() for key in invocation.http.headers)
    assert invocation.http.headers["x-custom-thing"] == "Value"
    assert invocation.http.header("x-CUSTOM-thing") == "Value"


@pytest.mark.parametrize("name", HTTP_SAMPLES)
def test_base64_bodies_are_decoded_to_bytes(name: str) -> None:
    event = load_event(name)
    raw = json.dumps(SAMPLE_REQUEST).encode() + b"\n"
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    invocation = parse_event(event, None)
    assert invocation.http is not None
    assert invocation.http.body == raw
    assert invocation.messages[0].body_text == raw.decode()


@pytest.mark.parametrize("name", HTTP_SAMPLES)
def test_invalid_base64_is_malformed(name: str) -> None:
    event = load_event(name)
    event["body"] = "not*base64"
    event["isBase64Encoded"] = True
    with pytest.raises(MalformedEvent, match="base64") as caught:
        parse_event(event, None)
    assert caught.value.kind == "http"


def test_non_utf8_body_is_malformed() -> None:
    event = load_event("aws-function-url.json")
    event["body"] = base64.b64encode(b"\xff\xfe\x00binary").decode()
    event["isBase64Encoded"] = True
    with pytest.raises(MalformedEvent, match="not UTF-8"):
        parse_event(event, None)


def test_lone_surrogate_in_body_is_malformed() -> None:
    event = load_event("aws-function-url.json")
    event["body"] = '{"reason": "\ud800"}'
    with pytest.raises(MalformedEvent, match="UTF-8"):
        parse_event(event, None)


@pytest.mark.parametrize("encoded", [False, True])
@pytest.mark.parametrize("name", HTTP_SAMPLES)
def test_body_over_the_limit_is_413(name: str, encoded: bool) -> None:
    event = load_event(name)
    raw = b"x" * 2000
    event["body"] = base64.b64encode(raw).decode() if encoded else raw.decode()
    event["isBase64Encoded"] = encoded
    with pytest.raises(BodyTooLarge) as caught:
        parse_event(event, None, max_body_bytes=1999)
    assert caught.value.http_status == 413
    assert caught.value.kind == "http"
    assert parse_event(event, None, max_body_bytes=2000).http is not None


def test_huge_base64_body_is_rejected_before_decoding() -> None:
    event = load_event("aws-http-api.json")
    event["body"] = "A" * 10_000_000
    event["isBase64Encoded"] = True
    with pytest.raises(BodyTooLarge):
        parse_event(event, None)


def test_is_base64_encoded_must_be_boolean() -> None:
    event = load_event("aws-http-api.json")
    event["isBase64Encoded"] = "yes"
    with pytest.raises(MalformedEvent, match="isBase64Encoded"):
        parse_event(event, None)


# --- body decoding ---


def request(content_type: str | None, body: bytes) -> HttpRequest:
    headers = {"content-type": content_type} if content_type is not None else {}
    return HttpRequest(method="POST", headers=headers, body=body, request_id="r")


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=UTF-8", None])
def test_decode_json(content_type: str | None) -> None:
    assert decode_body(request(content_type, json.dumps(SAMPLE_REQUEST).encode())) == SAMPLE_REQUEST


def test_decode_form_first_value_wins() -> None:
    body = b"command=%2Fbackup&text=web1+now&text=second&empty="
    form = decode_body(request("application/x-www-form-urlencoded", body))
    assert form == {"command": "/backup", "text": "web1 now", "empty": ""}


def test_empty_body_decodes_to_an_empty_object() -> None:
    assert decode_body(request("application/json", b"")) == {}


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "multipart/form-data; boundary=x", "application/xml", "application/json; charset=latin-1"],
)
def test_other_media_types_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_body(request(content_type, b"{}"))
    assert caught.value.http_status == 415


@pytest.mark.parametrize("body", [b"[1,2]", b"{", b'{"a": NaN}', b"\xff", b"[" * 100000, b'"text"'])
def test_bad_json_bodies_are_invalid_body(body: bytes) -> None:
    with pytest.raises(InvalidBody) as caught:
        decode_body(request("application/json", body))
    assert caught.value.http_status == 400


def test_form_with_too_many_fields_is_invalid() -> None:
    with pytest.raises(InvalidBody):
        decode_body(request("application/x-www-form-urlencoded", b"&".join(b"a=1" for _ in range(500))))


# --- replies ---


@pytest.mark.parametrize("name", HTTP_SAMPLES)
def test_reply_shape_for_every_http_source(name: str) -> None:
    invocation = parse_event(load_event(name), None)
    reply = http_reply(invocation, 202, {"accepted": 1, "triggerId": "t"})
    assert set(reply) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert reply["statusCode"] == 202
    assert reply["isBase64Encoded"] is False
    assert json.loads(reply["body"]) == {"accepted": 1, "triggerId": "t"}
    assert reply["headers"]["Content-Type"].startswith("application/json")
    assert reply["headers"]["X-Content-Type-Options"] == "nosniff"
    assert reply["headers"]["Cache-Control"] == "no-store"


def test_reply_headers_override_defaults_case_insensitively() -> None:
    invocation = parse_event(load_event("aws-http-api.json"), None)
    reply = http_reply(invocation, 200, {}, headers={"content-type": "application/problem+json", "Retry-After": "5"})
    lowered = [name.lower() for name in reply["headers"]]
    assert lowered.count("content-type") == 1
    assert reply["headers"]["content-type"] == "application/problem+json"
    assert reply["headers"]["Retry-After"] == "5"


@pytest.mark.parametrize("headers", [{"X-Evil": "a\r\nSet-Cookie: x=1"}, {"Bad Name": "v"}, {"X-Num": 5}])
def test_reply_refuses_unsafe_headers(headers: dict[str, Any]) -> None:
    invocation = parse_event(load_event("aws-http-api.json"), None)
    with pytest.raises(ValueError):
        http_reply(invocation, 200, {}, headers=headers)


@pytest.mark.parametrize("status", [99, 600, True, "200"])
def test_reply_refuses_bad_status(status: Any) -> None:
    invocation = parse_event(load_event("yc-http.json"), None)
    with pytest.raises(ValueError, match="status"):
        http_reply(invocation, status, {})


def test_reply_refuses_non_http_invocations() -> None:
    invocation = parse_event(load_event("aws-sqs.json"), None)
    with pytest.raises(ValueError, match="HTTP invocation"):
        http_reply(invocation, 200, {})


def test_reply_body_is_ascii_json() -> None:
    invocation = parse_event(load_event("yc-http.json"), None)
    reply = http_reply(invocation, 200, {"reason": "ночь <script>"})
    assert reply["body"].isascii()
    assert json.loads(reply["body"]) == {"reason": "ночь <script>"}


def test_error_reply_from_a_parse_error() -> None:
    event = load_event("yc-http.json")
    event["body"] = "x" * 70000
    with pytest.raises(BodyTooLarge) as caught:
        parse_event(event, None)
    assert caught.value.kind == "http"
    reply = error_reply(caught.value)
    assert reply["statusCode"] == 413
    assert json.loads(reply["body"])["error"]["code"] == "BODY_TOO_LARGE"
    assert "xxxx" not in reply["body"]
