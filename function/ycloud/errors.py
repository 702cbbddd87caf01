"""One typed error for everything the Yandex Cloud client can fail with.

The REST error body is a google.rpc.Status (`{"code", "message", "details"}`); transport failures
(refused or dropped connections, timeouts, unreadable bodies) are mapped onto the gRPC code that
describes them, so callers only ever handle `CloudError`.
"""

from __future__ import annotations

from typing import Any

# gRPC code -> (name, HTTP status), from the Yandex Cloud error-handling table (google/rpc/code.proto).
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
CODE_BY_NAME = {name: code for code, (name, _) in GRPC_CODES.items()}

# HTTP status -> gRPC code, for answers without a Status body (a proxy's 502, say).
_CODE_BY_HTTP = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 500: 13, 501: 12, 502: 14, 503: 14, 504: 4}

# Worth another try later: throttling, a service that is down or restarting, a timeout.
TRANSIENT_CODES = frozenset({4, 8, 13, 14})


def code_name(code: int) -> str:
    return GRPC_CODES.get(code, ("UNKNOWN", 500))[0]


def http_status_for(code: int) -> int:
    return GRPC_CODES.get(code, ("UNKNOWN", 500))[1]


def code_for_http(status: int) -> int:
    return _CODE_BY_HTTP.get(status, 2 if status >= 500 else 3)


class CloudError(Exception):
    """A failed Yandex Cloud call, with what is needed to decide and to report.

    `http_status` is 0 when no HTTP answer arrived (connection refused, dropped, timed out).
    The message never carries a token or key: it comes from the server's Status or from our own words.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int | None = None,
        details: list[dict[str, Any]] | None = None,
        request_id: str = "",
        client_request_id: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        self.code = code
        self.name = code_name(code)
        self.http_status = http_status_for(code) if http_status is None else http_status
        self.message = message
        self.details = details or []
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.method = method
        self.path = path
        super().__init__(self.__str__())

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        rid = f" [request id {self.request_id}]" if self.request_id else ""
        return f"{self.name}: {self.message}{where}{rid}"

    def to_log(self) -> dict[str, Any]:
        return {
            "grpcCode": self.code,
            "grpcName": self.name,
            "httpStatus": self.http_status,
            "message": self.message,
            "requestId": self.request_id,
            "clientRequestId": self.client_request_id,
            "method": self.method,
            "path": self.path,
        }
