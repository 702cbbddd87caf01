"""Recognise a trigger from the event's shape and turn it into an Invocation.

    parse_event(event, context, *, max_body_bytes=65536) -> Invocation

The source is read from the payload's shape, never from the environment, so one deployment can take several
triggers. Precedence (first match wins):

1. `messages[]` -> Yandex timer / Message Queue (by `event_metadata.event_type`, else by `details` shape)
2. `Records[]` with `eventSource == "aws:sqs"` -> aws.sqs
3. `detail-type` -> aws.eventbridge (the request is `detail`)
4. `scheduler` -> aws.scheduler (the envelope documented in triggers.aws)
5. `version == "2.0"` / `rawPath` + `routeKey` / `requestContext.http` -> aws.function-url when
   `requestContext.domainName` contains ".lambda-url.", else aws.http-api
6. `httpMethod`:
   - Yandex-only keys (`url`, `params`, `pathParams`, `operationId`, `parameters`, `requestContext.apiGateway`):
     yc.api-gateway when `path` is present, else yc.http (a direct call has no path)
   - `resource`, or `requestContext` with `accountId`/`apiId`/`stage`/`resourcePath` -> aws.api-gateway-rest
   - otherwise yc.api-gateway when `path` is present, else yc.http
7. a JSON object that looks like a BackupRequest (empty, or with at least one of its field names) -> "direct":
   a Lambda / Cloud Functions invoke, `yc serverless function invoke`, an EventBridge rule or Scheduler schedule
   whose Input is the request itself. A JSON text (str) of such an object, or "", is read the same way.
8. anything else -> UnrecognisedEvent.

Errors: UnrecognisedEvent (no known shape) or MalformedEvent (known shape, bad content; BodyTooLarge when a body
is over max_body_bytes). Both are ValueErrors; once the shape is known, the error's `source` and `kind` are set.
Messages never quote the input beyond a short repr().
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from triggers import _fields as f
from triggers import aws, yandex
from triggers.model import (
    DEFAULT_MAX_BODY_BYTES,
    InboundMessage,
    Invocation,
    MalformedEvent,
    TriggerError,
    UnrecognisedEvent,
)

# BackupRequest's field names, camelCase and snake_case (it populates by name too). tests/unit pins this set
# against backups.models so that importing this module stays free of the domain models.
REQUEST_KEYS = frozenset(
    {
        "computeInstanceId",
        "computeInstanceIds",
        "instanceName",
        "instanceLabels",
        "folderId",
        "policyId",
        "policyName",
        "applyIfMissing",
        "dryRun",
        "reason",
        "requestedBy",
        "correlationId",
        "compute_instance_id",
        "compute_instance_ids",
        "instance_name",
        "instance_labels",
        "folder_id",
        "policy_id",
        "policy_name",
        "apply_if_missing",
        "dry_run",
        "requested_by",
        "correlation_id",
    }
)
_AWS_REST_CONTEXT_KEYS = ("accountId", "apiId", "stage", "resourcePath")

EXPECTED = (
    "expected a Yandex Cloud Functions trigger (messages[].details), an AWS event (Records, detail-type, "
    "requestContext), an EventBridge Scheduler envelope ({scheduler, request}) or a backup request object "
    "(keys such as policyId, computeInstanceId)"
)

Parser = Callable[[Mapping[str, Any], Any, int], Invocation]


def parse_event(event: Any, context: Any, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Invocation:
    """The Invocation an event carries. Raises only UnrecognisedEvent or MalformedEvent (ValueErrors)."""
    try:
        return _parse(event, context, max_body_bytes)
    except TriggerError:
        raise
    except Exception as exc:  # a last guard: the contract is "Invocation or a TriggerError", whatever comes in
        raise MalformedEvent(f"the event could not be read ({type(exc).__name__})") from exc


def _parse(event: Any, context: Any, max_body_bytes: int) -> Invocation:
    if isinstance(event, bytes | bytearray):
        try:
            event = bytes(event).decode("utf-8")
        except UnicodeDecodeError:
            raise UnrecognisedEvent(f"unrecognised event: bytes that are not UTF-8; {EXPECTED}") from None
    if isinstance(event, str):
        return _parse_text(event, context, max_body_bytes)
    if not isinstance(event, Mapping):
        raise UnrecognisedEvent(f"unrecognised event: got {type(event).__name__}; {EXPECTED}")
    source, kind, parser = _classify(event)
    try:
        return parser(event, context, max_body_bytes)
    except TriggerError as exc:
        exc.source, exc.kind = exc.source or source, exc.kind or kind
        raise


def _classify(event: Mapping[str, Any]) -> tuple[str | None, str | None, Parser]:
    if "messages" in event:
        return None, None, yandex.parse_messages  # timer or queue: the parser knows
    if "Records" in event:
        records = event.get("Records")
        first = records[0] if isinstance(records, list) and records else None
        if isinstance(first, Mapping) and first.get("eventSource") == "aws:sqs":
            return "aws.sqs", "queue", aws.parse_sqs
        if isinstance(records, list) and records and isinstance(first, Mapping):
            found = first.get("eventSource", first.get("EventSource"))
            raise UnrecognisedEvent(f"unsupported AWS event source {f.snippet(found)}: only aws:sqs Records are read")
        return "aws.sqs", "queue", aws.parse_sqs  # raises the precise MalformedEvent
    if "detail-type" in event:
        return "aws.eventbridge", "schedule", aws.parse_eventbridge
    if "scheduler" in event:
        return "aws.scheduler", "schedule", aws.parse_scheduler
    request_context = event.get("requestContext")
    context_map = request_context if isinstance(request_context, Mapping) else {}
    if (
        event.get("version") == "2.0"
        or ("rawPath" in event and "routeKey" in event)
        or isinstance(context_map.get("http"), Mapping)
    ):
        source = "aws.function-url" if aws.is_function_url(event) else "aws.http-api"
        return source, "http", aws.parse_http_v2
    if "httpMethod" in event:
        if "elb" in context_map:
            raise UnrecognisedEvent("Application Load Balancer events are not supported; use API Gateway or a URL")
        if yandex.is_gateway_or_direct(event):
            return _yandex_http("path" in event)
        if "resource" in event or any(key in context_map for key in _AWS_REST_CONTEXT_KEYS):
            return "aws.api-gateway-rest", "http", aws.parse_rest_v1
        return _yandex_http("path" in event)
    if _looks_like_request(event):
        return "direct", "direct", _parse_direct
    raise UnrecognisedEvent(f"unrecognised event: an object with none of the known keys; {EXPECTED}")


def _yandex_http(gateway: bool) -> tuple[str, str, Parser]:
    def parser(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
        return yandex.parse_http(event, context, max_body_bytes, gateway=gateway)

    return ("yc.api-gateway" if gateway else "yc.http"), "http", parser


def _looks_like_request(event: Mapping[str, Any]) -> bool:
    return not event or any(isinstance(key, str) and key in REQUEST_KEYS for key in event)


def _parse_text(event: str, context: Any, max_body_bytes: int) -> Invocation:
    """A JSON text delivered raw (Yandex `?integration=raw`, `yc serverless function invoke` with no data: "")."""
    if not event.strip():
        return _direct_invocation("", None, context)
    try:
        f.check_body(event, "the event text", max_body_bytes)
    except TriggerError as exc:
        exc.source, exc.kind = "direct", "direct"
        raise
    try:
        value = json.loads(event)
    except (ValueError, RecursionError):
        raise UnrecognisedEvent(f"unrecognised event: text that is not JSON; {EXPECTED}") from None
    if not isinstance(value, Mapping) or not _looks_like_request(value):
        raise UnrecognisedEvent(f"unrecognised event: JSON text that is not a backup request object; {EXPECTED}")
    return _direct_invocation(event, value, context)


def _parse_direct(event: Mapping[str, Any], context: Any, max_body_bytes: int) -> Invocation:
    return _direct_invocation(f.dump_json(event, "the request", max_body_bytes), event, context)


def _direct_invocation(body: str, value: Mapping[str, Any] | None, context: Any) -> Invocation:
    correlation = None
    if value is not None:
        correlation = f.token(value.get("correlationId")) or f.token(value.get("correlation_id"))
    trigger_id = correlation or f.context_request_id(context) or f.new_id()
    message = InboundMessage(trigger_id=trigger_id, body_text=body, received_at=datetime.now(UTC))
    return Invocation(source="direct", platform="direct", kind="direct", messages=[message])
