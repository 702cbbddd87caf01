"""function/app.py's init: botocore's SQS data goes into boto3's default session, and nothing is read too early."""

from __future__ import annotations

import boto3
import pytest

import app


@pytest.fixture
def no_default_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.mark.usefixtures("no_default_session")
def test_the_sqs_data_goes_into_the_default_session_and_the_endpoint_is_read_by_the_client(monkeypatch):
    app._load_sqs_data()
    assert boto3.DEFAULT_SESSION is not None

    # Set after the init: the endpoint and the region are read when the client is created, not when loading.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
    client = boto3.client("sqs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")

    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "eu-west-1"


def test_an_existing_default_session_is_kept(monkeypatch):
    mine = boto3.session.Session(region_name="eu-west-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", mine)

    app._load_sqs_data()

    assert boto3.DEFAULT_SESSION is mine


def test_the_entry_points_are_plain_functions_of_the_module():
    assert callable(app.trigger_handler) and callable(app.followup_handler)
    assert app.trigger_handler.__module__ == app.followup_handler.__module__ == "app"
