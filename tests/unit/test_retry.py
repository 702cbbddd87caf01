"""Exactly one ticket chain and one result per target across redeliveries and replays (backups.retry,
backups.handoff's `issuedAt`, the stale-ticket drop, `metrics.Settled`, several timer messages).

Given a request whose targets end partly started and partly retryable, when the trigger handler settles it, then
only the retryable ones come back (as signed retry messages), the started ones get one ticket each, and after
REDELIVERY_MAX_ATTEMPTS a target still failing ends in one failed result. Attacker-style cases: a replayed (old)
fan-out, retry or redelivery message starts nothing; a replayed ticket long past its deadline calls nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from handlers.deps import Deps
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backups.errors import RedeliveryRequested
from backups.handoff import FanoutMessage, Redelivery
from backups.schedule import message_max_age, retry_delay
from metrics import BufferedRecorder, Point, Settled, summed
from settings import Settings
from tests.unit.test_handlers_queue import (
    FOLDER,
    FOLLOWUPS,
    KEY,
    REQUESTS,
    World,
    sqs_batch,
    ticket,
    yandex_batch,
)
from tests.unit.test_triggers_samples import load_event
from ycloud.errors import CloudError


class Kept(BufferedRecorder):
    """Keeps every point it is asked to write, over the invocations of a test."""

    backend = "test"

    def __init__(self) -> None:
        super().__init__()
        self.written: list[Point] = []

    def _write(self, points: list[Point]) -> None:
        self.written.extend(points)

    def total(self, name: str) -> float:
        return sum(v for (n, _), v in summed(self.written).items() if n == name)


class Two(World):
    """Two instances under one policy; Execute of the second fails transiently (`down`) until `heal()`."""

    def __init__(self, **env: str | None) -> None:
        super().__init__(**env)
        self.other = self.cloud.add_instance(name="db1", folder_id=FOLDER)
        self.cloud.apply_now(self.policy.id, self.other.id)
        self.recorder = Kept()
        self.down = True
        self.cloud.fail(
            "policies.execute",
            CloudError(14, "backend down"),
            times=None,
            when=lambda **kw: self.down and kw.get("compute_instance_id") == self.other.id,
        )

    def deps(self) -> Deps:
        deps = super().deps()
        deps.metrics_factory = lambda _platform, _context: self.recorder
        return deps

    def both(self, **fields: Any) -> str:
        return json.dumps({"computeInstanceIds": [self.vm.id, self.other.id], "policyId": self.policy.id} | fields)

    def timer(self, body: str, *event_ids: str) -> dict[str, Any]:
        event = load_event("yc-timer.json")
        first = event["messages"][0]
        first["details"]["payload"] = body
        event["messages"] = []
        for event_id in event_ids or ("timer-1",):
            message = json.loads(json.dumps(first))
            message["event_metadata"]["event_id"] = event_id
            event["messages"].append(message)
        return event

    def retries(self) -> list[dict[str, Any]]:
        return [m for m in self.sent(REQUESTS) if m.get("kind") == "fanout"]

    def tickets(self) -> list[dict[str, Any]]:
        return self.sent(FOLLOWUPS)

    def started(self) -> list[str]:
        return [e["computeInstanceId"] for e in self.cloud.execute_log]


# --- 1. mixed outcomes: only the retryable targets come back ---------------------------------------------------


def test_a_timer_with_a_started_and_a_retryable_target_hands_off_the_retryable_one_alone() -> None:
    w = Two()
    reply = w.trigger(w.timer(w.both()))  # before: RedeliveryRequested, and the timer's retry ticketed vm twice
    assert reply["ok"] is False and [q["computeInstanceId"] for q in reply["queued"]] == [w.other.id]
    assert reply["retryable"] == [] and reply["queued"][0]["attempt"] == 1
    [retry] = w.retries()
    assert retry["target"]["computeInstanceId"] == w.other.id and retry["attempt"] == 1
    assert FanoutMessage.model_validate(retry).verify(KEY) and retry["issuedAt"]
    [(_, _, delay)] = [s for s in w.queue.sent if s[0] == REQUESTS]
    assert delay == retry_delay(1, w.settings)
    assert [t["target"]["computeInstanceId"] for t in w.tickets()] == [w.vm.id]
    assert w.sink.events == []  # no result yet for either
    assert w.recorder.total("backups_started") == 1 and w.recorder.total("redeliveries") == 1


def test_the_retry_message_starts_the_target_and_each_target_has_one_ticket_chain() -> None:
    w = Two()
    w.trigger(w.timer(w.both()))
    [retry] = w.queue.bodies(REQUESTS)
    w.down = False
    assert w.trigger(yandex_batch(retry)) == {"ok": True}
    tickets = w.tickets()
    assert sorted(t["target"]["computeInstanceId"] for t in tickets) == sorted([w.vm.id, w.other.id])
    assert {t["target"]["trigger"]["triggerId"] for t in tickets} == {"timer-1"}  # the first delivery's keys
    assert w.retries() == [json.loads(retry)]  # nothing more handed off


def test_a_target_still_failing_after_its_last_retry_ends_in_one_failed_result() -> None:
    w = Two(REDELIVERY_MAX_ATTEMPTS="2")
    w.trigger(w.timer(w.both()))
    for attempt in (1, 2):
        [retry] = [b for b in w.queue.bodies(REQUESTS) if json.loads(b)["attempt"] == attempt]
        assert w.trigger(sqs_batch(retry)) == {"batchItemFailures": []}  # settled, never the platform's redrive
    assert [r["attempt"] for r in w.retries()] == [1, 2]
    [event] = w.sink.events
    assert event.data.status == "failed" and event.data.compute_instance_id == w.other.id
    assert event.data.error is not None and event.data.error.code == "UNAVAILABLE"
    assert "after 2 retries" in event.data.error.message
    assert event.data.trigger_id == "timer-1"
    assert [t["target"]["computeInstanceId"] for t in w.tickets()] == [w.vm.id]


def test_an_sqs_message_with_mixed_outcomes_is_acknowledged_and_its_retryable_target_handed_off() -> None:
    w = Two()
    assert w.trigger(sqs_batch(w.both())) == {"batchItemFailures": []}  # before: the whole message came back
    assert [r["target"]["computeInstanceId"] for r in w.retries()] == [w.other.id]
    assert len(w.tickets()) == 1


def test_a_failed_and_a_retryable_target_hand_off_the_retryable_one_and_emit_the_failure_once() -> None:
    w = Two()
    third = w.cloud.add_instance(name="db2", folder_id=FOLDER)  # the policy is not applied to it: failed
    body = json.dumps({"computeInstanceIds": [third.id, w.other.id], "policyId": w.policy.id})
    reply = w.trigger(w.timer(body))
    assert [f["computeInstanceId"] for f in reply["failed"]] == [third.id]
    assert [r["target"]["computeInstanceId"] for r in w.retries()] == [w.other.id]
    [event] = w.sink.events
    assert event.data.compute_instance_id == third.id


def test_when_nothing_started_the_request_is_still_redelivered_whole() -> None:
    w = Two()
    body = json.dumps({"computeInstanceId": w.other.id, "policyId": w.policy.id})
    with pytest.raises(RedeliveryRequested):
        w.trigger(w.timer(body))
    assert w.retries() == []


def test_without_a_handoff_key_mixed_outcomes_are_redelivered_whole_as_before() -> None:
    w = Two(HANDOFF_SECRET=None)
    with pytest.raises(RedeliveryRequested):
        w.trigger(w.timer(w.both()))
    assert w.sent(REQUESTS) == []


def test_a_policy_still_being_applied_is_rechecked_by_its_retry_message() -> None:
    w = Two()
    w.down = False
    late = w.cloud.add_instance(name="db3", folder_id=FOLDER)
    w.cloud.backup_policies.apply(w.policy.id, late.id)  # an Apply in progress: resolution says POLICY_APPLYING
    body = json.dumps({"computeInstanceIds": [w.vm.id, late.id], "policyId": w.policy.id})
    w.trigger(w.timer(body))
    [retry] = w.retries()
    assert retry["recheckApplied"] is True and retry["target"]["computeInstanceId"] == late.id
    w.trigger(yandex_batch(json.dumps(retry)))  # still applying: handed off again, not executed
    assert w.started() == [w.vm.id] and [r["attempt"] for r in w.retries()] == [1, 2]


# --- 1b. what an HTTP caller gets -------------------------------------------------------------------------------


def test_status_for_mixed_outcomes_is_202_and_names_started_and_queued() -> None:
    from handlers.http import handle_http

    from tests.unit.test_handlers_http import SECRET, signed_post

    w = Two(WEBHOOK_SECRET=SECRET)
    deps = w.deps()
    with deps.recording("yandex", None):
        reply = handle_http(signed_post(json.loads(w.both())), None, deps)
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 202 and "error" not in body  # before: 202 with retryable[]: the gate re-sent it
    assert [s["computeInstanceId"] for s in body["started"]] == [w.vm.id]
    assert [q["computeInstanceId"] for q in body["queued"]] == [w.other.id] and body["retryable"] == []


def _signed_post_refused_by(w: Two, queue_url: str, body: str) -> dict[str, Any]:
    """A signed POST /backup of `body`, with the queue at `queue_url` refusing every message."""
    from handlers.http import handle_http

    from backups.ports import QueueError
    from tests.unit.test_handlers_http import signed_post

    real = w.queue.send_many

    def refuse(url: str, bodies: Any, *, delay_seconds: int = 0) -> list[str]:
        if url == queue_url:
            raise QueueError(f"queue down: {url.rsplit('/', 1)[-1]}")
        return real(url, bodies, delay_seconds=delay_seconds)

    w.queue.send_many = refuse  # type: ignore[method-assign]
    deps = w.deps()
    with deps.recording("yandex", None):
        reply: dict[str, Any] = handle_http(signed_post(json.loads(body)), None, deps)
    return reply


def test_http_a_refused_retry_is_503_and_names_what_started() -> None:
    """Not "that target failed": part of the messages may be stored all the same (a partial batch, a timeout) and
    would later emit a second, contradicting result. The request comes back whole (same keys)."""

    from tests.unit.test_handlers_http import SECRET

    w = Two(WEBHOOK_SECRET=SECRET)
    reply = _signed_post_refused_by(w, REQUESTS, w.both())
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 503 and body["error"]["code"] == "HANDOFF_FAILED"
    assert [s["computeInstanceId"] for s in body["started"]] == [w.vm.id]
    assert [e for e in w.sink.events if e.data.status == "failed"] == []  # no result for the one not yet tried


# --- 2. signed messages expire ------------------------------------------------------------------------------------


def test_the_default_max_age_outlasts_every_retry_and_a_setting_may_only_raise_it() -> None:
    s = Settings.from_env({})
    longest = s.redelivery_max_attempts * max(retry_delay(n, s) for n in range(1, s.redelivery_max_attempts + 1))
    assert message_max_age(s) == timedelta(seconds=9300) and message_max_age(s).total_seconds() > longest + 900
    assert message_max_age(Settings.from_env({"HANDOFF_MAX_AGE_SECONDS": "600"})) == timedelta(seconds=9300)
    assert message_max_age(Settings.from_env({"HANDOFF_MAX_AGE_SECONDS": "86400"})) == timedelta(days=1)


@pytest.mark.parametrize("value", ["1209601", "100000000000000"])
def test_a_max_age_past_any_queue_retention_is_refused_at_settings(value: str) -> None:
    """Far-future arithmetic would overflow every invocation (a date out of range): refused where it is read."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings.from_env({"HANDOFF_MAX_AGE_SECONDS": value})


def _fanout(w: World, **kw: Any) -> FanoutMessage:
    from backups.models import TriggerInfo
    from backups.target import BackupTarget

    target = BackupTarget(
        trigger=TriggerInfo(source="yc.timer", trigger_id="t-old"),
        asked=f"computeInstanceId={w.vm.id}",
        compute_instance_id=w.vm.id,
        policy_id=w.policy.id,
    )
    return FanoutMessage(target=target, **kw).signed(KEY)


@pytest.mark.parametrize("attempt", [None, 3])
def test_an_old_fanout_or_retry_message_is_refused_as_its_carrier(attempt: int | None) -> None:
    w = World()
    old = _fanout(w, attempt=attempt, issued_at=w.clock.now() - message_max_age(w.settings) - timedelta(seconds=1))
    assert w.trigger(yandex_batch(old.body())) == {"ok": True}
    assert w.cloud.execute_log == []
    [event] = w.sink.events
    assert event.data.trigger_id == "ymq-0" and event.data.compute_instance_id is None  # the carrier, not a claim
    assert event.data.error is not None and event.data.error.code == "INVALID_REQUEST"
    assert "s ago" in event.data.error.message


def test_a_fanout_message_within_its_age_starts_and_an_undated_one_is_accepted_this_release() -> None:
    w = World()
    fresh = _fanout(w, issued_at=w.clock.now() - message_max_age(w.settings) + timedelta(seconds=5))
    undated = _fanout(w).model_copy(update={"target": _fanout(w).target.model_copy(update={"asked": "x"})}).signed(KEY)
    assert w.trigger(yandex_batch(fresh.body(), undated.body())) == {"ok": True}
    assert len(w.cloud.execute_log) == 1  # the same target twice: one operation (idempotency key)
    assert len(w.sent(FOLLOWUPS)) == 2 and w.sink.events == []


def test_an_issued_at_moved_later_breaks_the_signature() -> None:
    w = World()
    old = _fanout(w, issued_at=w.clock.now() - timedelta(days=2))
    forged = json.loads(old.body()) | {"issuedAt": w.clock.now().isoformat()}
    assert w.trigger(yandex_batch(json.dumps(forged))) == {"ok": True}
    assert w.cloud.execute_log == []
    [event] = w.sink.events
    assert event.data.error is not None and "signature" in event.data.error.message


def test_an_old_redelivery_is_refused_and_a_sent_back_one_keeps_its_first_issued_at() -> None:
    w = World()
    issued = w.clock.now() - message_max_age(w.settings) - timedelta(minutes=1)
    old = Redelivery(trigger_id="ymq-7", source="yc.timer", attempt=1, request=w.request(), issued_at=issued)
    assert w.trigger(yandex_batch(old.signed(KEY).body())) == {"ok": True}
    assert w.cloud.execute_log == []
    [event] = w.sink.events
    assert event.data.trigger_id == "ymq-0" and event.data.error is not None
    # a request sent back twice: the second Redelivery keeps the first one's issuedAt
    w2 = World()
    w2.cloud.fail("compute.get", CloudError(14, "try again"), times=None)
    w2.trigger(yandex_batch(w2.request()))
    [first] = w2.sent(REQUESTS)
    w2.clock.advance(60)
    w2.trigger(yandex_batch(json.dumps(first)))
    second = w2.sent(REQUESTS)[1]
    assert second["attempt"] == 2 and second["issuedAt"] == first["issuedAt"]


def test_a_retry_message_keeps_the_first_issued_at() -> None:
    w = Two()
    w.trigger(w.timer(w.both()))
    [first] = w.retries()
    w.clock.advance(120)
    w.trigger(yandex_batch(json.dumps(first)))
    assert [r["issuedAt"] for r in w.retries()] == [first["issuedAt"]] * 2


# --- 2b. replayed tickets long past their deadline -----------------------------------------------------------------


def test_a_ticket_read_long_past_its_deadline_is_checked_once_more_and_ends() -> None:
    """A replay, or a redrive after the follow-up was down: one Get, its result (a deterministic event id: consumers
    drop a duplicate), and no new ticket. Dropping it would lose the only result of a chain that never got checked."""
    w = Two()
    t = ticket(w)
    w.cloud.complete(t.operation_id)
    w.clock.advance((t.deadline - w.clock.now()).total_seconds() + message_max_age(w.settings).total_seconds() + 1)
    calls = w.cloud.calls
    assert w.followup(yandex_batch(t.sealed_body(KEY))) == {"ok": True}
    assert w.cloud.calls == calls + 1 and w.sent(FOLLOWUPS) == []  # one Get (is it still there, and done?): it ends
    [event] = w.sink.events
    assert event.data.status == "succeeded" and event.data.operation_id == t.operation_id
    assert w.recorder.total("stale_checked") == 1


def test_a_ticket_just_past_its_deadline_still_ends_in_its_result() -> None:
    w = World()
    t = ticket(w)
    w.clock.advance((t.deadline - w.clock.now()).total_seconds() + 905)  # the longest delay plus the grace
    assert w.followup(yandex_batch(t.sealed_body(KEY))) == {"ok": True}
    [event] = w.sink.events
    assert event.data.status == "timed_out"


# --- 3. a result is counted once --------------------------------------------------------------------------------


def test_results_emitted_before_a_sink_failure_are_not_counted_twice() -> None:
    w = Two()
    w.down = False
    a = w.cloud.add_instance(name="a1", folder_id=FOLDER)  # not applied: failed
    b = w.cloud.add_instance(name="b1", folder_id=FOLDER)
    body = json.dumps({"computeInstanceIds": [a.id, b.id], "policyId": w.policy.id})
    failing = {"n": 0}
    real = w.sink.emit

    def second_fails(event: Any) -> None:  # the first result goes through, the second does not
        failing["n"] += 1
        if failing["n"] == 2:
            from backups.ports import SinkError

            raise SinkError("down")
        real(event)

    w.sink.emit = second_fails  # type: ignore[method-assign]
    with pytest.raises(RedeliveryRequested):
        w.trigger(w.timer(body))
    assert w.recorder.total("backups_failed") == 0  # before: 1 here, then 2 more on the redelivery
    w.trigger(w.timer(body))  # the platform's retry: both go through
    assert w.recorder.total("backups_failed") == 2


def test_a_yandex_followup_batch_that_comes_back_whole_counts_nothing_until_it_settles() -> None:
    from backups.ports import QueueError

    w = Two()
    done, running = ticket(w), ticket(w)
    w.cloud.complete(done.operation_id)
    w.queue.fail_with = QueueError("down")  # the running one cannot be sent back: the whole batch comes back
    with pytest.raises(RedeliveryRequested):
        w.followup(yandex_batch(done.sealed_body(KEY), running.sealed_body(KEY)))
    assert w.recorder.total("backups_succeeded") == 0
    w.queue.fail_with = None
    w.followup(yandex_batch(done.sealed_body(KEY), running.sealed_body(KEY)))
    assert w.recorder.total("backups_succeeded") == 1


def test_settled_counts_an_event_id_once_per_invocation_and_nothing_when_discarded() -> None:
    from tests.metrics_helpers import failed_start

    inner = Kept()
    seen: set[str] = set()
    first, again, dropped = Settled(inner, seen), Settled(inner, seen), Settled(inner, seen)
    for s in (first, again, dropped):
        s.record_started(1)
        s.record_result(failed_start())
    first.commit()
    again.commit()
    dropped.discard()
    dropped.commit()
    inner.flush()
    assert inner.total("backups_failed") == 1 and inner.total("backups_started") == 2


# --- 4. a timer event of several messages ----------------------------------------------------------------------


def test_every_message_of_a_timer_event_runs_with_its_own_trigger_id() -> None:
    w = Two()
    w.down = False
    reply = w.trigger(w.timer(w.request(), "timer-a", "timer-b"))  # before: only timer-a ran
    assert reply["ok"] is True and len(reply["messages"]) == 2
    keys = {e["idempotencyKey"] for e in w.cloud.execute_log}
    from backups.target import idempotency_key

    assert keys == {idempotency_key(t, w.policy.id, w.vm.id) for t in ("timer-a", "timer-b")}
    assert {t["target"]["trigger"]["triggerId"] for t in w.tickets()} == {"timer-a", "timer-b"}


def test_a_timer_message_that_must_come_back_is_sent_back_alone() -> None:
    w = Two()
    event = w.timer(w.request(), "timer-a", "timer-b")
    event["messages"][1]["details"]["payload"] = json.dumps({"computeInstanceId": w.other.id, "policyId": w.policy.id})
    reply = w.trigger(event)  # timer-b: nothing started, all retryable: the request comes back, alone
    assert reply["ok"] is False and reply["messages"][1]["sentBack"] is True
    [again] = [m for m in w.sent(REQUESTS) if m["kind"] == "redelivery"]
    assert (again["triggerId"], again["source"]) == ("timer-b", "yc.timer")
    assert [t["target"]["trigger"]["triggerId"] for t in w.tickets()] == ["timer-a"]


def test_a_timer_event_of_several_messages_without_a_key_fails_after_running_them_all() -> None:
    w = Two(HANDOFF_SECRET=None)
    event = w.timer(w.request(), "timer-a", "timer-b")
    event["messages"][1]["details"]["payload"] = json.dumps({"computeInstanceId": w.other.id, "policyId": w.policy.id})
    with pytest.raises(RedeliveryRequested):
        w.trigger(event)
    assert [e["computeInstanceId"] for e in w.cloud.execute_log] == [w.vm.id]
    assert w.recorder.total("backups_started") == 0  # it all comes back: counted then


@given(age=st.integers(min_value=-3600, max_value=40_000), max_age=st.integers(min_value=60, max_value=20_000))
@hsettings(max_examples=60, deadline=None)
def test_a_signed_message_is_read_exactly_while_it_is_young_enough(age: int, max_age: int) -> None:
    from backups.handoff import ForgedFanout, Freshness, read_fanout

    w = World()
    now = w.clock.now()
    body = json.loads(_fanout(w, attempt=2, issued_at=now - timedelta(seconds=age)).body())
    fresh = Freshness(now=now, max_age=timedelta(seconds=max_age))
    if -300 <= age <= max_age:
        assert read_fanout(body, w.settings, fresh).attempt == 2
    else:
        with pytest.raises(ForgedFanout, match="refused"):
            read_fanout(body, w.settings, fresh)


def test_a_sink_failure_comes_back_before_any_retry_message_exists() -> None:
    """Started, failed and retryable targets; the failed result's sink fails once, and the timer retries: the
    retryable target's retry message is sent once (the failed results go out first), not once per delivery."""
    from backups.ports import SinkError
    from tests.unit.test_handlers_queue import FOLDER

    w = Two()
    third = w.cloud.add_instance(name="db2", folder_id=FOLDER)  # the policy is not applied: a failed target
    body = json.dumps({"computeInstanceIds": [w.vm.id, third.id, w.other.id], "policyId": w.policy.id})
    real, calls = w.sink.emit, [0]

    def fail_once(event: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise SinkError("down")
        real(event)

    w.sink.emit = fail_once  # type: ignore[method-assign]
    with pytest.raises(RedeliveryRequested):
        w.trigger(w.timer(body))
    assert w.retries() == []  # nothing handed off yet: the request comes back whole
    w.trigger(w.timer(body))  # the timer's retry
    assert [r["attempt"] for r in w.retries()] == [1]


def test_an_undated_message_is_refused_after_the_transition() -> None:
    """A captured copy of the previous version's message cannot be replayed for ever."""
    from backups.handoff import UNDATED_ACCEPTED_UNTIL, ForgedFanout, Freshness, read_fanout

    w = World()
    undated = _fanout(w).signed(KEY)
    data = json.loads(undated.body())
    before = Freshness(now=UNDATED_ACCEPTED_UNTIL - timedelta(seconds=1), max_age=message_max_age(w.settings))
    read_fanout(data, w.settings, before)
    after = Freshness(now=UNDATED_ACCEPTED_UNTIL, max_age=message_max_age(w.settings))
    with pytest.raises(ForgedFanout, match="no issuedAt"):
        read_fanout(data, w.settings, after)


# --- metrics: a reply or batch that comes back is counted when it settles (the review's mutants) -------------


def test_http_a_503_counts_nothing_until_the_request_comes_back() -> None:
    """The follow-up queue refuses the ticket: 503 HANDOFF_FAILED, which the caller sends again; the backup it
    started is counted then, not twice."""

    from tests.unit.test_handlers_http import SECRET

    w = Two(WEBHOOK_SECRET=SECRET)
    w.down = False
    reply = _signed_post_refused_by(w, FOLLOWUPS, w.request())
    assert reply["statusCode"] == 503
    assert w.recorder.total("backups_started") == 0


def test_a_yandex_request_batch_that_comes_back_whole_counts_nothing() -> None:
    """One message starts a backup, the other must come back and cannot be sent back: the platform redelivers the
    whole batch, so nothing of it is counted now (it is counted when the batch settles)."""
    w = Two(HANDOFF_SECRET=None)  # no key: the retryable message cannot be sent back by the function
    fine = w.request()
    transient = json.dumps({"computeInstanceId": w.other.id, "policyId": w.policy.id})
    with pytest.raises(RedeliveryRequested):
        w.trigger(yandex_batch(fine, transient))
    assert w.started() == [w.vm.id]
    assert w.recorder.total("backups_started") == 0


def test_a_stale_ticket_whose_operation_is_gone_is_dropped_not_turned_into_a_failure() -> None:
    """A replay after the cloud forgot the operation must not emit a failed result under the id of the earlier one."""
    w = Two()
    t = ticket(w).model_copy(update={"operation_id": "cdgforgotten00000000"})
    w.clock.advance((t.deadline - w.clock.now()).total_seconds() + message_max_age(w.settings).total_seconds() + 1)
    assert w.followup(yandex_batch(t.sealed_body(KEY))) == {"ok": True}
    assert w.sink.events == [] and w.sent(FOLLOWUPS) == []
    assert w.recorder.total("stale_checked") == 1


def test_a_ticket_older_than_any_queue_keeps_one_is_dropped_unread() -> None:
    w = Two()
    t = ticket(w)
    w.cloud.complete(t.operation_id)
    w.clock.advance((t.deadline - w.clock.now()).total_seconds() + 15 * 86400)
    calls = w.cloud.calls
    assert w.followup(yandex_batch(t.sealed_body(KEY))) == {"ok": True}
    assert w.cloud.calls == calls and w.sink.events == [] and w.sent(FOLLOWUPS) == []
