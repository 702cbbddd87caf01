"""AWS Lambda event envelopes: SQS, EventBridge, EventBridge Scheduler, API Gateway REST v1, HTTP API v2, Function URL.

Shapes are those of the real samples in powertools' test events (aws-lambda-powertools-python, tests/events/;
../shared/reference/events/aws beside the repository).

EventBridge (a rule on a schedule or an event pattern): the request is the event's `detail` (an object; a rule with
a constant "Input" replaces the whole event by that JSON instead, which arrives as a plain request object and parses
as "direct"). A "Scheduled Event" with no input has `detail: {}`, i.e. a request with every field defaulted.

EventBridge Scheduler delivers its target Input as-is, so a plain request object cannot be told apart from a
hand-made invocation. To be recognised as "aws.scheduler", a schedule's Input uses this envelope, whose context
attributes the Scheduler substitutes on every invocation:

    {"scheduler": {"scheduleArn": "<aws.scheduler.schedule-arn>",
                   "scheduledTime": "<aws.scheduler.scheduled-time>",
                   "executionId": "<aws.scheduler.execution-id>",
                   "attemptNumber": "<aws.scheduler.attempt-number>"},
     "request": {...the backup request...}}

The trigger id is "<scheduleArn>|<scheduledTime>": the execution id changes on every attempt (AWS: "assigned for each
attempted invocation"), the scheduled time does not, so retries of one firing keep one identity. A schedule whose
Input is a plain request object still works: it parses as "direct" (trigger id: correlationId, else the Lambda
request id, which Lambda keeps across its own asynchronous retries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from triggers import _fields as f
from triggers.http import build_http, v1_proxy_request
from triggers.model import InboundMessage, Invocation, MalformedEvent

SCHEDULER_KEYS = frozenset({"scheduler", "request"})
_PLACEHOLDER = "<aws.scheduler."


def parse_sqs(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
    records = f.seq(event.get("Records"), "Records")
    messages = []
    for i, item in enumerate(records):
        where = f"Records[{i}]"
        record = f.obj(item, where)
        if record.get("eventSource") != "aws:sqs":
            raise MalformedEvent(f"{where}.eventSource must be aws:sqs; one event source delivers one batch")
        message_id = f.ident(record.get("messageId"), f"{where}.messageId")
        attributes = f.str_map(record.get("attributes"), f"{where}.attributes")
        messages.append(
            InboundMessage(
                trigger_id=message_id,
                message_id=message_id,
                body_text=f.check_body(f.text(record.get("body"), f"{where}.body"), f"{where}.body", max_body_bytes),
                received_at=f.first_time(attributes.get("SentTimestamp")),
                attributes=attributes,
                message_attributes=f.message_attributes(record.get("messageAttributes"), f"{where}.messageAttributes"),
            )
        )
    return Invocation(source="aws.sqs", platform="aws", kind="queue", messages=messages)


def parse_eventbridge(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
    body = f.embedded_body(event.get("detail"), "detail", max_body_bytes)
    attributes = {
        "detailType": f.text(event.get("detail-type"), "detail-type")[:256],
        "source": f.text(event.get("source"), "source")[:256],
    }
    resources = event.get("resources")
    if isinstance(resources, list) and resources and isinstance(resources[0], str):
        attributes["resource"] = resources[0][:2048]  # the rule's ARN for scheduled events
    message = InboundMessage(
        trigger_id=f.ident(event.get("id"), "id"),
        body_text=body,
        received_at=f.first_time(event.get("time")),
        attributes=attributes,
    )
    return Invocation(source="aws.eventbridge", platform="aws", kind="schedule", messages=[message])


def _scheduler_value(scheduler: Mapping[str, Any], name: str) -> str:
    value = f.ident(scheduler.get(name), f"scheduler.{name}")
    if value.startswith(_PLACEHOLDER):
        raise MalformedEvent(f"scheduler.{name} is an unsubstituted context attribute: invoke through the schedule")
    return value


def parse_scheduler(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
    extra = set(event) - SCHEDULER_KEYS
    if extra:
        raise MalformedEvent("an EventBridge Scheduler envelope has only the keys 'scheduler' and 'request'")
    scheduler = f.obj(event.get("scheduler"), "scheduler")
    arn = _scheduler_value(scheduler, "scheduleArn")
    scheduled_time = _scheduler_value(scheduler, "scheduledTime")
    attributes = {"scheduleArn": arn, "scheduledTime": scheduled_time}
    for name in ("executionId", "attemptNumber"):
        value = scheduler.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value and not value.startswith(_PLACEHOLDER):
            attributes[name] = f.ident(value, f"scheduler.{name}")
    body = f.embedded_body(event.get("request"), "request", max_body_bytes)
    message = InboundMessage(
        trigger_id=f"{arn}|{scheduled_time}",
        body_text=body,
        received_at=f.first_time(scheduled_time),
        attributes=attributes,
    )
    return Invocation(source="aws.scheduler", platform="aws", kind="schedule", messages=[message])


def parse_rest_v1(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
    request, message = v1_proxy_request(event, context, max_body_bytes, path=event.get("path"))
    return Invocation(source="aws.api-gateway-rest", platform="aws", kind="http", messages=[message], http=request)


def is_function_url(event: Mapping[str, Any]) -> bool:
    request_context = event.get("requestContext")
    domain = request_context.get("domainName") if isinstance(request_context, Mapping) else None
    return isinstance(domain, str) and ".lambda-url." in domain


def parse_http_v2(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
    """HTTP API (payload format 2.0) and Function URLs (the same shape, domain `<id>.lambda-url.<region>.on.aws`)."""
    request_context = f.obj(event.get("requestContext"), "requestContext")
    http = f.obj(request_context.get("http"), "requestContext.http")
    request, message = build_http(
        method=http.get("method"),
        path=event.get("rawPath") if event.get("rawPath") is not None else http.get("path"),
        headers=event.get("headers"),
        query=event.get("queryStringParameters"),
        body=event.get("body"),
        is_base64=event.get("isBase64Encoded"),
        source_ip=http.get("sourceIp"),
        request_id=request_context.get("requestId"),
        received=request_context.get("timeEpoch"),
        context=context,
        max_body_bytes=max_body_bytes,
    )
    source = "aws.function-url" if is_function_url(event) else "aws.http-api"
    return Invocation(source=source, platform="aws", kind="http", messages=[message], http=request)
