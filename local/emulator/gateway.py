"""The request as a proto gateway reads it: path parameters, query parameters by the request message's fields,
a JSON body; and the list paging every List call shares.

`Spec` is the emulator's own copy of each request message's query fields (it imports no SDK: the emulator is an
independent check, and tests/conformance compares both with the official protos).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from local.emulator.errors import invalid
from local.emulator.records import Subject

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
T = TypeVar("T")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    request_id: str
    subject: Subject | None = None
    params: dict[str, str] = field(default_factory=dict)

    def q(self, name: str) -> str | None:
        """A query parameter by its JSON name or its proto (snake_case) name (Spec.check refused repeats)."""
        for key in (name, snake(name)):
            values = self.query.get(key)
            if values:
                return values[-1]
        return None

    def json_body(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise invalid(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise invalid("request body must be a JSON object")
        return data


Result = tuple[int, dict[str, Any]]

# --- the request as a proto gateway reads it ---------------------------------------------------------------

# strconv.ParseBool, which grpc-gateway uses for boolean query parameters.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_INT = re.compile(r"^[+-]?\d{1,19}$")


@dataclass(frozen=True)
class Spec:
    """The query a request message allows (a copy of the proto, kept here so the emulator imports no SDK).

    `query`: json name -> "string" | "bool" | "int" | an enum as {name: number}; the proto (snake_case) name is
    accepted too, as grpc-gateway does. `oneof`: json names (path parameters included) of one oneof: at most one
    may be set. A call whose rule has `body: "*"` has no query fields at all.
    """

    query: dict[str, str | dict[str, int]] = field(default_factory=dict)
    oneof: tuple[str, ...] = ()

    def check(self, req: Request) -> None:
        names = {snake(n): n for n in self.query} | {n: n for n in self.query}
        seen: set[str] = set()
        for key, values in req.query.items():
            name = names.get(key)
            if name is None:
                raise invalid(f"unknown query parameter {key!r}", key)
            if name in seen or len(values) > 1:
                raise invalid(f"{name}: too many values (not a repeated field)", name)
            seen.add(name)
            _check_value(name, self.query[name], values[0])
        set_members = [n for n in self.oneof if n in seen or n in req.params]
        if len(set_members) > 1:
            raise invalid(f"should not have multiple id oneof fields: {', '.join(set_members)}", set_members[-1])


def _check_value(name: str, kind: str | dict[str, int], raw: str) -> None:
    if isinstance(kind, dict):
        if raw not in kind and not (_INT.match(raw) and int(raw) in kind.values()):
            raise invalid(f"{name}: {raw!r} is not a valid value (one of {', '.join(kind)})", name)
    elif kind == "bool" and raw not in _TRUE | _FALSE:
        raise invalid(f"{name}: not a boolean: {raw!r}", name)
    elif kind == "int" and not _INT.match(raw):
        raise invalid(f"{name}: not an integer: {raw!r}", name)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


INSTANCE_VIEW = {"BASIC": 0, "FULL": 1}  # compute.v1.InstanceView: no *_UNSPECIFIED member
RESOURCE_TYPE = {"RESOURCE_TYPE_UNSPECIFIED": 0, "COMPUTE": 1, "BMS": 2, "EXTERNAL_VM": 3, "EXTERNAL_SERVER": 4}
PAGE: dict[str, str | dict[str, int]] = {"pageSize": "int", "pageToken": "string"}
NO_QUERY = Spec()


def parse_bool(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise invalid(f"{name}: not a boolean: {value!r}", name)


def paginate(req: Request, items: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], str]:
    """pageSize 0..1000 (0/absent: 100), pageToken opaque (<=100 chars); items must be sorted by key."""
    raw_size = req.q("pageSize")
    try:
        size = int(raw_size) if raw_size not in (None, "") else 0
    except ValueError as exc:
        raise invalid(f"pageSize: not an integer: {raw_size!r}", "pageSize") from exc
    if size < 0 or size > MAX_PAGE_SIZE:
        raise invalid(f"pageSize: must be within 0..{MAX_PAGE_SIZE}", "pageSize")
    size = size or DEFAULT_PAGE_SIZE
    token = req.q("pageToken") or ""
    start = 0
    if token:
        if len(token) > 100:
            raise invalid("pageToken: longer than 100 characters", "pageToken")
        try:
            decoded = base64.urlsafe_b64decode(token.encode("ascii") + b"==").decode("ascii")
        except (UnicodeError, ValueError, binascii.Error) as exc:
            raise invalid("pageToken: invalid page token", "pageToken") from exc
        if not decoded.startswith("after:"):
            raise invalid("pageToken: invalid page token", "pageToken")
        after = decoded[len("after:") :]
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = list(items[start : start + size])
    more = start + size < len(items)
    next_token = base64.urlsafe_b64encode(f"after:{key(page[-1])}".encode()).decode().rstrip("=") if more else ""
    return page, next_token
