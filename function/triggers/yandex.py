"""Yandex Cloud Functions trigger envelopes: timer, Message Queue, HTTP call (direct and through API Gateway).

Shapes (docs/ in the reference, section 6):
- timer: `{"messages": [{"event_metadata": {"event_id", "event_type": TIMER_TYPE, "created_at", ...},
  "details": {"trigger_id", "payload": "<text, usually JSON>"}}]}`
- Message Queue: `{"messages": [{"event_metadata": {"event_id", "event_type": QUEUE_TYPE, "created_at"},
  "details": {"queue_id", "message": {"message_id", "body", "attributes", "message_attributes", ...}}}]}`;
  `created_at` is RFC3339 text or `{seconds, nanos}` (sources disagree): both are read.
- HTTP call: `httpMethod`, `headers`, `multiValueHeaders`, `queryStringParameters`, `requestContext{identity{sourceIp},
  requestId, requestTimeEpoch}`, `body`, `isBase64Encoded` (no path; Authorization and Cookie are stripped).
  Through API Gateway v0.1 it adds `url` (the actual path), `path` (the spec's path template), `pathParams`,
  `params`, `multiValueParams`; v1.0 adds `version`, `resource`, `path` (actual), `parameters`, `operationId`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from triggers import _fields as f
from triggers.http import v1_proxy_request
from triggers.model import InboundMessage, Invocation, MalformedEvent, UnrecognisedEvent

TIMER_TYPE = "yandex.cloud.events.serverless.triggers.TimerMessage"
QUEUE_TYPE = "yandex.cloud.events.messagequeue.QueueMessage"
# Keys only a Yandex HTTP event carries (direct calls carry the v0.1 ones empty; API Gateway fills them).
GATEWAY_KEYS = ("url", "pathParams", "params", "multiValueParams", "parameters", "multiValueParameters", "operationId")


def _event_type(message: Mapping[str, Any], where: str) -> str:
    metadata = f.opt_obj(message.get("event_metadata"), f"{where}.event_metadata")
    event_type = metadata.get("event_type")
    if isinstance(event_type, str) and event_type:
        return event_type
    details = f.opt_obj(message.get("details"), f"{where}.details")
    if "message" in details:
        return QUEUE_TYPE
    if "payload" in details or "trigger_id" in details:
        return TIMER_TYPE
    raise MalformedEvent(f"{where} has no event_metadata.event_type and no details.message or details.payload")


def parse_messages(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
    """A timer or Message Queue event (`messages[]`)."""
    messages = f.seq(event.get("messages"), "messages")
    items = [f.obj(message, f"messages[{i}]") for i, message in enumerate(messages)]
    types = {_event_type(message, f"messages[{i}]") for i, message in enumerate(items)}
    if len(types) > 1:
        raise MalformedEvent("messages[] mixes event types; one trigger delivers one type")
    event_type = types.pop()
    if event_type == TIMER_TYPE:
        parsed = [_timer(message, f"messages[{i}]", max_body_bytes) for i, message in enumerate(items)]
        return Invocation(source="yc.timer", platform="yandex", kind="schedule", messages=parsed)
    if event_type == QUEUE_TYPE:
        parsed = [_queue(message, f"messages[{i}]", max_body_bytes) for i, message in enumerate(items)]
        return Invocation(source="yc.message-queue", platform="yandex", kind="queue", messages=parsed)
    raise UnrecognisedEvent(
        f"unsupported Yandex Cloud trigger event type {f.snippet(event_type)}: expected a timer ({TIMER_TYPE}) "
        f"or a Message Queue ({QUEUE_TYPE}) trigger"
    )


def _timer(message: Mapping[str, Any], where: str, max_body_bytes: int) -> InboundMessage:
    metadata = f.obj(message.get("event_metadata"), f"{where}.event_metadata")
    details = f.obj(message.get("details"), f"{where}.details")
    body = f.embedded_body(details.get("payload"), f"{where}.details.payload", max_body_bytes, expected="a string")
    return InboundMessage(
        trigger_id=f.ident(metadata.get("event_id"), f"{where}.event_metadata.event_id"),
        body_text=body,
        received_at=f.first_time(metadata.get("created_at")),
    )


def _queue(message: Mapping[str, Any], where: str, max_body_bytes: int) -> InboundMessage:
    metadata = f.opt_obj(message.get("event_metadata"), f"{where}.event_metadata")
    details = f.obj(message.get("details"), f"{where}.details")
    inner = f.obj(details.get("message"), f"{where}.details.message")
    message_id = f.ident(inner.get("message_id"), f"{where}.details.message.message_id")
    body_where = f"{where}.details.message.body"
    body = f.check_body(f.text(inner.get("body"), body_where), body_where, max_body_bytes)
    attributes = f.str_map(inner.get("attributes"), f"{where}.details.message.attributes")
    return InboundMessage(
        trigger_id=message_id,
        message_id=message_id,
        body_text=body,
        received_at=f.first_time(metadata.get("created_at"), attributes.get("SentTimestamp")),
        attributes=attributes,
        message_attributes=f.message_attributes(
            inner.get("message_attributes"), f"{where}.details.message.message_attributes"
        ),
    )


def is_gateway_or_direct(event: Mapping[str, Any]) -> bool:
    """True when an `httpMethod` event carries Yandex-only keys (see GATEWAY_KEYS, requestContext.apiGateway)."""
    context = event.get("requestContext")
    return any(key in event for key in GATEWAY_KEYS) or (isinstance(context, Mapping) and "apiGateway" in context)


def _gateway_path(event: Mapping[str, Any]) -> Any:
    path = event.get("path")
    url = event.get("url")
    # v0.1: `path` is the spec's template (/backups/{id}), `url` the path actually asked for.
    if event.get("version") != "1.0" and isinstance(url, str) and url:
        try:
            return urlsplit(url).path or path
        except ValueError:
            return path
    return path


def parse_http(event: Mapping[str, Any], context: Any, max_body_bytes: int, *, gateway: bool) -> Invocation:
    """A direct HTTP call (`gateway=False`, path "/") or an API Gateway call (`gateway=True`)."""
    request, message = v1_proxy_request(event, context, max_body_bytes, path=_gateway_path(event) if gateway else None)
    source = "yc.api-gateway" if gateway else "yc.http"
    return Invocation(source=source, platform="yandex", kind="http", messages=[message], http=request)
