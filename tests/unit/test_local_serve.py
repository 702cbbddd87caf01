"""local.serve (the HTTP front of `make serve`) and the `make run` fixes in local.runtime, without the platform.

Given a request, the event the front builds is one the function's own parser reads back unchanged; hostile
requests (no length, huge or lying lengths) get the front's own 4xx without reaching the function.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local import runtime
from local.serve import Front, http_event, response_of
from triggers.detect import parse_event

BODY = b'{"computeInstanceId": "fhmproddb00000000001", "reason": "caf\xc3\xa9"}'
HEADERS = [("Content-Type", "application/json"), ("X-Backup-Timestamp", "1700000000"), ("X-Dup", "a"), ("X-Dup", "b")]


@pytest.mark.parametrize(("shape", "source"), [("v2", "aws.http-api"), ("v1", "aws.api-gateway-rest")])
def test_the_event_reads_back_as_the_request(shape: str, source: str) -> None:
    event = http_event(shape, "POST", "/backup?x=1", HEADERS, BODY, "127.0.0.1")
    invocation = parse_event(event, None)
    assert invocation.source == source
    assert invocation.http is not None
    request = invocation.http
    assert (request.method, request.path, request.body) == ("POST", "/backup", BODY)
    assert request.header("x-backup-timestamp") == "1700000000"
    assert request.query == {"x": "1"}
    assert request.header("x-dup") == ("a,b" if shape == "v2" else "b")


@given(
    st.text(max_size=300).map(str.encode),
    st.sampled_from(["v2", "v1"]),
    st.from_regex(r"/[a-z0-9/]{0,30}", fullmatch=True),
)
def test_any_body_and_path_reach_the_function_byte_for_byte(body: bytes, shape: str, path: str) -> None:
    request = parse_event(http_event(shape, "GET", path, [], body, "127.0.0.1"), None).http
    assert request is not None and request.body == body and request.path == path


def test_a_reply_becomes_the_response() -> None:
    status, headers, body = response_of({"statusCode": 405, "headers": {"Allow": "POST"}, "body": '{"a": 1}'})
    assert (status, headers["Allow"], body) == (405, "POST", b'{"a": 1}')
    assert response_of({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True})[2] == b"hi"
    assert response_of("not a reply")[0] == 502
    assert "Transfer-Encoding" not in response_of({"statusCode": 200, "headers": {"Transfer-Encoding": "x"}})[1]


@pytest.fixture
def front() -> Iterator[tuple[Front, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}

    server = Front(0, invoke)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, seen
    server.shutdown()
    server.server_close()


def request(server: Front, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def test_a_request_goes_through_the_handler(front: tuple[Front, list[dict[str, Any]]]) -> None:
    server, seen = front
    status, body = request(server, "POST", "/backup", BODY, {"Content-Length": str(len(BODY))})
    assert status == 202 and json.loads(body) == {"ok": True}
    assert parse_event(seen[0], None).http.body == BODY  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Length": str(2 << 20)}, 413),
        ({"Content-Length": "-5"}, 400),
        ({"Content-Length": "12abc"}, 400),
        ({"Transfer-Encoding": "chunked"}, 411),
    ],
)
def test_hostile_lengths_are_refused_by_the_front(
    front: tuple[Front, list[dict[str, Any]]], headers: dict[str, str], status: int
) -> None:
    server, seen = front
    assert request(server, "POST", "/backup", None, headers)[0] == status
    assert seen == []


# --- make run ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not json", "is not JSON"), (b"\xff\xfe", "not UTF-8"), (b"[1, 2]", "not an object")],
)
def test_make_run_with_a_bad_event_file_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "event.json"
    path.write_bytes(content)
    assert runtime.main(["--event", str(path)]) == 2
    out = capsys.readouterr()
    assert message in out.out and "Traceback" not in out.out + out.err


def test_make_run_with_a_missing_event_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime.main(["--event", str(tmp_path / "nope.json")]) == 2
    assert "no such event file" in capsys.readouterr().out


def test_make_run_waits_as_long_as_the_backup_takes() -> None:
    assert runtime.default_timeout("emulator", 10, 60) >= 3 * 10
    assert runtime.default_timeout("emulator", 600, 60) >= 3 * 600  # a 10-hour backup at 60x: 10 minutes
    assert runtime.default_timeout("real", 10, 60) >= 86400  # `make emulator` or the cloud: real time


def test_a_dry_run_reply_is_recognised_in_both_shapes() -> None:
    assert runtime.is_dry_run({"dryRun": True, "plan": []})
    assert runtime.is_dry_run({"statusCode": 200, "body": json.dumps({"dryRun": True})})
    assert not runtime.is_dry_run({"statusCode": 202, "body": json.dumps({"started": []})})
    assert not runtime.is_dry_run({"statusCode": 200, "body": "not json"})
