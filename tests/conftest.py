"""Shared fixtures: the local Yandex Cloud emulator and a real SQS-protocol server (moto), both on loopback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

# Tests never reach a real cloud: fake AWS credentials, and nothing points at real hosts.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[str]:
    """A moto server speaking the real SQS protocol on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def sqs(sqs_server: str) -> Any:
    """A boto3 SQS client bound to the moto server."""
    import boto3

    return boto3.client("sqs", endpoint_url=sqs_server, region_name="us-east-1")


@pytest.fixture()
def make_queue(sqs: Any) -> Iterator[Any]:
    """Creates uniquely named queues; deleted after the test."""
    import uuid

    created: list[str] = []

    def _make(prefix: str = "q", **attributes: str) -> str:
        url: str = sqs.create_queue(QueueName=f"{prefix}-{uuid.uuid4().hex[:12]}", Attributes=attributes)["QueueUrl"]
        created.append(url)
        return url

    yield _make
    for url in created:
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=url)


def drain(sqs: Any, queue_url: str, *, max_messages: int = 1000, wait: int = 0) -> list[dict[str, Any]]:
    """Receive and delete every visible message of a queue."""
    out: list[dict[str, Any]] = []
    while len(out) < max_messages:
        reply = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, AttributeNames=["All"]
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            out.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return out
