"""The queue handlers' reply mapping without servers: `handlers.trigger.handle` and `handlers.followup.handle` with
built platform events, the fake cloud, a fake queue and a recording sink.

Given a batch as the platform hands it over, when the handler settles it, then the reply (AWS batchItemFailures,
Yandex ok or an exception), what is sent back to which queue, and the results are those documented in
handlers.batch. Attacker-style cases name the issue 11 finding they guard.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from handlers import followup as followup_handler
from handlers import trigger as trigger_handler
from handlers.deps import Deps

from backups.errors import RedeliveryRequested
from backups.handoff import FollowupTicket, Redelivery
from backups.models import ResultEvent, TriggerInfo
from backups.ports import SinkError
from backups.target import BackupTarget, idempotency_key
from settings import Settings
from tests.fakes import FakeClock, FakeCloud, FakeQueue
from tests.unit.test_triggers_samples import load_event
from ycloud.errors import CloudError

FOLDER = "b1gfolder"
REQUESTS = "https://queue.local/requests"
FOLLOWUPS = "https://queue.local/followups"
REQUEST_DLQ = "https://queue.local/requests-dlq"
FOLLOWUP_DLQ = "https://queue.local/followups-dlq"
KEY = "handoff-key-0123456789"


class Sink:
    name = "queue"

    def __init__(self) -> None:
        self.events: list[ResultEvent] = []
        self.down = False

    def emit(self, event: ResultEvent) -> None:
        if self.down:
            raise SinkError("down")
        self.events.append(event)


class World:
    def __init__(self, **env: str | None) -> None:
        self.cloud = FakeCloud()
        self.policy = self.cloud.add_policy("Default daily", folder_id=FOLDER)
        self.vm = self.cloud.add_instance(name="web1", folder_id=FOLDER)
        self.cloud.apply_now(self.policy.id, self.vm.id)
        self.queue, self.sink, self.clock = FakeQueue(), Sink(), FakeClock()
        base: dict[str, str | None] = {
            "FOLDER_ID": FOLDER,
            "REQUEST_QUEUE_URL": REQUESTS,
            "FOLLOWUP_QUEUE_URL": FOLLOWUPS,
            "REQUEST_DLQ_URL": REQUEST_DLQ,
            "FOLLOWUP_DLQ_URL": FOLLOWUP_DLQ,
            "HANDOFF_SECRET": KEY,
            "YC_MAX_RETRIES": "0",
            "METRICS_ENABLED": "false",
        }
        self.settings = Settings.from_env({k: v for k, v in (base | env).items() if v is not None})

    def deps(self) -> Deps:
        return Deps(
            settings=self.settings,
            cloud_factory=lambda settings, context: self.cloud,
            queue_factory=lambda: self.queue,
            clock=self.clock,
            sinks_factory=lambda reply_to: [self.sink],
        )

    def request(self, **fields: Any) -> str:
        return json.dumps({"computeInstanceId": self.vm.id, "policyId": self.policy.id} | fields)

    def trigger(self, event: dict[str, Any]) -> Any:
        return trigger_handler.handle(event, None, self.deps())

    def followup(self, event: dict[str, Any]) -> Any:
        return followup_handler.handle(event, None, self.deps())

    def sent(self, url: str) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.queue.bodies(url)]


def yandex_batch(*bodies: str) -> dict[str, Any]:
    sample = load_event("yc-message-queue.json")
    messages = []
    for i, body in enumerate(bodies):
        m = copy.deepcopy(sample["messages"][0])
        m["event_metadata"]["event_id"] = m["details"]["message"]["message_id"] = f"ymq-{i}"
        m["details"]["message"]["body"] = body
        messages.append(m)
    return {"messages": messages}


def sqs_batch(*bodies: str) -> dict[str, Any]:
    sample = load_event("aws-sqs.json")
    records = []
    for i, body in enumerate(bodies):
        r = copy.deepcopy(sample["Records"][0])
        r["messageId"], r["body"] = f"sqs-{i}", body
        records.append(r)
    return {"Records": records}


def unavailable(w: World) -> None:
    w.cloud.fail("compute.get", CloudError(14, "try again"))


# --- the trigger handler on queues ---------------------------------------------------------------------------


def test_aws_batch_reports_only_the_transient_message() -> None:
    w = World()
    other = w.cloud.add_instance(name="db1", folder_id=FOLDER)
    w.cloud.fail("compute.get", CloudError(14, "try again"), when=lambda **kw: kw.get("instance_id") == other.id)
    reply = w.trigger(sqs_batch(w.request(), json.dumps({"computeInstanceId": other.id, "policyId": w.policy.id})))
    assert reply == {"batchItemFailures": [{"itemIdentifier": "sqs-1"}]}
    assert [e["computeInstanceId"] for e in w.cloud.execute_log] == [w.vm.id]


def test_yandex_transient_message_is_sent_back_alone_with_its_trigger_id() -> None:
    # issue 11 #9: whole-batch redelivery would bring the healthy neighbour back (a second ticket, result, chat)
    w = World()
    other = w.cloud.add_instance(name="db1", folder_id=FOLDER)
    w.cloud.fail("compute.get", CloudError(14, "try again"), when=lambda **kw: kw.get("instance_id") == other.id)
    asked = json.dumps({"computeInstanceId": other.id, "policyId": w.policy.id})
    assert w.trigger(yandex_batch(w.request(), asked)) == {"ok": True}
    [again] = w.sent(REQUESTS)
    assert (again["kind"], again["triggerId"], again["attempt"], again["request"]) == ("redelivery", "ymq-1", 1, asked)
    assert len(w.sent(FOLLOWUPS)) == 1  # the healthy one's ticket, once


def test_a_sent_back_request_keeps_the_first_delivery_keys() -> None:
    w = World()
    again = Redelivery(trigger_id="ymq-7", source="yc.message-queue", attempt=1, request=w.request()).signed(KEY)
    assert w.trigger(yandex_batch(again.body())) == {"ok": True}
    [execute] = w.cloud.execute_log
    assert execute["idempotencyKey"] == idempotency_key("ymq-7", w.policy.id, w.vm.id)


def test_a_request_that_keeps_failing_ends_in_one_failed_result_and_the_dead_letter_queue() -> None:
    w = World(REDELIVERY_MAX_ATTEMPTS="2")
    unavailable(w)
    again = Redelivery(trigger_id="ymq-7", source="yc.message-queue", attempt=2, request=w.request()).signed(KEY)
    assert w.trigger(yandex_batch(again.body())) == {"ok": True}
    assert w.sent(REQUESTS) == []
    assert [json.loads(b) for b in w.queue.bodies(REQUEST_DLQ)] == [json.loads(w.request())]
    [event] = w.sink.events
    assert event.data.status == "failed" and event.data.trigger_id == "ymq-7"
    assert event.data.error is not None and event.data.error.code == "CLOUD_UNAVAILABLE"


@pytest.mark.parametrize(
    "forge",
    [
        lambda r: r.model_copy(update={"trigger_id": "someone-else"}),  # a field changed after signing
        lambda r: r.model_copy(update={"attempt": 1}),  # the count reset
        lambda r: r.model_copy(update={"request": json.dumps({"computeInstanceId": "fhmother", "policyId": "p"})}),
        lambda r: r.model_copy(update={"signature": ""}),  # unsigned
        lambda r: r.signed("another-key"),  # signed by someone else
    ],
)
def test_a_forged_redelivery_starts_nothing_and_is_reported_as_its_carrier(forge: Any) -> None:
    w = World()
    genuine = Redelivery(trigger_id="ymq-7", source="yc.timer", attempt=3, request=w.request()).signed(KEY)
    assert w.trigger(yandex_batch(forge(genuine).body())) == {"ok": True}
    assert w.cloud.execute_log == []
    [event] = w.sink.events
    assert event.data.trigger_id == "ymq-0" and event.data.source == "yc.message-queue"  # the carrier, not a claim
    assert event.data.error is not None and event.data.error.code == "INVALID_REQUEST"


def test_without_a_handoff_key_a_yandex_batch_raises_as_before() -> None:
    w = World(HANDOFF_SECRET=None)
    unavailable(w)
    with pytest.raises(RedeliveryRequested):
        w.trigger(yandex_batch(w.request()))
    assert w.sent(REQUESTS) == []


@pytest.mark.parametrize("batch", [sqs_batch, yandex_batch])
def test_an_oversized_message_fails_alone(batch: Any) -> None:
    # issue 11 #8: one message over the limit must not refuse (and so drop) the whole batch
    w = World()
    big = w.request(reason="x" * 300_000) if batch is sqs_batch else w.request(reason="x" * 200_000)
    reply = w.trigger(batch(big, w.request()))
    assert reply == ({"batchItemFailures": []} if batch is sqs_batch else {"ok": True})
    assert len(w.cloud.execute_log) == 1  # the healthy neighbour started
    [event] = w.sink.events  # the oversized one: one failed result, for the request as its carrier
    assert event.data.error is not None and event.data.error.code == "INVALID_REQUEST"
    assert "MAX_BODY_BYTES" in event.data.error.message


def test_a_timer_with_a_transient_failure_raises_for_the_platform_retry() -> None:
    w = World()
    unavailable(w)
    with pytest.raises(RedeliveryRequested):
        w.trigger(load_event("yc-timer.json"))


def test_a_timer_request_that_cannot_start_is_answered_and_reported() -> None:
    w = World()
    event = load_event("yc-timer.json")
    event["messages"][0]["details"]["payload"] = json.dumps({"instanceName": "ghost", "policyId": w.policy.id})
    reply = w.trigger(event)
    assert reply["ok"] is False and reply["error"]["code"] == "NOTHING_MATCHED"
    [result] = w.sink.events
    assert result.data.error is not None and result.data.error.code == "NOTHING_MATCHED"


# --- the follow-up handler -----------------------------------------------------------------------------------


def ticket(w: World, **kw: Any) -> FollowupTicket:
    op = w.cloud.backup_policies.execute(w.policy.id, w.vm.id)
    target = BackupTarget(
        trigger=TriggerInfo(source="yc.timer", trigger_id="t1"),
        asked=f"computeInstanceId={w.vm.id}",
        compute_instance_id=w.vm.id,
        policy_id=w.policy.id,
    )
    now = w.clock.now()
    return FollowupTicket(target=target, operation_id=op.id, started_at=now, deadline=now + timedelta(days=1), **kw)


def test_yandex_poison_ticket_goes_to_the_dead_letter_queue_and_the_batch_is_acknowledged() -> None:
    w = World()
    t = ticket(w)
    assert w.followup(yandex_batch("not a ticket", t.sealed_body(KEY))) == {"ok": True}
    assert w.queue.bodies(FOLLOWUP_DLQ) == ["not a ticket"]
    [again] = w.sent(FOLLOWUPS)  # the healthy ticket, rescheduled once
    assert again["operationId"] == t.operation_id and again.get("redeliveries", 0) == 0


def test_aws_poison_ticket_is_reported_for_the_redrive_policy() -> None:
    w = World()
    assert w.followup(sqs_batch("not a ticket")) == {"batchItemFailures": [{"itemIdentifier": "sqs-0"}]}


def test_yandex_ticket_whose_result_no_sink_took_is_sent_back_counted_then_dead_lettered() -> None:
    w = World(REDELIVERY_MAX_ATTEMPTS="2")
    t = ticket(w)
    w.cloud.complete(t.operation_id)
    w.sink.down = True
    assert w.followup(yandex_batch(t.sealed_body(KEY))) == {"ok": True}
    [again] = w.sent(FOLLOWUPS)
    assert again["redeliveries"] == 1
    last = FollowupTicket.model_validate(again | {"redeliveries": 2})
    assert w.followup(yandex_batch(last.sealed_body(KEY))) == {"ok": True}
    [dead] = [json.loads(b) for b in w.queue.bodies(FOLLOWUP_DLQ)]
    assert dead["operationId"] == t.operation_id


def test_a_ticket_for_another_instance_ends_in_one_mismatch_result() -> None:
    # issue 11 #7: the operation's own metadata decides, not what the ticket says
    w = World()
    t = ticket(w)
    w.cloud.complete(t.operation_id)
    other = w.cloud.add_instance(name="db9", folder_id=FOLDER)
    forged = t.model_copy(update={"target": t.target.model_copy(update={"compute_instance_id": other.id})})
    assert w.followup(yandex_batch(forged.sealed_body(KEY))) == {"ok": True}
    [event] = w.sink.events
    assert event.data.status == "failed" and event.data.error is not None
    assert event.data.error.code == "TICKET_MISMATCH"


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t.body(),  # unsigned
        lambda t: t.sealed_body("another-key"),  # signed by someone else
        lambda t: json.dumps(  # a field changed after signing: another trigger's identity (its event id)
            json.loads(t.sealed_body(KEY))
            | {"target": json.loads(t.body())["target"] | {"trigger": {"source": "x", "triggerId": "victim"}}}
        ),
    ],
)
def test_with_a_handoff_key_a_forged_ticket_is_refused_before_any_call(forge: Any) -> None:
    # review finding: a ticket names the trigger, so it names the result event id; only the function may write one
    w = World()
    t = ticket(w)
    calls = w.cloud.calls
    assert w.followup(yandex_batch(forge(t))) == {"ok": True}
    assert w.cloud.calls == calls  # no Operation.Get for a ticket that is not ours
    [event] = w.sink.events
    assert event.data.error is not None and event.data.error.code == "INVALID_TICKET"
    assert event.data.trigger_id == "ymq-0" and event.data.compute_instance_id is None  # named after its carrier
