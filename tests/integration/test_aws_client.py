"""adapters.aws over real HTTP against the loopback Receiver: retries, error mapping, hostile endpoints."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.aws import SECRETS_MANAGER, SQS, AwsError, AwsJsonClient, AwsUnreachable, clean
from adapters.sinks import QueueSink
from adapters.sqs import SqsQueue
from backups.ports import QueueError, SinkError
from tests.receivers import Receiver

KEY, SECRET, TOKEN = "AKIDLEAKCHECK0001", "s3cr3t/Key+Value", "t0ken-session-value"
ENV = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN, "AWS_REGION": "eu-west-1"}
CREDENTIALS = (KEY, SECRET, TOKEN)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver(default_answer={})
    yield r
    r.stop()


def client(url: str, sleeps: list[float] | None = None, service: Any = SQS, **kw: Any) -> AwsJsonClient:
    record = sleeps if sleeps is not None else []
    return AwsJsonClient(service, endpoint=url, environ=ENV, sleep=record.append, jitter=lambda: 0.5, **kw)


def no_credentials(text: str) -> bool:
    return not any(value in text for value in CREDENTIALS) and "Signature=" not in text.replace("Signature=***", "")


def test_a_call_is_signed_json_with_the_target(receiver):
    receiver.answers.append((200, {"Successful": []}))
    assert client(receiver.url).call("SendMessageBatch", {"QueueUrl": "q", "Entries": []}) == {"Successful": []}
    [request] = receiver.requests
    assert request.headers["x-amz-target"] == "AmazonSQS.SendMessageBatch"
    assert request.headers["content-type"] == "application/x-amz-json-1.0"
    assert request.headers["x-amz-security-token"] == TOKEN
    assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY}/")
    assert "/eu-west-1/sqs/aws4_request" in request.headers["authorization"]
    assert json.loads(request.body) == {"QueueUrl": "q", "Entries": []}


def test_throttling_and_5xx_are_retried_with_growing_backoff(receiver):
    receiver.answers += [
        (503, {}),
        (400, {"__type": "com.amazonaws.sqs#ThrottlingException", "message": "slow down"}),
        (500, {}),
        (200, {"ok": 1}),
    ]
    sleeps: list[float] = []
    assert client(receiver.url, sleeps).call("X", {}) == {"ok": 1}
    assert len(receiver.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]  # jitter * 2 ** attempt
    dates = {r.headers["x-amz-date"] for r in receiver.requests}
    assert len({r.headers["authorization"] for r in receiver.requests}) >= len(dates)  # signed per attempt


def test_four_attempts_at_most_then_the_last_error(receiver):
    receiver.always = 503
    sleeps: list[float] = []
    with pytest.raises(AwsError) as info:
        client(receiver.url, sleeps).call("X", {})
    assert len(receiver.requests) == 4 and len(sleeps) == 3
    assert info.value.status == 503 and info.value.code == "HTTP503"


def test_a_client_error_is_not_retried_and_its_code_is_parsed(receiver):
    receiver.answers.append((400, {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "no such queue"}))
    with pytest.raises(AwsError) as info:
        client(receiver.url).call("SendMessageBatch", {})
    assert len(receiver.requests) == 1
    assert (info.value.code, info.value.message, info.value.status) == ("QueueDoesNotExist", "no such queue", 400)


def test_the_query_error_header_gives_the_legacy_code(receiver):
    body = {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "gone"}
    receiver.answers.append((400, body, {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"}))
    with pytest.raises(AwsError) as info:
        client(receiver.url).call("SendMessageBatch", {})
    assert info.value.code == "AWS.SimpleQueueService.NonExistentQueue"
    assert info.value.json_code == "QueueDoesNotExist"


def test_a_throttled_legacy_code_is_still_retried(receiver):
    body = {"__type": "com.amazonaws.sqs#RequestThrottled", "message": "x"}
    receiver.answers += [(403, body, {"x-amzn-query-error": "AWS.SimpleQueueService.Throttled;Sender"}), (200, {})]
    assert client(receiver.url).call("SendMessageBatch", {}) == {}
    assert len(receiver.requests) == 2


def test_connection_refused_is_unreachable_after_four_attempts():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    sleeps: list[float] = []
    with pytest.raises(AwsUnreachable) as info:
        client(f"http://127.0.0.1:{port}", sleeps).call("X", {})
    assert len(sleeps) == 3 and info.value.code == "ConnectionError"


def test_a_silent_endpoint_times_out_quickly():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (backlog) but never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(AwsUnreachable) as info:
            client(url, timeouts=(0.2, 0.2), max_attempts=2).call("X", {})
    assert info.value.code in ("ReadTimeout", "ConnectionError")


def test_no_credentials_in_the_environment_is_a_clear_error(receiver):
    bare = AwsJsonClient(SQS, endpoint=receiver.url, environ={})
    with pytest.raises(AwsError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"):
        bare.call("X", {})
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("environ", "default", "expected"),
    [
        (
            {"AWS_ENDPOINT_URL_SQS": "http://sqs.local:1", "AWS_ENDPOINT_URL": "http://all:2"},
            "https://q",
            ("http://sqs.local:1", "us-east-1"),
        ),
        (
            {"AWS_ENDPOINT_URL": "http://all:2", "AWS_DEFAULT_REGION": "eu-north-1"},
            "https://q",
            ("http://all:2", "eu-north-1"),
        ),
        (
            {},
            "https://message-queue.api.cloud.yandex.net",
            ("https://message-queue.api.cloud.yandex.net", "ru-central1"),
        ),
        ({}, "https://sqs.ap-south-1.amazonaws.com", ("https://sqs.ap-south-1.amazonaws.com", "ap-south-1")),
        (
            {"AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "x"},
            None,
            ("https://sqs.eu-west-2.amazonaws.com", "eu-west-2"),
        ),
        ({"AWS_REGION": "cn-north-1"}, None, ("https://sqs.cn-north-1.amazonaws.com.cn", "cn-north-1")),
        (
            {"AWS_REGION": "us-east-1"},
            "https://sqs.eu-west-1.amazonaws.com",
            ("https://sqs.eu-west-1.amazonaws.com", "eu-west-1"),
        ),
        (
            {"AWS_REGION": "us-east-1"},
            "https://message-queue.api.cloud.yandex.net",
            ("https://message-queue.api.cloud.yandex.net", "ru-central1"),
        ),
    ],
)
def test_the_endpoint_and_region_rules(environ, default, expected):
    assert AwsJsonClient(SQS, environ=environ).resolve(default) == expected


def test_secrets_manager_has_its_own_endpoint_variable():
    environ = {"AWS_ENDPOINT_URL_SQS": "http://sqs:1", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://sm:2"}
    assert AwsJsonClient(SECRETS_MANAGER, environ=environ).resolve()[0] == "http://sm:2"


# --- hostile endpoints --------------------------------------------------------------------------------------

HOSTILE = {
    "__type": "com.amazonaws.sqs#Evil\nInjected: yes",
    "message": f'bad\n{{"level":"INFO","forged":true}}\x1b[31m red {SECRET} {KEY} {TOKEN} '
    f"Authorization: AWS4-HMAC-SHA256 Credential={KEY}/x, Signature=0123abcd " + "x" * 5000,
}


def test_a_hostile_error_body_is_escaped_shortened_and_redacted(receiver):
    receiver.answers.append((400, HOSTILE, {"x-amzn-query-error": "Evil\x7fCode;Sender"}))
    with pytest.raises(AwsError) as info:
        client(receiver.url).call("X", {})
    text = str(info.value)
    assert info.value.code == "HTTP400"  # neither code is a plausible error code
    assert "\n" not in text and "\x1b" not in text and len(text) < 400
    assert no_credentials(text) and "0123abcd" not in text


def test_a_hostile_endpoint_never_gets_its_text_unescaped_into_the_logs(receiver, caplog):
    receiver.always = 400
    receiver.default_answer = HOSTILE
    sink = QueueSink(SqsQueue(client(receiver.url)), f"{receiver.url}/123456789012/results")
    with caplog.at_level("DEBUG"), pytest.raises(SinkError) as info:
        from tests.integration.test_sinks import failed

        sink.emit(failed())
    logged = [r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records]
    assert logged, "the failure is logged"
    for line in [*logged, str(info.value)]:
        assert no_credentials(line)
        assert "\x1b" not in line and '\n{"level"' not in line


def test_an_endless_body_is_cut_off(receiver):
    receiver.answers.append((200, b"[" + b"0," * (3 * 1024 * 1024) + b"0]"))
    with pytest.raises(AwsError, match="ResponseTooLarge"):
        client(receiver.url).call("X", {})


@pytest.mark.parametrize("answer", [b"not json", b"[1, 2]", b'"text"'])
def test_a_success_that_is_not_a_json_object_is_an_error(receiver, answer):
    receiver.answers.append((200, answer))
    with pytest.raises(AwsError, match="InvalidResponse"):
        client(receiver.url).call("X", {})


def test_a_redirect_is_not_followed(receiver):
    receiver.answers.append((307, {}, {"Location": "http://169.254.169.254/latest"}))
    with pytest.raises(AwsError) as info:
        client(receiver.url).call("X", {})
    assert info.value.status == 307 and len(receiver.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        {"Successful": [{"Id": "0", "MessageId": "m"}]},  # one id missing of two
        {"Successful": "nope", "Failed": [{"Id": "99", "Code": "X"}]},  # a failed entry we never sent
        {"Successful": [], "Failed": [{"Id": "0", "Code": "Evil\n\x1bCode"}, {"Id": "1", "Code": "Y"}]},
    ],
)
def test_a_broken_batch_answer_is_a_queue_error_not_a_crash(receiver, reply):
    receiver.default_answer = reply
    with pytest.raises(QueueError) as info:
        SqsQueue(client(receiver.url)).send_many(f"{receiver.url}/1/q", ["a", "b"])
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_failed_entries_are_retried_once(receiver):
    receiver.answers += [
        (200, {"Successful": [{"Id": "0", "MessageId": "m0"}], "Failed": [{"Id": "1", "Code": "Throttled"}]}),
        (200, {"Successful": [{"Id": "1", "MessageId": "m1"}]}),
    ]
    assert SqsQueue(client(receiver.url)).send_many(f"{receiver.url}/1/q", ["a", "b"]) == ["m0", "m1"]
    assert [e["MessageBody"] for e in json.loads(receiver.requests[1].body)["Entries"]] == ["b"]


def test_clean_escapes_control_and_non_ascii_characters():
    assert clean("a\nb\x1b[0m é") == "a\\x0ab\\x1b[0m \\xe9"
    assert clean("Signature=abc, Credential=AKID/x") == "Signature=***, Credential=***"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(json_values, st.fixed_dictionaries({"__type": st.text(), "message": st.text()})),
    query_error=st.text(max_size=60),
    status=st.integers(300, 599),
)
def test_any_error_answer_reads_as_a_safe_error(body, query_error, status):
    from adapters.aws import _error
    from adapters.sigv4 import Credentials

    error = _error("Op", status, body, query_error, Credentials(KEY, SECRET, TOKEN))
    text = str(error)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", error.code) and re.fullmatch(
        r"[A-Za-z0-9._-]{1,128}", error.json_code
    )
    assert text.isascii() and text.isprintable() and len(error.message) <= 300
    assert no_credentials(text)


# --- safeguards found by the review: each test fails without its safeguard ----------------------------------


def test_the_environment_cannot_replace_the_signature(receiver, tmp_path, monkeypatch):
    """A .netrc entry for the host (or a proxy setting) is ignored: requests' trust_env would put Basic auth in place
    of the SigV4 Authorization header, or send the session token through a proxy."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login bob password hunter2\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.9:9")
    receiver.answers.append((200, {}))
    client(receiver.url).call("X", {})
    [request] = receiver.requests
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("http://sqs.eu-west-1.amazonaws.com", "plain http"),
        ("https://user:pw@sqs.eu-west-1.amazonaws.com", "user information"),
        ("https://sqs.eu-west-1.amazonaws.com/?x=1", "query"),
        ("ftp://sqs.eu-west-1.amazonaws.com", "not an http(s) URL"),
    ],
)
def test_signed_requests_go_only_over_https_or_to_loopback(endpoint, why):
    with pytest.raises(AwsError) as info:
        client(endpoint).call("X", {})
    assert info.value.code == "InvalidEndpoint" and why in str(info.value)
    assert "pw" not in str(info.value)


def test_credentials_have_no_repr():
    from adapters.sigv4 import Credentials

    credentials = Credentials.from_env(ENV)
    assert credentials is not None and no_credentials(repr(credentials))


class Streamed:
    """A requests response that answers 200 with `chunks` (each one after `before_each()`), for a session stub."""

    status_code = 200
    headers: dict[str, str] = {}

    def __init__(self, chunks: list[bytes], before_each: Any = lambda: None) -> None:
        self.chunks, self.before_each = chunks, before_each

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def iter_content(self, size: int) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.before_each()
            yield chunk


def answering(response: Streamed) -> Any:
    import requests as _requests

    session = _requests.Session()
    session.post = lambda *a, **k: response  # type: ignore[method-assign]
    return session


def test_a_deeply_nested_answer_is_an_error_not_a_crash(receiver):
    session = answering(Streamed([b"[" * 100_000]))  # the parser's recursion limit
    with pytest.raises(AwsError) as info:
        AwsJsonClient(SQS, endpoint="https://sqs.eu-west-1.amazonaws.com", environ=ENV, session=session).call("X", {})
    assert info.value.code == "InvalidResponse"


def test_a_call_keeps_to_its_budget(receiver):
    """Retries stop when the pauses would pass the call's budget (a follow-up batch must not be killed half-way)."""
    receiver.always = 503
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    c = AwsJsonClient(
        SQS,
        endpoint=receiver.url,
        environ=ENV,
        sleep=sleep,
        jitter=lambda: 1.0,
        clock=lambda: now[0],
        budget_seconds=2.5,
    )
    with pytest.raises(AwsError):
        c.call("X", {})
    assert sum(sleeps) < 2.5 and len(receiver.requests) < 4


def test_a_refused_certificate_is_not_retried():
    import requests as _requests

    session = _requests.Session()

    def refuse(*a: Any, **k: Any) -> Any:
        raise _requests.exceptions.SSLError("certificate verify failed")

    session.post = refuse  # type: ignore[method-assign]
    sleeps: list[float] = []
    c = AwsJsonClient(
        SQS, endpoint="https://sqs.eu-west-1.amazonaws.com", environ=ENV, session=session, sleep=sleeps.append
    )
    with pytest.raises(AwsError) as info:
        c.call("X", {})
    assert info.value.code == "SSLError" and sleeps == []


def test_a_huge_error_text_is_cut_before_it_is_escaped():
    text = clean("\x00" * (4 * 1024 * 1024) + SECRET, CREDENTIALS)
    assert len(text) <= 300 and SECRET not in text


def test_a_partial_arn_takes_only_its_own_secret():
    """`…:secret:foo` must not take the entry of `…:secret:foo-bar-AbCdEf` (Secrets Manager appends 6 characters)."""
    from adapters.secrets import _match

    base = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
    arns = [base + "foo", base + "foo-bar"]
    assert _match({"ARN": base + "foo-bar-AbCdEf", "Name": "foo-bar"}, arns) == base + "foo-bar"
    assert _match({"ARN": base + "foo-AbCdEf", "Name": "foo"}, arns) == base + "foo"
    assert _match({"ARN": base + "foo-bar-AbCdEf"}, [base + "foo"]) is None


def test_a_dripping_answer_is_cut_off_at_the_budget():
    """A read timeout bounds the gap between two bytes only: the call's budget bounds the whole body."""
    now = [0.0]

    def nine_seconds() -> None:  # a byte every 9 s, under the read timeout
        now[0] += 9.0

    session = answering(Streamed([b" "] * 100, nine_seconds))
    c = AwsJsonClient(
        SQS, endpoint="https://sqs.eu-west-1.amazonaws.com", environ=ENV, session=session, clock=lambda: now[0],
        max_attempts=1,
    )  # fmt: skip
    with pytest.raises(AwsUnreachable) as info:
        c.call("X", {})
    assert info.value.code == "BudgetExceeded" and now[0] <= 25.0 + 9.0


def test_the_quick_queue_makes_one_call_even_for_failed_entries(receiver):
    receiver.answers.append((200, {"Successful": [], "Failed": [{"Id": "0", "Code": "ThrottlingException"}]}))
    quick = SqsQueue(client(receiver.url, max_attempts=1), resend_failed=False)
    with pytest.raises(QueueError, match="ThrottlingException"):
        quick.send_many(f"{receiver.url}/1/q", ["a"])
    assert len(receiver.requests) == 1
