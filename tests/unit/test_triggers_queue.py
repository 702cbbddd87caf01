"""Batch failure replies: per-item for SQS, none for Yandex Message Queue (a batch is redelivered whole)."""

from __future__ import annotations

import pytest

from tests.unit.test_triggers_samples import load_event, load_reference
from triggers.detect import parse_event
from triggers.queue import batch_failure_reply

FIRST = "059f36b4-87a3-44ab-83d2-661975830a7d"
SECOND = "2e1424d4-f796-459a-8184-9c92662be6da"


def test_sqs_reports_only_the_failed_items_in_order_without_repeats() -> None:
    invocation = parse_event(load_reference("sqsEvent.json"), None)
    reply = batch_failure_reply(invocation, [SECOND, FIRST, SECOND])
    assert reply == {"batchItemFailures": [{"itemIdentifier": SECOND}, {"itemIdentifier": FIRST}]}


def test_sqs_with_no_failures_acknowledges_the_batch() -> None:
    invocation = parse_event(load_reference("sqsEvent.json"), None)
    assert batch_failure_reply(invocation, []) == {"batchItemFailures": []}


def test_sqs_unknown_id_is_refused() -> None:
    invocation = parse_event(load_reference("sqsEvent.json"), None)
    with pytest.raises(ValueError, match="not in this batch"):
        batch_failure_reply(invocation, ["someone-else"])


def test_yandex_queue_has_no_per_item_reply() -> None:
    invocation = parse_event(load_event("yc-message-queue.json"), None)
    message_id = invocation.messages[0].message_id
    assert message_id is not None
    assert batch_failure_reply(invocation, [message_id]) is None
    assert batch_failure_reply(invocation, []) is None


@pytest.mark.parametrize("name", ["yc-timer.json", "yc-http.json", "aws-eventbridge-schedule.json"])
def test_non_queue_invocations_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="queue invocation"):
        batch_failure_reply(parse_event(load_event(name), None), [])
