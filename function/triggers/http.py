"""HTTP request and reply shaping shared by every HTTP source (Yandex direct call and API Gateway, AWS API Gateway
REST v1, HTTP API v2, Function URLs).

Replies: all five platforms read the same proxy-integration keys, `{"statusCode", "headers", "body",
"isBase64Encoded"}` (Yandex: function-invoke "Response data structure"; AWS: REST v1 proxy output, HTTP API v2 /
Function URL structured response). `multiValueHeaders` and `cookies` are never set: Yandex lets
`multiValueHeaders` override `headers`, which would be a second source of truth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from triggers import _fields as f
from triggers.model import (
    HttpRequest,
    InboundMessage,
    InvalidBody,
    Invocation,
    MalformedEvent,
    TriggerError,
    UnsupportedMediaType,
    parse_json_object,
)

IDEMPOTENCY_HEADER = "idempotency-key"
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
_METHOD_RE = re.compile(r"^[A-Za-z]{1,16}$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_MAX_FORM_FIELDS = 200

SECURITY_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def build_http(
    *,
    method: Any,
    path: Any,
    headers: Any,
    query: Any,
    body: Any,
    is_base64: Any,
    source_ip: Any,
    request_id: Any,
    received: Any,
    context: Any,
    max_body_bytes: int,
) -> tuple[HttpRequest, InboundMessage]:
    """Normalise one HTTP request; the InboundMessage's trigger_id is the Idempotency-Key, else the request id."""
    method_text = f.text(method, "httpMethod")
    if not _METHOD_RE.fullmatch(method_text):
        raise MalformedEvent("httpMethod must be an HTTP method name")
    path_text = f.opt_text(path, "path") or "/"
    if len(path_text) > 8192 or not path_text.isprintable():
        raise MalformedEvent("path must be at most 8192 printable characters")
    header_map = f.str_map(headers, "headers", lower_keys=True)
    query_map = f.str_map(query, "queryStringParameters")

    if is_base64 is not None and not isinstance(is_base64, bool):
        raise MalformedEvent("isBase64Encoded must be true or false")
    body_value = f.opt_text(body, "body") or ""
    if is_base64:
        raw = f.decode_base64(body_value, "body", max_body_bytes)
    else:
        raw = f.check_body(body_value, "body", max_body_bytes).encode("utf-8")
    body_text = f.bytes_to_text(raw, "body")

    platform_request_id = (f.token(request_id) if isinstance(request_id, str) else None) or f.context_request_id(
        context
    )
    platform_request_id = platform_request_id or f.new_id()

    trigger_id = platform_request_id
    if IDEMPOTENCY_HEADER in header_map:
        key = f.token(header_map[IDEMPOTENCY_HEADER])
        if key is None:
            raise MalformedEvent("the Idempotency-Key header must be 1-128 printable ASCII characters")
        trigger_id = key

    ip = source_ip if isinstance(source_ip, str) and 0 < len(source_ip) <= 64 else None
    request = HttpRequest(
        method=method_text.upper(),
        path=path_text,
        headers=header_map,
        query=query_map,
        body=raw,
        source_ip=ip,
        request_id=platform_request_id,
    )
    message = InboundMessage(trigger_id=trigger_id, body_text=body_text, received_at=f.first_time(received))
    return request, message


def v1_proxy_request(
    event: Mapping[str, Any], context: Any, max_body_bytes: int, *, path: Any
) -> tuple[HttpRequest, InboundMessage]:
    """The proxy shape (payload format 1.0) that AWS API Gateway REST and Yandex Cloud Functions HTTP calls share."""
    request_context = f.opt_obj(event.get("requestContext"), "requestContext")
    identity = f.opt_obj(request_context.get("identity"), "requestContext.identity")
    return build_http(
        method=event.get("httpMethod"),
        path=path,
        headers=event.get("headers"),
        query=event.get("queryStringParameters"),
        body=event.get("body"),
        is_base64=event.get("isBase64Encoded"),
        source_ip=identity.get("sourceIp"),
        request_id=request_context.get("requestId"),
        received=request_context.get("requestTimeEpoch"),
        context=context,
        max_body_bytes=max_body_bytes,
    )


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    media, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"').lower()
    return media.strip().lower(), params


def decode_body(request: HttpRequest) -> dict[str, Any]:
    """The request body as a dict, by Content-Type.

    - `application/json`: a JSON object (UTF-8; NaN/Infinity rejected). A missing Content-Type is read as JSON.
    - `application/x-www-form-urlencoded`: `{name: value}` (UTF-8; the first value of a repeated name wins).
    - anything else, or a charset other than UTF-8/ASCII: UnsupportedMediaType (HTTP 415).
    - an empty body is `{}`; an unreadable one is InvalidBody (HTTP 400).
    """
    media, params = _media_type(request.headers.get("content-type", ""))
    charset = params.get("charset", "utf-8")
    if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        raise UnsupportedMediaType("the request body must be UTF-8 encoded")
    if media in ("", JSON_TYPE):
        return parse_json_object(request.body, "the request body")
    if media == FORM_TYPE:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidBody("the request body is not UTF-8 text") from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=_MAX_FORM_FIELDS)
        except (ValueError, UnicodeDecodeError):
            raise InvalidBody(f"the form body is not valid (at most {_MAX_FORM_FIELDS} UTF-8 fields)") from None
        form: dict[str, Any] = {}
        for name, value in pairs:
            form.setdefault(name, value)
        return form
    raise UnsupportedMediaType(f"Content-Type must be {JSON_TYPE} or {FORM_TYPE}")


def _check_header(name: Any, value: Any) -> None:
    if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
        raise ValueError("response header names must be HTTP tokens")
    if not isinstance(value, str) or any(ch in value for ch in "\r\n\x00"):
        raise ValueError("response header values must be strings without CR, LF or NUL")


def http_reply(
    invocation: Invocation, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The platform's HTTP response for an HTTP invocation: a JSON body and safe default headers.

    Caller headers override the defaults case-insensitively (e.g. a different Content-Type).
    Raises ValueError for a non-HTTP invocation, a status outside 100-599 or an unsafe header.
    """
    if invocation.kind != "http":
        raise ValueError(f"http_reply needs an HTTP invocation, not {invocation.source}")
    return json_reply(status, payload, headers)


def json_reply(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The proxy-integration response dict; the same keys for every HTTP source (see the module docstring)."""
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("status must be an HTTP status code (100-599)")
    extra = dict(headers or {})
    for name, value in extra.items():
        _check_header(name, value)
    overridden = {name.lower() for name in extra}
    out_headers = {name: value for name, value in SECURITY_HEADERS.items() if name.lower() not in overridden}
    out_headers.update(extra)
    body = json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_json_default)
    # HTML-safe JSON: input echoed in a reply (a reason, a name) never reaches the caller as markup. Outside
    # strings JSON has no <, > or &, so the \u escapes change no value.
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {"statusCode": status, "headers": out_headers, "body": body, "isBase64Encoded": False}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def error_reply(error: TriggerError, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The HTTP reply for a trigger error: status `error.http_status`, body `{"error": {"code", "message"}}`.

    Usable before an Invocation exists: when parse_event raises for an HTTP event, the error's `kind` is "http".
    """
    return json_reply(error.http_status, {"error": {"code": error.code, "message": str(error)}}, headers)
