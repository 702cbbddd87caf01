"""The Slack slash command end to end: a signed form against the emulator, the ephemeral answer, and the result
posted to the command's response_url.

Slack's response_url is always https://hooks.slack.com/...; the tests inject, through `Deps.sinks_factory`, the
sinks the environment builds with one change: the chat sink posts to a loopback receiver (same path) instead of
hooks.slack.com. Nothing else is replaced.
"""

from __future__ import annotations

import json
import time
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


@pytest.fixture()
def chat(e2e: Harness) -> Harness:
    e2e.setenv(CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
    return e2e


@pytest.mark.parametrize("name", SOURCES)
def test_slash_command_starts_a_backup_and_the_result_reaches_response_url(
    chat: Harness, receiver: Receiver, name: str
) -> None:
    from handlers.followup import handle

    body = command(chat, receiver, 'prod-db-1 --reason "before the release"', name=name)

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


def test_slash_command_through_the_default_wiring_is_answered(chat: Harness) -> None:
    """app.trigger_handler with Deps.from_env(): the answer names the operation (the chat sink is not used)."""
    reply = chat.trigger(slack_event(chat, "prod-db-1"))
    assert reply["statusCode"] == 200
    [execute] = chat.executes()
    assert execute["operationId"] in reply_json(reply)["text"]


def test_help(chat: Harness, receiver: Receiver) -> None:
    body = command(chat, receiver, "help")
    assert "status &lt;operation id&gt;" in body["text"]
    assert chat.executes() == [] and receiver.requests == []


def test_status_of_a_started_backup(chat: Harness, receiver: Receiver) -> None:
    command(chat, receiver, "prod-db-1")
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
    body = command(chat, receiver, "prod-db-1")
    assert "chat may not back up" in body["text"] and "chatops" in body["text"]
    assert chat.executes() == [] and chat.tickets() == []


def test_chat_is_off_without_an_allowlist(e2e: Harness, receiver: Receiver) -> None:
    body = command(e2e, receiver, "prod-db-1")
    assert "chat backups are off" in body["text"]
    assert e2e.executes() == []


def test_dry_run(chat: Harness, receiver: Receiver) -> None:
    body = command(chat, receiver, "prod-db-1 --dry-run")
    assert "Dry run" in body["text"] and POLICY_DAILY in body["text"] and "Nothing was started" in body["text"]
    assert chat.executes() == [] and chat.tickets() == []


def test_backup_that_cannot_start_is_explained_and_reported_to_chat(chat: Harness, receiver: Receiver) -> None:
    body = command(chat, receiver, f"{INSTANCE_NO_POLICY} {POLICY_DAILY}")
    assert body["text"].startswith(":x:") and "not applied" in body["text"]
    assert chat.executes() == []
    [posted] = receiver.requests  # the failed result goes to the response_url too
    assert posted.path == RESPONSE_PATH and "Backup failed" in posted.json()["text"]


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
