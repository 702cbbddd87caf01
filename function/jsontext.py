"""The one strict reader of a JSON object from untrusted text (request bodies, queue messages, tickets).

Strict: UTF-8 only, no NaN/Infinity, bounded nesting; an empty text is `{}`. Errors never quote the input (it may
be long, hostile, or carry a signed URL): only what is wrong and where. Callers turn `NotAJsonObject` into their
own error type (a 400, a failed result, a poison ticket).
"""

from __future__ import annotations

import json
from typing import Any


class NotAJsonObject(ValueError):
    """The text is not one JSON object. The message is safe to show."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(text: str | bytes | bytearray, what: str) -> dict[str, Any]:
    """`text` as a JSON object; `what` names it in errors ("the request body")."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise NotAJsonObject(f"{what} is not UTF-8 text") from None
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise NotAJsonObject(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as exc:  # its message holds no input, only what and where
        raise NotAJsonObject(f"{what} is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except ValueError as exc:
        raise NotAJsonObject(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise NotAJsonObject(f"{what} must be a JSON object, not a JSON {type(value).__name__}")
    return value
