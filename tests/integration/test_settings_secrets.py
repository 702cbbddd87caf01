"""Secrets by ARN (AWS deployments): read through powertools' parameters utility from Secrets Manager (moto)."""

from __future__ import annotations

import pytest

from settings import Settings


@pytest.fixture()
def secrets(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        import boto3
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        client = boto3.client("secretsmanager", region_name="us-east-1")
        yield client
        parameters.clear_caches()


def test_secrets_named_by_arn_are_read_at_run_time(secrets):
    # Given the webhook and Slack secrets in Secrets Manager, named by ARN in the environment
    webhook = secrets.create_secret(Name="webhook", SecretString="whsec-value")["ARN"]
    slack = secrets.create_secret(Name="slack", SecretString="slack-value")["ARN"]
    settings = Settings.from_env({"WEBHOOK_SECRET_ARN": webhook, "SLACK_SIGNING_SECRET_ARN": slack})
    # When the invocation's settings are completed
    full = settings.with_secrets()
    # Then the values are there, and still hidden in reprs
    assert full.webhook_secret is not None and full.webhook_secret.get_secret_value() == "whsec-value"
    assert full.slack_signing_secret is not None and full.slack_signing_secret.get_secret_value() == "slack-value"
    assert "whsec-value" not in repr(full)


def test_a_value_set_directly_wins_over_the_arn(secrets):
    arn = secrets.create_secret(Name="webhook2", SecretString="from-arn")["ARN"]
    settings = Settings.from_env({"WEBHOOK_SECRET": "direct", "WEBHOOK_SECRET_ARN": arn}).with_secrets()
    assert settings.webhook_secret is not None and settings.webhook_secret.get_secret_value() == "direct"


def test_no_arn_means_no_call():
    settings = Settings.from_env({})
    assert settings.with_secrets() is settings
