"""Small, defensive readers for event envelopes: every failure is a MalformedEvent naming the field, never the value."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from triggers.model import BodyTooLarge, MalformedEvent

# Identifiers we accept from clients (Idempotency-Key) and from contexts: printable ASCII, no control characters.
_TOKEN_RE = re.compile(r"^[\x20-\x7e]{1,128}$")
_MAX_ID_CHARS = 256  # platform ids (message ids, request ids) longer than this are not ids


def snippet(value: Any, limit: int = 60) -> str:
    """A safe, short rendering of a fragment of input for an error message (repr, truncated)."""
    text = value if isinstance(value, str) else type(value).__name__
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedEvent(f"{where} must be an object, got {type(value).__name__}")
    return value


def opt_obj(value: Any, where: str) -> Mapping[str, Any]:
    """An optional object: absent or null is {}."""
    return {} if value is None else obj(value, where)


def seq(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedEvent(f"{where} must be a list, got {type(value).__name__}")
    if not value:
        raise MalformedEvent(f"{where} is empty")
    return value


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MalformedEvent(f"{where} must be a string, got {type(value).__name__}")
    return value


def opt_text(value: Any, where: str) -> str | None:
    return None if value is None else text(value, where)


def ident(value: Any, where: str) -> str:
    """A platform identifier: a non-empty string of bounded length without control characters."""
    value = text(value, where)
    if not value or len(value) > _MAX_ID_CHARS or not value.isprintable():
        raise MalformedEvent(f"{where} must be 1-{_MAX_ID_CHARS} printable characters")
    return value


def str_map(value: Any, where: str, *, lower_keys: bool = False) -> dict[str, str]:
    """A string-to-string map (headers, query, attributes). Null is {}; entries that are not strings are skipped."""
    if value is None:
        return {}
    mapping = obj(value, where)
    out: dict[str, str] = {}
    for key, item in mapping.items():
        if isinstance(key, str) and isinstance(item, str):
            out[key.lower() if lower_keys else key] = item
    return out


def message_attributes(value: Any, where: str) -> dict[str, str]:
    """SQS/YMQ message attributes: {"name": {"dataType": ..., "stringValue": ...}} -> {"name": stringValue}."""
    if value is None:
        return {}
    out: dict[str, str] = {}
    for key, item in obj(value, where).items():
        if isinstance(key, str) and isinstance(item, Mapping):
            string_value = item.get("stringValue", item.get("string_value"))
            if isinstance(string_value, str):
                out[key] = string_value
    return out


def utf8_size(value: str, where: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise MalformedEvent(f"{where} is not valid UTF-8 text") from None


def check_body(value: str, where: str, max_bytes: int) -> str:
    """A text body within the size limit (BodyTooLarge) and encodable as UTF-8 (MalformedEvent)."""
    if len(value) > max_bytes:  # every character is at least one byte: no need to encode a huge string
        raise BodyTooLarge(f"{where} is over the {max_bytes}-byte limit")
    if utf8_size(value, where) > max_bytes:
        raise BodyTooLarge(f"{where} is over the {max_bytes}-byte limit")
    return value


def decode_base64(value: str, where: str, max_bytes: int) -> bytes:
    # 4 characters carry 3 bytes: reject before decoding anything that cannot fit.
    if len(value) > (max_bytes + 2) // 3 * 4 + 4:
        raise BodyTooLarge(f"{where} is over the {max_bytes}-byte limit")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise MalformedEvent(f"{where} is marked base64-encoded but is not valid base64") from None
    if len(raw) > max_bytes:
        raise BodyTooLarge(f"{where} is over the {max_bytes}-byte limit")
    return raw


def bytes_to_text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent(f"{where} is not UTF-8 text") from None


def dump_json(value: Any, where: str, max_bytes: int) -> str:
    """Serialise a JSON-like value back to text (for bodies delivered as objects), within the size limit."""
    try:
        dumped = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise MalformedEvent(f"{where} is nested too deeply") from None
    except (TypeError, ValueError):
        raise MalformedEvent(f"{where} is not a JSON value") from None
    return check_body(dumped, where, max_bytes)


def embedded_body(value: Any, where: str, max_bytes: int, *, expected: str = "an object") -> str:
    """A request carried inside an event (timer payload, EventBridge detail, Scheduler request): absent is "",
    text is taken as it is, an object is serialised; both within the size limit."""
    if value is None:
        return ""
    if isinstance(value, str):
        return check_body(value, where, max_bytes)
    if isinstance(value, Mapping):
        return dump_json(value, where, max_bytes)
    raise MalformedEvent(f"{where} must be {expected}, got {type(value).__name__}")


def parse_time(value: Any) -> datetime | None:
    """RFC3339 text, {seconds, nanos}, or epoch seconds / milliseconds (numbers or digits); None if unreadable."""
    try:
        if isinstance(value, Mapping):
            seconds = value.get("seconds", 0)
            nanos = value.get("nanos", 0)
            if isinstance(seconds, str) and seconds.isdigit():  # proto3 JSON writes int64 as a string
                seconds = int(seconds)
            if isinstance(nanos, str) and nanos.isdigit():
                nanos = int(nanos)
            if isinstance(seconds, bool) or not isinstance(seconds, int) or not isinstance(nanos, int):
                return None
            return datetime.fromtimestamp(seconds + nanos / 1e9, tz=UTC)
        if isinstance(value, str) and value.isdigit() and len(value) <= 16:
            value = int(value)
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            number = float(value)
            if number > 1e11:  # milliseconds (1e11 seconds is the year 5138)
                number /= 1000.0
            return datetime.fromtimestamp(number, tz=UTC)
        if isinstance(value, str) and 10 <= len(value) <= 64:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def first_time(*values: Any) -> datetime:
    """The first readable timestamp among values, else now (UTC)."""
    for value in values:
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return datetime.now(UTC)


def token(value: Any) -> str | None:
    """A client-given identifier (Idempotency-Key, correlationId): printable ASCII, 1-128 characters."""
    if isinstance(value, str) and _TOKEN_RE.fullmatch(value) and value.strip():
        return value.strip()
    return None


def context_request_id(context: Any) -> str | None:
    """The platform's request id from the context: `request_id` (Yandex), then `aws_request_id` (AWS)."""
    for name in ("request_id", "aws_request_id"):
        try:
            value = context.get(name) if isinstance(context, Mapping) else getattr(context, name, None)
        except Exception:  # a context object whose attribute raises is not ours to debug
            value = None
        found = token(value)
        if found:
            return found
    return None


def new_id() -> str:
    return str(uuid.uuid4())
