"""Secrets by ARN (AWS deployments): Secrets Manager over real HTTP (moto's server) through adapters.secrets."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from adapters.aws import SECRETS_MANAGER, AwsJsonClient
from adapters.secrets import SecretsCache, SecretsError
from settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def manager(sqs_server: str) -> AwsJsonClient:
    """A Secrets Manager client on the session's moto server (it serves every service)."""
    return AwsJsonClient(SECRETS_MANAGER, endpoint=sqs_server)


@pytest.fixture()
def create(manager: AwsJsonClient) -> Any:
    def _create(value: str) -> str:
        reply = manager.call("CreateSecret", {"Name": f"s-{uuid.uuid4().hex[:10]}", "SecretString": value})
        return str(reply["ARN"])

    return _create


def test_secrets_named_by_arn_are_read_in_one_round_trip(manager, create):
    # Given the webhook, Slack and hand-off secrets in Secrets Manager, named by ARN in the environment
    webhook, slack, handoff = create("whsec-value"), create("slack-value"), create("handoff-value")
    cache = SecretsCache(manager)
    env = {"WEBHOOK_SECRET_ARN": webhook, "SLACK_SIGNING_SECRET_ARN": slack, "HANDOFF_SECRET_ARN": handoff}
    # When the invocation's settings are completed
    full = Settings.from_env(env).with_secrets(cache.get)
    # Then the values are there, from one BatchGetSecretValue, and still hidden in reprs
    assert full.webhook_secret is not None and full.webhook_secret.get_secret_value() == "whsec-value"
    assert full.slack_signing_secret is not None and full.slack_signing_secret.get_secret_value() == "slack-value"
    assert full.handoff_secret is not None and full.handoff_secret.get_secret_value() == "handoff-value"
    assert cache.round_trips == 1
    assert "whsec-value" not in repr(full)


def test_values_are_cached_for_the_max_age_then_read_again(manager, create):
    arn = create("v1")
    clock = Clock()
    cache = SecretsCache(manager, clock=clock)
    settings = Settings.from_env({"WEBHOOK_SECRET_ARN": arn, "SECRETS_MAX_AGE_SECONDS": "300"})
    assert settings.with_secrets(cache.get).webhook_secret.get_secret_value() == "v1"  # type: ignore[union-attr]
    manager.call("PutSecretValue", {"SecretId": arn, "SecretString": "v2"})
    clock.now += 299
    assert settings.with_secrets(cache.get).webhook_secret.get_secret_value() == "v1"  # type: ignore[union-attr]
    assert cache.round_trips == 1
    clock.now += 2
    assert settings.with_secrets(cache.get).webhook_secret.get_secret_value() == "v2"  # type: ignore[union-attr]
    assert cache.round_trips == 2


def test_concurrent_invocations_fetch_once(manager, create):
    arn = create("shared")
    cache = SecretsCache(manager)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get([arn], 300)[arn])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == ["shared"] * 8 and cache.round_trips == 1


def test_a_missing_secret_fails_clearly_without_any_value(manager, create):
    present = create("present-value")
    missing = present.rsplit(":", 1)[0] + ":does-not-exist-AbCdEf"
    cache = SecretsCache(manager)
    settings = Settings.from_env({"WEBHOOK_SECRET_ARN": present, "SLACK_SIGNING_SECRET_ARN": missing})
    with pytest.raises(SecretsError) as info:
        settings.with_secrets(cache.get)
    text = str(info.value)
    assert missing in text and "ResourceNotFoundException" in text
    assert "present-value" not in text and "testing" not in text


def test_the_batch_call_refused_falls_back_to_one_call_per_secret(manager, create, monkeypatch):
    a, b = create("a-value"), create("b-value")
    calls: list[str] = []
    real = manager.call

    def call(operation: str, params: Any, **kw: Any) -> Any:
        calls.append(operation)
        if operation == "BatchGetSecretValue":
            from adapters.aws import AwsError

            raise AwsError(operation, "AccessDeniedException", "not allowed", 400)
        return real(operation, params, **kw)

    monkeypatch.setattr(manager, "call", call)
    assert SecretsCache(manager).get([a, b], 300) == {a: "a-value", b: "b-value"}
    assert sorted(calls) == ["BatchGetSecretValue", "GetSecretValue", "GetSecretValue"]


def test_a_value_set_directly_wins_over_the_arn(create):
    arn = create("from-arn")
    never = SecretsCache(AwsJsonClient(SECRETS_MANAGER, endpoint="http://127.0.0.1:9"))
    settings = Settings.from_env({"WEBHOOK_SECRET": "direct", "WEBHOOK_SECRET_ARN": arn}).with_secrets(never.get)
    assert settings.webhook_secret is not None and settings.webhook_secret.get_secret_value() == "direct"
    assert never.round_trips == 0


def test_no_arn_means_no_call_and_an_arn_without_a_reader_is_an_error():
    settings = Settings.from_env({})
    assert settings.with_secrets() is settings
    with pytest.raises(ValueError, match="webhook_secret given by ARN"):
        Settings.from_env({"WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x"}).with_secrets()
