"""Mapping HTTP answers and requests exceptions onto CloudError."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from ycloud.errors import CloudError
from ycloud.transport import _CallContext, _decode_ok, _http_error, _transport_error

CTX = _CallContext("GET", "https://backup.api.cloud.yandex.net/backup/v1/policies/p1", "cid-1")


def response(
    status: int, body: Any = None, *, reason: str = "", headers: dict[str, str] | None = None
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.reason = reason
    r._content = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    r.headers.update(headers or {})
    return r


def test_a_status_body_gives_code_message_details_and_request_id() -> None:
    body = {"code": 9, "message": "Policy is not applied", "details": [{"@type": "x.BadRequest"}, "junk"]}
    err = _http_error(response(400, body), CTX, "rid-1")
    assert (err.code, err.name, err.http_status, err.message) == (
        9,
        "FAILED_PRECONDITION",
        400,
        "Policy is not applied",
    )
    assert err.details == [{"@type": "x.BadRequest"}] and err.request_id == "rid-1"
    assert (err.method, err.path, err.client_request_id) == ("GET", "/backup/v1/policies/p1", "cid-1")
    assert not err.transient


def test_the_request_id_falls_back_on_the_request_info_detail() -> None:
    body = {"code": 16, "message": "Token is invalid or has expired.",
            "details": [{"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "e38e71c3"}]}  # fmt: skip
    err = _http_error(response(401, body), CTX, "")
    assert err.name == "UNAUTHENTICATED" and err.request_id == "e38e71c3"


@pytest.mark.parametrize(
    ("status", "name", "transient"),
    [
        (400, "INVALID_ARGUMENT", False),
        (401, "UNAUTHENTICATED", False),
        (403, "PERMISSION_DENIED", False),
        (404, "NOT_FOUND", False),
        (409, "ABORTED", False),
        (429, "RESOURCE_EXHAUSTED", True),
        (500, "INTERNAL", True),
        (502, "UNAVAILABLE", True),
        (503, "UNAVAILABLE", True),
        (504, "DEADLINE_EXCEEDED", True),
        (418, "INVALID_ARGUMENT", False),
        (599, "UNKNOWN", False),
    ],
)
def test_a_body_that_is_not_a_status_is_mapped_from_the_http_status(status: int, name: str, transient: bool) -> None:
    err = _http_error(response(status, b"<html>Bad Gateway</html>", reason="Whatever"), CTX, "")
    assert (err.name, err.http_status, err.transient) == (name, status, transient)
    assert err.message == f"HTTP {status} Whatever" and "html" not in str(err)


@pytest.mark.parametrize("code", ["NOT_FOUND", "not_found", "5", 5])
def test_the_code_may_be_a_number_or_a_name(code: Any) -> None:
    assert _http_error(response(404, {"code": code, "message": "m"}), CTX, "").name == "NOT_FOUND"


@pytest.mark.parametrize("body", [{"code": 0, "message": "m"}, {"code": 99}, {"code": True}, {"message": "only"}, []])
def test_a_nonsense_code_falls_back_on_the_http_status(body: Any) -> None:
    err = _http_error(response(503, body), CTX, "")
    assert err.name == "UNAVAILABLE"


def test_a_malformed_success_body_is_unknown() -> None:
    for body in (b"{", b"[1]", b'"text"'):
        with pytest.raises(CloudError) as info:
            _decode_ok(response(200, body), CTX, "r")
        assert (info.value.name, info.value.http_status, info.value.request_id) == ("UNKNOWN", 200, "r")


def _refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "name", "connect_failed"),
    [
        (_refused(), "UNAVAILABLE", True),
        (requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())), "UNAVAILABLE", False),
        (requests.exceptions.ConnectTimeout("connect timed out"), "DEADLINE_EXCEEDED", True),
        (requests.exceptions.ReadTimeout("read timed out"), "DEADLINE_EXCEEDED", False),
        (requests.exceptions.SSLError("certificate verify failed"), "UNAVAILABLE", False),
        (requests.exceptions.ChunkedEncodingError("cut"), "UNAVAILABLE", False),
        (requests.exceptions.InvalidURL("bad"), "UNKNOWN", False),
    ],
)
def test_transport_exceptions_become_cloud_errors_with_no_http_status(
    exc: requests.RequestException, name: str, connect_failed: bool
) -> None:
    err, refused = _transport_error(exc, CTX)
    assert (err.name, err.http_status, refused) == (name, 0, connect_failed)
    assert isinstance(err, CloudError) and err.client_request_id == "cid-1"


def test_str_and_log_shape() -> None:
    err = _http_error(response(404, {"code": 5, "message": "Instance not found"}), CTX, "rid")
    assert str(err) == "NOT_FOUND: Instance not found (GET /backup/v1/policies/p1) [request id rid]"
    assert err.to_log()["grpcName"] == "NOT_FOUND" and err.to_log()["httpStatus"] == 404
