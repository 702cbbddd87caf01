"""gRPC status codes and the google.rpc.Status error the emulator answers with.

Self-contained on purpose (no import from `function/`): the emulator is an independent check of the client,
so it carries its own copy of the code table from the reference (section 3, "gRPC code -> HTTP mapping").
"""

from __future__ import annotations

from typing import Any

# code -> (name, HTTP status); reference section 3 (identical to google/rpc/code.proto).
GRPC_CODES: dict[int, tuple[str, int]] = {
    0: ("OK", 200),
    1: ("CANCELLED", 499),
    2: ("UNKNOWN", 500),
    3: ("INVALID_ARGUMENT", 400),
    4: ("DEADLINE_EXCEEDED", 504),
    5: ("NOT_FOUND", 404),
    6: ("ALREADY_EXISTS", 409),
    7: ("PERMISSION_DENIED", 403),
    8: ("RESOURCE_EXHAUSTED", 429),
    9: ("FAILED_PRECONDITION", 400),
    10: ("ABORTED", 409),
    11: ("OUT_OF_RANGE", 400),
    12: ("UNIMPLEMENTED", 501),
    13: ("INTERNAL", 500),
    14: ("UNAVAILABLE", 503),
    15: ("DATA_LOSS", 500),
    16: ("UNAUTHENTICATED", 401),
}
CODE_BY_NAME: dict[str, int] = {name: code for code, (name, _) in GRPC_CODES.items()}

OK = 0
CANCELLED = 1
INTERNAL_UNKNOWN = 2
INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

REQUEST_INFO_TYPE = "type.googleapis.com/google.rpc.RequestInfo"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


def http_status(code: int) -> int:
    return GRPC_CODES.get(code, ("UNKNOWN", 500))[1]


def code_name(code: int) -> str:
    return GRPC_CODES.get(code, ("UNKNOWN", 500))[0]


def parse_code(value: Any) -> int:
    """A gRPC code given as a number or as its name ("INTERNAL"); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a gRPC code: {value!r}")
    if isinstance(value, int) and value in GRPC_CODES:
        return value
    if isinstance(value, str):
        if value.upper() in CODE_BY_NAME:
            return CODE_BY_NAME[value.upper()]
        if value.isdigit() and int(value) in GRPC_CODES:
            return int(value)
    raise ValueError(f"not a gRPC code: {value!r}")


def status_body(code: int, message: str, request_id: str, extra_details: list[dict[str, Any]] | None = None) -> dict:
    """google.rpc.Status JSON with a RequestInfo detail (reference section 3, the error example)."""
    details: list[dict[str, Any]] = [{"@type": REQUEST_INFO_TYPE, "requestId": request_id}]
    details.extend(extra_details or [])
    return {"code": code, "message": message, "details": details}


class ApiError(Exception):
    """Raised by request handlers; rendered as a google.rpc.Status with the code's HTTP status."""

    def __init__(self, code: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    def body(self, request_id: str) -> dict:
        extra: list[dict[str, Any]] = []
        if self.field is not None and self.code == INVALID_ARGUMENT:
            extra.append(
                {"@type": BAD_REQUEST_TYPE, "fieldViolations": [{"field": self.field, "description": self.message}]}
            )
        return status_body(self.code, self.message, request_id, extra)


def invalid(message: str, field: str | None = None) -> ApiError:
    return ApiError(INVALID_ARGUMENT, message, field=field)


def not_found(message: str) -> ApiError:
    return ApiError(NOT_FOUND, message)


def precondition(message: str) -> ApiError:
    return ApiError(FAILED_PRECONDITION, message)
