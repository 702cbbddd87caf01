"""The bad-input corpus (tests/corpus/<source>/<case>.json): every hostile or broken payload gets the reply or the
result its file expects, starts no backup it should not, raises nothing unexpected, and leaks no secret.

See tests/corpus/README.md for the file format and how to add a case.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Harness, LogLines, raw_body, set_headers, sign_slack

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = sorted(CORPUS.glob("*/*.json"))
EXPECT_KINDS = {"http", "refused", "result", "redeliver", "ok", "dead-letter"}


def expand(value: Any) -> Any:
    """Resolve the generator directives ($repeat, $concat, $json) that keep big payloads small on disk."""
    if isinstance(value, dict):
        if "$repeat" in value:
            item, count = expand(value["$repeat"]), int(value["count"])
            assert isinstance(item, str | list), "$repeat takes a string or a list"
            return item * count
        if "$concat" in value:
            return "".join(expand(part) for part in value["$concat"])
        if "$json" in value:
            return json.dumps(expand(value["$json"]))
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item) for item in value]
    return value


def signed(h: Harness, event: dict[str, Any], sign: dict[str, Any]) -> dict[str, Any]:
    scheme = sign["scheme"]
    timestamp = int(time.time()) + int(sign.get("offset", 0))
    configured = h.webhook_secret if scheme == "webhook" else h.slack_secret
    secret = configured if sign.get("secret", "configured") == "configured" else str(sign["secret"])
    if scheme == "slack":
        return sign_slack(event, secret, timestamp=timestamp)
    from security.hmac_v1 import sign_webhook

    return set_headers(event, sign_webhook(secret, raw_body(event), timestamp))


def load_case(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    assert set(case) <= {"description", "handler", "sign", "env", "event", "expect"}, path.name
    assert case["description"] and "event" in case and case["expect"]["kind"] in EXPECT_KINDS, path.name
    return case


def test_the_corpus_is_big_enough_and_covers_every_source() -> None:
    sources = {p.parent.name for p in CASES}
    assert len(CASES) >= 40
    assert {
        "yc-timer",
        "yc-message-queue",
        "yc-http",
        "yc-api-gateway",
        "aws-eventbridge",
        "aws-scheduler",
        "aws-sqs",
        "aws-api-gateway-rest",
        "aws-http-api",
        "aws-function-url",
        "slack",
        "direct",
        "followup",
    } <= sources


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_corpus_case(e2e: Harness, log_lines: LogLines, path: Path) -> None:
    import app
    from backups.errors import RedeliveryRequested

    case = load_case(path)
    expect = case["expect"]
    e2e.setenv(YC_MAX_RETRIES=0, **case.get("env", {}))
    event = expand(case["event"])
    if case.get("sign"):
        event = signed(e2e, event, case["sign"])
    handler = app.followup_handler if case.get("handler") == "followup" else app.trigger_handler

    raised: Exception | None = None
    reply: Any = None
    try:
        reply = handler(event, e2e.context())
    except RedeliveryRequested as exc:  # the Yandex queue protocol: the only exception a handler may raise
        raised = exc
    results = e2e.take_results()

    kind = expect["kind"]
    if kind == "redeliver":
        if isinstance(event, dict) and "Records" in event:
            ids = [r["messageId"] for r in event["Records"]]
            assert reply == {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
        else:
            assert isinstance(raised, RedeliveryRequested), f"expected a redelivery, got {reply!r}"
    else:
        assert raised is None, f"unexpected {raised!r}"
    if kind == "http":
        assert isinstance(reply, dict) and reply["statusCode"] == expect["status"], reply
        body = json.loads(reply["body"])
        if "errorCode" in expect:
            assert body["error"]["code"] == expect["errorCode"], body
            assert body["error"]["message"]
        for text in expect.get("bodyContains", []):
            assert text in reply["body"], reply["body"]
    if kind == "dead-letter":  # a Yandex batch settles its poison itself (handlers.batch)
        dead = [m["Body"] for m in e2e.platform.drain("followups", dead_letter=True)]
        assert len(dead) == 1, dead
    if kind == "refused":
        assert reply["ok"] is False and reply["error"]["code"] == expect["errorCode"], reply
    if kind == "result":
        [result] = results
        assert result["data"]["status"] == expect["status"]
        assert result["data"]["error"]["code"] == expect["errorCode"], result["data"]["error"]
    if "reply" in expect:
        assert reply == expect["reply"]
    for text in expect.get("bodyExcludes", []):
        assert text not in json.dumps(reply), f"{text!r} echoed in the reply"
    assert len(results) == expect.get("results", 1 if kind == "result" else 0), results

    assert len(e2e.executes()) == expect.get("executes", 0)
    assert e2e.platform.pending("followups") == expect.get("executes", 0)

    seen = json.dumps(reply, default=str) + repr(raised) + log_lines.text + json.dumps(results)
    for secret in (e2e.webhook_secret, e2e.slack_secret, e2e.token):
        assert secret not in seen, "a secret reached a reply or a log line"
