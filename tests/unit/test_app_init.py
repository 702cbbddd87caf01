"""function/app.py's init: botocore's SQS data is parsed there, nothing is read too early, boto3 is not imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import adapters.sqs
import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_session() -> None:
    adapters.sqs._session.cache_clear()
    adapters.sqs._client.cache_clear()
    yield
    adapters.sqs._session.cache_clear()
    adapters.sqs._client.cache_clear()


@pytest.mark.usefixtures("fresh_session")
def test_the_preload_reads_no_endpoint_the_client_does(monkeypatch: pytest.MonkeyPatch) -> None:
    adapters.sqs.preload()
    # Set after the init: the endpoint and the region are read when the client is created, not when loading.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    client = adapters.sqs._client(None, "eu-west-1")
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "eu-west-1"


def test_importing_app_loads_no_boto3_and_reads_no_settings() -> None:
    code = (
        "import os, sys; sys.path[:0] = ['function']; os.environ.pop('FOLDER_ID', None); import app; "
        "print(sorted(m for m in ('boto3', 's3transfer', 'slack_sdk', 'jwt') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_entry_points_are_plain_functions_of_the_module() -> None:
    assert callable(app.trigger_handler) and callable(app.followup_handler)
    assert app.trigger_handler.__module__ == app.followup_handler.__module__ == "app"
