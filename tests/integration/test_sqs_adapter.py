"""SqsQueue over the real SQS protocol (moto server)."""

from __future__ import annotations

import json

import pytest

from adapters.sqs import SqsQueue
from backups.ports import QueueError
from tests.conftest import drain


def test_send_many_batches_by_ten_and_returns_every_id(sqs, make_queue, sqs_server):
    # Given a queue and 23 bodies
    url = make_queue("tickets")
    queue = SqsQueue(endpoint_url=sqs_server)
    bodies = [json.dumps({"n": i}) for i in range(23)]
    # When they are sent
    ids = queue.send_many(url, bodies)
    # Then every one arrives once, with an id each
    assert len(ids) == 23 and len(set(ids)) == 23
    got = sorted(json.loads(m["Body"])["n"] for m in drain(sqs, url))
    assert got == list(range(23))


def test_delay_is_capped_at_the_queue_limit(sqs, make_queue, sqs_server):
    url = make_queue("delayed")
    SqsQueue(endpoint_url=sqs_server).send(url, "{}", delay_seconds=5000)
    # The message exists but is not visible yet (delayed), and the send did not fail on the 900 s limit.
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


def test_unknown_queue_is_a_queue_error_without_credentials(sqs_server):
    queue = SqsQueue(endpoint_url=sqs_server)
    with pytest.raises(QueueError) as info:
        queue.send(f"{sqs_server}/123456789012/does-not-exist", "{}")
    assert "testing" not in str(info.value)
