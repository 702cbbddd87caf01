"""adapters.sqs over both of SQS's protocols against moto's server: JSON (Amazon SQS) and query (what Yandex
Message Queue's API reference documents, adapters.sqs_query); and the query answer read as hostile input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.aws import SQS, AwsError, AwsJsonClient
from adapters.sqs import SqsQueue, protocol_for
from backups.ports import QueueError
from tests.conftest import drain
from tests.receivers import Receiver

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def queue(protocol: str, endpoint: str | None = None) -> SqsQueue:
    return SqsQueue(AwsJsonClient(SQS, endpoint=endpoint, environ={**ENV, "SQS_PROTOCOL": protocol}))


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_batches_reach_the_queue_in_both_protocols(sqs: Any, make_queue: Any, protocol: str) -> None:
    url = make_queue("proto")
    bodies = [json.dumps({"n": i, "text": "ünïcode & <xml> + spaces"}) for i in range(13)]  # two batches
    ids = queue(protocol).send_many(url, bodies, delay_seconds=0)
    assert len(ids) == 13 and len(set(ids)) == 13
    got = sorted((m["Body"] for m in drain(sqs, url)), key=lambda b: json.loads(b)["n"])
    assert got == bodies


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_a_missing_queue_is_a_queue_error_in_both_protocols(sqs_server: str, protocol: str) -> None:
    with pytest.raises(QueueError) as info:
        queue(protocol).send_many(f"{sqs_server}/123456789012/no-such-queue-proto", ["x"])
    assert "testing" not in str(info.value) and "queue refused the message" in str(info.value)


def test_auto_takes_query_for_yandex_message_queue_and_json_elsewhere() -> None:
    ymq = "https://message-queue.api.cloud.yandex.net/b1g00000000000000000/dj600000000000000000/requests"
    aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/requests"
    auto = AwsJsonClient(SQS, environ=ENV)
    assert protocol_for(ymq, auto) == "query" and protocol_for(aws, auto) == "json"
    forced = AwsJsonClient(SQS, environ={**ENV, "SQS_PROTOCOL": "json"})
    assert protocol_for(ymq, forced) == "json"
    with pytest.raises(AwsError, match="SQS_PROTOCOL"):
        protocol_for(aws, AwsJsonClient(SQS, environ={**ENV, "SQS_PROTOCOL": "xml"}))


def test_the_query_request_is_form_encoded_and_signed() -> None:
    r = Receiver()
    r.status = 200
    try:
        r.answers.append((200, None))
        with pytest.raises(QueueError):  # the receiver's answer is not XML: refused, not guessed
            queue("query", r.url).send_many(f"{r.url}/1/q", ["a b&c"], delay_seconds=7)
        [request] = r.requests
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
        assert "x-amz-target" not in request.headers
        body = request.body.decode()
        assert body.startswith("Action=SendMessageBatch&Version=2012-11-05&QueueUrl=")
        assert "SendMessageBatchRequestEntry.1.MessageBody=a%20b%26c" in body  # botocore's encoding: %20, not +
        assert "SendMessageBatchRequestEntry.1.DelaySeconds=7" in body and "SendMessageBatchRequestEntry.1.Id=0" in body
    finally:
        r.stop()


def _answer(status: int, content: bytes) -> Any:
    from adapters.aws import Answer

    return Answer(status, content, {})


def test_a_query_error_names_its_code_and_never_a_credential() -> None:
    from adapters.sigv4 import Credentials
    from adapters.sqs_query import _batch_answer

    credentials = Credentials("AKIDQUERY", "secret-query-key")
    body = (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>"
        b"<Message>no queue for AKIDQUERY &#x85;\xe2\x80\xae forged</Message></Error></ErrorResponse>"
    )
    with pytest.raises(AwsError) as info:
        _batch_answer("SendMessageBatch", _answer(400, body), credentials)
    assert info.value.code == "AWS.SimpleQueueService.NonExistentQueue"
    assert "AKIDQUERY" not in str(info.value) and "\x85" not in str(info.value) and "\u202e" not in str(info.value)


def test_a_query_answer_with_failed_entries_is_read() -> None:
    from adapters.sigv4 import Credentials
    from adapters.sqs_query import _batch_answer

    body = (
        b'<SendMessageBatchResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><SendMessageBatchResult>'
        b"<SendMessageBatchResultEntry><Id>0</Id><MessageId>m-0</MessageId></SendMessageBatchResultEntry>"
        b"<BatchResultErrorEntry><Id>1</Id><Code>Throttling</Code><Message>slow</Message><SenderFault>false"
        b"</SenderFault></BatchResultErrorEntry></SendMessageBatchResult></SendMessageBatchResponse>"
    )
    got = _batch_answer("SendMessageBatch", _answer(200, body), Credentials("a", "b"))
    assert got == {
        "Successful": [{"Id": "0", "MessageId": "m-0"}],
        "Failed": [{"Id": "1", "Code": "Throttling", "Message": "slow"}],
    }


def test_an_entity_bomb_is_refused_not_expanded() -> None:
    from adapters.sigv4 import Credentials
    from adapters.sqs_query import _batch_answer

    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&" + bytes([97 + i]) + b";") * 10) for i in range(8))
        + b"]><r>&i;</r>"
    )
    with pytest.raises(AwsError):
        _batch_answer("SendMessageBatch", _answer(200, bomb), Credentials("a", "b"))


@settings(max_examples=200, deadline=None)
@given(status=st.sampled_from([200, 400, 500]), content=st.binary(max_size=300))
def test_any_answer_is_read_or_refused_never_a_crash(status: int, content: bytes) -> None:
    from adapters.sigv4 import Credentials
    from adapters.sqs_query import _batch_answer

    try:
        got = _batch_answer("SendMessageBatch", _answer(status, content), Credentials("a", "b"))
    except AwsError:
        return
    assert set(got) == {"Successful", "Failed"}


def test_an_answer_with_entities_is_refused_before_it_is_parsed() -> None:
    """Under expat's own limits one entity still expands a body about 100 times: a DOCTYPE is never parsed."""
    from adapters.sigv4 import Credentials
    from adapters.sqs_query import _batch_answer

    x = b"x" * 1000
    amplified = b'<!DOCTYPE r [<!ENTITY e "' + x + b'">]><r>' + b"&e;" * 90 + b"</r>"
    with pytest.raises(AwsError, match="not XML we read"):
        _batch_answer("SendMessageBatch", _answer(200, amplified), Credentials("a", "b"))


def test_an_error_answered_with_200_is_an_error() -> None:
    from adapters.sigv4 import Credentials
    from adapters.sqs_query import _batch_answer

    body = b"<ErrorResponse><Error><Code>ThrottlingException</Code><Message>slow</Message></Error></ErrorResponse>"
    with pytest.raises(AwsError) as info:
        _batch_answer("SendMessageBatch", _answer(200, body), Credentials("a", "b"))
    assert info.value.code == "ThrottlingException" and info.value.retryable


def test_a_hostile_error_code_is_not_taken() -> None:
    from adapters.sigv4 import Credentials
    from adapters.sqs_query import _batch_answer

    body = "<ErrorResponse><Error><Code>Bad\u202eCode <x></Code></Error></ErrorResponse>".encode()
    body = body.replace(b"<x>", b"&lt;x&gt;")
    with pytest.raises(AwsError) as info:
        _batch_answer("SendMessageBatch", _answer(400, body), Credentials("a", "b"))
    assert info.value.code == "HTTP400"
