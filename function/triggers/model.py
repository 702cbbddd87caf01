"""What every trigger adapter returns, and the errors it raises.

`Invocation` is one call of the function: where it came from (`source`, `platform`, `kind`), the messages it
carries (`InboundMessage`, one per queue message, one for everything else) and, for HTTP sources, the request
(`HttpRequest`). Parsing never interprets a body: `InboundMessage.body_text` is the raw request text and the
caller decides what it means (a `BackupRequest`, a `FollowupTicket`, a Slack form ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import jsontext

Platform = Literal["yandex", "aws", "direct"]
Kind = Literal["schedule", "queue", "http", "direct"]
# Where an invocation came from (a Slack command is a `yc.*`/`aws.*` HTTP source whose trigger says "slack").
Source = Literal[
    "yc.timer",
    "yc.message-queue",
    "yc.http",
    "yc.api-gateway",
    "aws.eventbridge",
    "aws.scheduler",
    "aws.sqs",
    "aws.api-gateway-rest",
    "aws.http-api",
    "aws.function-url",
    "direct",
]

DEFAULT_MAX_BODY_BYTES = 65536


class TriggerError(ValueError):
    """Base of the trigger parsing errors. `http_status` is what an HTTP caller should answer."""

    http_status = 400
    code = "BAD_REQUEST"
    # Set by parse_event when the envelope was recognised before the error: lets an HTTP caller answer with
    # triggers.http.error_reply() although no Invocation exists.
    source: str | None = None
    kind: str | None = None


class UnrecognisedEvent(TriggerError):
    """The event has none of the shapes this function is triggered with."""

    code = "UNRECOGNISED_EVENT"


class MalformedEvent(TriggerError):
    """The event's shape was recognised, but a part of it is missing, of the wrong type or unreadable."""

    code = "MALFORMED_EVENT"


class BodyTooLarge(MalformedEvent):
    """A request or message body is over `max_body_bytes`."""

    http_status = 413
    code = "BODY_TOO_LARGE"


class UnsupportedMediaType(TriggerError):
    """An HTTP body whose Content-Type is neither application/json nor application/x-www-form-urlencoded."""

    http_status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class InvalidBody(TriggerError):
    """An HTTP or message body that is not the JSON object / form it claims to be."""

    code = "INVALID_BODY"


class HttpRequest(BaseModel):
    """The HTTP request behind an HTTP-sourced invocation, normalised across platforms."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64")

    method: str  # upper case
    path: str = "/"  # "/" when the platform gives none (a direct Yandex function call)
    headers: dict[str, str] = Field(default_factory=dict)  # names lower-cased; last value wins
    query: dict[str, str] = Field(default_factory=dict)  # single-valued query parameters
    body: bytes = b""  # raw body bytes, base64-decoded when the platform encoded it
    source_ip: str | None = None
    request_id: str  # the platform's request id

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


class InboundMessage(BaseModel):
    """One request carried by the invocation."""

    model_config = ConfigDict(frozen=True)

    # The trigger's own identity, stable across the platform's redeliveries where the platform allows it:
    # timer event_id, YMQ message_id, SQS messageId, EventBridge id, Scheduler "<scheduleArn>|<scheduledTime>",
    # HTTP Idempotency-Key header or the platform request id, direct: correlationId or the context request id.
    trigger_id: str
    message_id: str | None = None  # queue sources only: the id to report in a batch failure reply
    body_text: str = ""  # the raw request text ("" when the trigger carried none)
    received_at: datetime  # when the platform created / received it (the parse time when unknown)
    attributes: dict[str, str] = Field(default_factory=dict)  # queue system attributes (ApproximateReceiveCount ...)
    message_attributes: dict[str, str] = Field(default_factory=dict)  # queue message attributes (string values)


class Invocation(BaseModel):
    """One call of the function, whatever started it."""

    model_config = ConfigDict(frozen=True)

    source: Source
    platform: Platform
    kind: Kind
    messages: list[InboundMessage]
    http: HttpRequest | None = None


def parse_json_object(text: str | bytes, what: str) -> dict[str, Any]:
    """Strict JSON object parsing (jsontext, the one reader); InvalidBody on anything else."""
    try:
        return jsontext.parse_json_object(text, what)
    except jsontext.NotAJsonObject as exc:
        raise InvalidBody(str(exc)) from None
