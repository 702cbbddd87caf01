"""The Slack slash command end to end: a signed form against the emulator, the ephemeral answer, and the result
posted to the command's response_url.

Two modes (handlers.slack): with REQUEST_QUEUE_URL and HANDOFF_SECRET (the harness's default, as deployed) a backup
command is acknowledged at once and handed to the request queue, whose invocation posts the answer (the operation
id) to the response_url; without the request queue it runs before the answer (inline).

Slack's response_url is always https://hooks.slack.com/...; the tests inject, through `Deps.sinks_factory`, the
sinks the environment builds with one change: the chat sink posts to a loopback receiver (same path) instead of
hooks.slack.com. Nothing else is replaced.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.emulator.seed import DEMO_FOLDER_ID, INSTANCE_NO_POLICY, INSTANCE_PROD_DB, POLICY_DAILY
from tests.e2e.conftest import Harness, Receiver, http_event, loopback, reply_json, sign_slack, slack_form

RESPONSE_PATH = "/commands/T0001/1234/abcdef"
SOURCES = ["yc-http", "yc-api-gateway", "aws-http-api"]


def slack_event(h: Harness, text: str, *, name: str = "yc-api-gateway", timestamp: int | None = None) -> dict[str, Any]:
    form = slack_form(text, response_url=f"https://hooks.slack.com{RESPONSE_PATH}")
    event = http_event(name, form, path="/slack", content_type="application/x-www-form-urlencoded")
    return sign_slack(event, h.slack_secret, timestamp=timestamp)


def chat_deps(h: Harness, receiver: Receiver) -> Any:
    """Deps whose chat sink posts to `receiver` (the response_url's path kept) instead of hooks.slack.com."""
    from adapters.sinks import build_sinks

    deps = h.deps()

    def sinks(reply_to: Any) -> Any:
        if reply_to is not None:
            path = urlsplit(reply_to.response_url).path
            reply_to = reply_to.model_copy(update={"response_url": receiver.url + path})
        return build_sinks(deps.settings, reply_to, queue=deps.queue, clock=deps.clock, chat_url_allowed=loopback)

    deps.sinks_factory = sinks
    return deps


def command(h: Harness, receiver: Receiver, text: str, **kw: Any) -> dict[str, Any]:
    from handlers.trigger import handle

    reply = handle(slack_event(h, text, **kw), h.context(), chat_deps(h, receiver))
    assert reply["statusCode"] == 200, reply["body"]
    body = reply_json(reply)
    assert body["response_type"] == "ephemeral"
    return body


def run_queued(h: Harness, receiver: Receiver) -> Any:
    """Deliver the request queue once (the queued chat command), its chat posts going to `receiver`."""
    from handlers.trigger import handle

    record = h.platform.deliver("requests", lambda e, c: handle(e, c, chat_deps(h, receiver)), "trigger")
    assert record is not None, "nothing was queued"
    assert record.error is None, record.error
    return record


def answer(h: Harness, receiver: Receiver, text: str, **kw: Any) -> dict[str, Any]:
    """What the user is told about a backup command: the inline answer, or (queued) the first message posted to
    the response_url by the request-queue invocation (taken off `receiver.requests`)."""
    body = command(h, receiver, text, **kw)
    if ":hourglass_flowing_sand: Starting" not in body["text"] and "The plan follows here" not in body["text"]:
        return body
    assert h.executes() == [], "a queued command started something before its answer"
    run_queued(h, receiver)
    assert receiver.requests, "the queued command posted nothing"
    first = receiver.requests.pop(0)
    assert first.path == RESPONSE_PATH
    posted: dict[str, Any] = first.json()
    assert posted["response_type"] == "ephemeral"
    return posted


@pytest.fixture(params=["queued", "inline"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def chat(e2e: Harness, mode: str) -> Harness:
    if mode == "inline":
        e2e.setenv(REQUEST_QUEUE_URL=None)
    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    return e2e


@pytest.mark.parametrize("name", SOURCES)
def test_slash_command_starts_a_backup_and_the_result_reaches_response_url(
    chat: Harness, receiver: Receiver, name: str
) -> None:
    from handlers.followup import handle

    body = answer(chat, receiver, 'prod-db-1 --reason "before the release"', name=name)

    [execute] = chat.executes()
    assert execute["computeInstanceId"] == INSTANCE_PROD_DB and execute["policyId"] == POLICY_DAILY
    text = body["text"]
    assert "prod-db-1" in text and POLICY_DAILY in text and execute["operationId"] in text

    [event] = chat.run_until_results(1, followup=lambda e, c: handle(e, c, chat_deps(chat, receiver)), settle=True)
    assert event["data"]["status"] == "succeeded"
    assert event["data"]["requestedBy"] == "slack:alice" and event["data"]["reason"] == "before the release"
    assert event["data"]["source"] == "slack"

    assert receiver.requests, "nothing was posted to the response_url"
    assert {r.path for r in receiver.requests} == {RESPONSE_PATH}
    final = receiver.requests[-1].json()
    assert final["response_type"] == "ephemeral"
    assert "Backup succeeded" in final["text"] and execute["operationId"] in final["text"]
    assert len(receiver.requests) <= 5  # response_url takes at most 5 messages


def test_slash_command_through_the_default_wiring_is_answered(chat: Harness, mode: str) -> None:
    """app.trigger_handler with Deps.from_env(): inline, the answer names the operation; queued, it says the backup
    is starting, and the request-queue invocation starts it (its post to hooks.slack.com is refused here)."""
    reply = chat.trigger(slack_event(chat, "prod-db-1"))
    assert reply["statusCode"] == 200
    if mode == "inline":
        [execute] = chat.executes()
        assert execute["operationId"] in reply_json(reply)["text"]
        return
    assert "Starting a backup of `prod-db-1`" in reply_json(reply)["text"] and chat.executes() == []
    record = chat.platform.deliver("requests", chat.trigger, "trigger")
    assert record is not None and record.error is None
    [execute] = chat.executes()
    [ticket] = chat.tickets()
    assert ticket["operationId"] == execute["operationId"]
    assert ticket["replyTo"]["messagesLeft"] == 4  # the started message took one of the response_url's five


def test_help(chat: Harness, receiver: Receiver) -> None:
    body = command(chat, receiver, "help")
    assert "status &lt;operation id&gt;" in body["text"]
    assert chat.executes() == [] and receiver.requests == []


def test_status_of_a_started_backup(chat: Harness, receiver: Receiver) -> None:
    answer(chat, receiver, "prod-db-1")
    [execute] = chat.executes()
    body = command(chat, receiver, f"status {execute['operationId']}")
    assert execute["operationId"] in body["text"] and INSTANCE_PROD_DB in body["text"]
    assert "running" in body["text"] or "succeeded" in body["text"]
    assert len(chat.executes()) == 1


def test_status_of_an_unknown_operation(chat: Harness, receiver: Receiver) -> None:
    body = command(chat, receiver, "status cdgnosuchoperation01")
    assert body["text"].startswith(":x:") and "NOT_FOUND" in body["text"]


def test_allowlist_refusal(chat: Harness, receiver: Receiver) -> None:
    chat.setenv(CHAT_ALLOWED_LABELS=json.dumps({"chatops": "yes"}))
    body = answer(chat, receiver, "prod-db-1")
    assert "chat may not back up" in body["text"] and "chatops" in body["text"]
    assert chat.executes() == [] and chat.tickets() == []


def test_chat_is_off_without_an_allowlist(e2e: Harness, receiver: Receiver) -> None:
    body = answer(e2e, receiver, "prod-db-1")
    assert "chat backups are off" in body["text"]
    assert e2e.executes() == []


def test_dry_run(chat: Harness, receiver: Receiver) -> None:
    body = answer(chat, receiver, "prod-db-1 --dry-run")
    assert "Dry run" in body["text"] and POLICY_DAILY in body["text"] and "Nothing was started" in body["text"]
    assert chat.executes() == [] and chat.tickets() == []


def test_backup_that_cannot_start_is_explained_and_reported_to_chat(
    chat: Harness, receiver: Receiver, mode: str
) -> None:
    body = command(chat, receiver, f"{INSTANCE_NO_POLICY} {POLICY_DAILY}")
    if mode == "inline":
        assert body["text"].startswith(":x:") and "not applied" in body["text"]
    else:  # queued: the failed result is the one message (the answer would only repeat it)
        run_queued(chat, receiver)
    assert chat.executes() == []
    [posted] = receiver.requests  # the failed result goes to the response_url
    assert posted.path == RESPONSE_PATH and "Backup failed" in posted.json()["text"]
    assert "not applied" in posted.json()["text"] or "not applied" in body["text"]


@pytest.mark.parametrize("name", SOURCES)
def test_tampered_signature_is_401(chat: Harness, name: str) -> None:
    event = slack_event(chat, "prod-db-1", name=name)
    event["body"] = event["body"].replace("prod-db-1", "prod-web-1")
    reply = chat.trigger(event)
    assert reply["statusCode"] == 401
    assert reply_json(reply)["error"]["code"] == "UNAUTHENTICATED"
    assert chat.executes() == []


def test_stale_slack_timestamp_is_401(chat: Harness) -> None:
    reply = chat.trigger(slack_event(chat, "prod-db-1", timestamp=int(time.time()) - 600))
    assert reply["statusCode"] == 401
    assert "stale" in reply_json(reply)["error"]["message"]
    assert chat.executes() == []


# --- the queued command is a trust boundary: the request queue takes messages from anyone who may send to it ----


def queued_body(h: Harness, receiver: Receiver, text: str = "prod-db-1") -> dict[str, Any]:
    """The chat command a signed Slack request put on the request queue (taken off the queue)."""
    body = command(h, receiver, text)
    assert "Starting a backup" in body["text"]
    [message] = h.requests()
    assert message["kind"] == "chat"
    return message


def deliver_body(h: Harness, receiver: Receiver, body: dict[str, Any] | str) -> Any:
    from handlers.trigger import handle

    text = body if isinstance(body, str) else json.dumps(body)
    return handle(h.queue_event("requests", [text]), h.context(), chat_deps(h, receiver))


def refused(h: Harness, receiver: Receiver, why: str) -> None:
    """Nothing started, nothing posted to the response_url the message names; one failed result for the carrier."""
    assert h.executes() == [] and h.tickets() == []
    assert receiver.requests == []
    [event] = h.take_results()
    assert event["data"]["status"] == "failed" and event["data"]["error"]["code"] == "INVALID_REQUEST"
    assert why in event["data"]["error"]["message"]
    assert event["data"]["source"] != "slack"  # named after the queue message that carried it, not what it claims


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m["command"].update(instance_name="prod-web-1"),
        lambda m: m["replyTo"].update(responseUrl="https://hooks.slack.com/x/y/z"),
        lambda m: m["trigger"].update(triggerId="slack:someone-else"),
        lambda m: m.update(signature=""),
        lambda m: m.pop("signature"),
    ],
    ids=["instance", "response-url", "trigger-id", "empty-signature", "no-signature"],
)
def test_a_tampered_chat_command_is_refused(e2e: Harness, receiver: Receiver, tamper: Any) -> None:
    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    message = queued_body(e2e, receiver)
    tamper(message)
    deliver_body(e2e, receiver, message)
    refused(e2e, receiver, "signature does not verify")


def test_a_forged_chat_command_is_refused(e2e: Harness, receiver: Receiver) -> None:
    """Written by someone who may send to the queue but has no HANDOFF_SECRET (signed with another key)."""
    from backups.models import ReplyTarget, TriggerInfo
    from chatops.commands import BackupCommand
    from chatops.deferred import ChatCommand

    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    forged = ChatCommand(
        command=BackupCommand(instance_name="prod-db-1"),
        trigger=TriggerInfo(source="slack", trigger_id="slack:forged"),
        reply_to=ReplyTarget(response_url=f"https://hooks.slack.com{RESPONSE_PATH}", expires_at="2099-01-01T00:00:00Z"),
    ).signed("not-the-handoff-secret")
    deliver_body(e2e, receiver, forged.body())
    refused(e2e, receiver, "signature does not verify")


def test_an_expired_chat_command_is_refused(e2e: Harness, receiver: Receiver) -> None:
    """A copy replayed after its response_url expired (30 minutes) starts nothing, though its signature is good;
    it verified, so its failed result names its own Slack trigger."""
    from handlers.trigger import handle

    from tests.e2e.conftest import ShiftedClock

    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    message = queued_body(e2e, receiver)
    deps = chat_deps(e2e, receiver)
    deps.clock = ShiftedClock(timedelta(minutes=31))
    handle(e2e.queue_event("requests", [json.dumps(message)]), e2e.context(), deps)
    assert e2e.executes() == [] and e2e.tickets() == [] and receiver.requests == []
    [event] = e2e.take_results()
    assert event["data"]["status"] == "failed" and "expired" in event["data"]["error"]["message"]
    assert event["data"]["source"] == "slack" and event["data"]["requestedBy"] == "slack:alice"


def test_chat_commands_from_the_queue_are_refused_without_a_handoff_secret(e2e: Harness, receiver: Receiver) -> None:
    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    message = queued_body(e2e, receiver)
    e2e.setenv(HANDOFF_SECRET=None)
    deliver_body(e2e, receiver, message)
    refused(e2e, receiver, "HANDOFF_SECRET is not set")


def test_a_queue_that_refuses_the_command_says_try_again(chat: Harness, receiver: Receiver, mode: str) -> None:
    """Not run inline instead: the message may have been stored all the same, and a second run would answer late."""
    from handlers.trigger import handle

    from backups.ports import QueueError

    deps = chat_deps(chat, receiver)
    real = deps.queue

    class Refusing:
        def send(self, url: str, body: str, *, delay_seconds: int = 0) -> str:
            if url == deps.settings.request_queue_url:
                raise QueueError("queue unreachable: ReadTimeout")
            return real.send(url, body, delay_seconds=delay_seconds)

        def send_many(self, url: str, bodies: Any, *, delay_seconds: int = 0) -> list[str]:
            return real.send_many(url, bodies, delay_seconds=delay_seconds)

    deps.queue_factory = Refusing
    deps._queue = Refusing()
    text = reply_json(handle(slack_event(chat, "prod-db-1"), chat.context(), deps))["text"]
    if mode == "inline":  # no request queue: nothing to refuse
        assert len(chat.executes()) == 1
        return
    assert "try again" in text and chat.executes() == [] and chat.requests() == []


def test_the_hand_off_before_the_answer_is_one_short_attempt(e2e: Harness) -> None:
    """Slack waits for it: never the default client's 4 attempts of up to 3 + 10 s."""
    from adapters.sqs import QUICK_TIMEOUTS, SqsQueue

    deps = e2e.deps()
    quick = deps.quick_queue
    assert isinstance(quick, SqsQueue)
    client = quick._sqs()
    assert client.max_attempts == 1 and client.timeouts == QUICK_TIMEOUTS and sum(QUICK_TIMEOUTS) <= 2.0


def test_the_answer_makes_no_cloud_call(e2e: Harness, receiver: Receiver) -> None:
    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    before = len(e2e.state.call_log)
    body = command(e2e, receiver, "prod-db-1")
    assert "Starting a backup" in body["text"]
    assert e2e.state.call_log[before:] == []


def test_chat_off_is_answered_at_once(e2e: Harness, receiver: Receiver) -> None:
    """No allowlist: nothing is queued, nothing is asked of the cloud."""
    before = len(e2e.state.call_log)
    body = command(e2e, receiver, "prod-db-1")
    assert "chat backups are off" in body["text"]
    assert e2e.requests() == [] and e2e.state.call_log[before:] == []


def test_a_duplicate_delivery_starts_one_backup_and_spends_the_url_without_a_retry_storm(
    e2e: Harness, receiver: Receiver
) -> None:
    """At-least-once: the same queued command twice gives one operation (same keys), two ticket chains, and more
    messages than a response_url takes. Slack refuses those (404 here): the URL is spent, and the results still
    reach the other sinks without the follow-up asking for them again."""
    from handlers.followup import handle as followup

    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    message = queued_body(e2e, receiver)
    deliver_body(e2e, receiver, message)
    deliver_body(e2e, receiver, message)
    executes = {e["operationId"] for e in e2e.executes()}
    assert len(executes) == 1
    receiver.status = 404  # what Slack says to a used-up response_url (here: at once, for both chains' results)
    events = e2e.run_until_results(2, followup=lambda ev, c: followup(ev, c, chat_deps(e2e, receiver)), settle=True)
    assert {ev["id"] for ev in events} and {ev["data"]["operationId"] for ev in events} == executes
    assert len({ev["id"] for ev in events}) == 1  # one result (twice: the consumers deduplicate by id)
    assert e2e.invocation_errors == []
    assert e2e.platform.pending("followups") == 0
    assert e2e.platform.drain("followups", dead_letter=True) == []  # no ticket given up on for a spent URL
    assert len(receiver.requests) <= 6  # two answers, then per chain one refused progress and one refused result


@pytest.mark.parametrize("platform_kind", ["aws", "yandex"])
def test_a_started_backup_whose_ticket_was_not_sent_comes_back_and_is_answered_once(
    e2e: Harness, receiver: Receiver, platform_kind: str
) -> None:
    """The follow-up queue refuses the ticket once: the chat command comes back (same trigger id, same operation),
    and only the delivery that finished posts the answer."""
    from handlers.trigger import handle

    from backups.ports import QueueError

    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    message = queued_body(e2e, receiver)
    deps = chat_deps(e2e, receiver)
    real = deps.queue
    refusals = [1]

    class RefusingOnce:
        def send(self, url: str, body: str, *, delay_seconds: int = 0) -> str:
            return real.send(url, body, delay_seconds=delay_seconds)

        def send_many(self, url: str, bodies: Any, *, delay_seconds: int = 0) -> list[str]:
            if url == deps.settings.followup_queue_url and refusals:
                refusals.pop()
                raise QueueError("queue unreachable: ConnectTimeout")
            return real.send_many(url, bodies, delay_seconds=delay_seconds)

    deps._queue = RefusingOnce()
    e2e.platform.sqs.send_message(QueueUrl=e2e.platform.queues["requests"], MessageBody=json.dumps(message))
    first = e2e.platform.deliver("requests", lambda ev, c: handle(ev, c, deps), "trigger")
    assert first is not None and receiver.requests == []  # nothing said yet: it comes back
    assert len(e2e.executes()) == 1
    deadline = time.monotonic() + 10
    second = None
    while second is None and time.monotonic() < deadline:
        second = e2e.platform.deliver("requests", lambda ev, c: handle(ev, c, deps), "trigger", wait=1)
    assert second is not None and second.error is None
    assert {e["operationId"] for e in e2e.executes()} == {e2e.executes()[0]["operationId"]}
    [ticket] = e2e.tickets()
    [posted] = receiver.requests
    assert ticket["operationId"] in posted.json()["text"]
