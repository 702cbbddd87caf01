"""The SQS-protocol queue adapter: Amazon SQS and Yandex Message Queue through botocore.

The endpoint comes from botocore's standard configuration (`AWS_ENDPOINT_URL_SQS`, `AWS_REGION`/
`AWS_DEFAULT_REGION`, static keys), so the same code talks to Amazon SQS, Yandex Message Queue
(`https://message-queue.api.cloud.yandex.net`, region `ru-central1`) and a local moto server.

botocore directly, not boto3: boto3 adds nothing an SQS client needs, and importing it (with s3transfer) costs
~0.1 s of every cold start (docs/BENCHMARKS.md, figure 8). `preload()` parses botocore's SQS model, endpoint
rules and partitions in init (app.py), so creating the first client inside an invocation costs ~8 ms instead of
~70-90 ms of CPU (~0.5 s at 256 MB's share).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backups.ports import QueueError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_DELAY_SECONDS = 900  # the SQS and YMQ limit on DelaySeconds
BATCH = 10  # entries per SendMessageBatch


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    """One botocore session per process: it resolves credentials, region and endpoint when a client is made."""
    return botocore.session.get_session()


def preload() -> None:
    """Parse the SQS model and endpoint data now (init), without reading credentials, region or endpoint.

    Hand-written: botocore has no public "preload" call; only public calls are used (`get_service_model` and the
    session's `data_loader` / `endpoint_resolver` components)."""
    session = _session()
    session.get_service_model("sqs")
    loader = session.get_component("data_loader")
    loader.load_service_model("sqs", "endpoint-rule-set-1")
    loader.load_data("partitions")
    loader.load_data("_retry")  # the "standard" retry mode's table
    session.get_component("endpoint_resolver")


@lru_cache(maxsize=4)
def _client(endpoint_url: str | None, region: str | None) -> SQSClient:
    # botocore retries throttling and 5xx itself ("standard" mode); keep the calls short.
    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
    client = _session().create_client("sqs", endpoint_url=endpoint_url, region_name=region, config=config)
    return cast("SQSClient", client)


def _region_for(queue_url: str) -> str | None:
    import os

    configured = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if configured:
        return configured
    if "message-queue.api.cloud.yandex.net" in queue_url:
        return "ru-central1"
    return "us-east-1"


class SqsQueue:
    """MessageQueue over botocore's SQS client. `client` is injectable for tests."""

    def __init__(self, client: Any | None = None, endpoint_url: str | None = None) -> None:
        self._client = client
        self._endpoint_url = endpoint_url

    def _sqs(self, queue_url: str) -> Any:
        if self._client is None:
            self._client = _client(self._endpoint_url, _region_for(queue_url))
        return self._client

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        return self.send_many(queue_url, [body], delay_seconds=delay_seconds)[0]

    def send_many(self, queue_url: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> list[str]:
        delay = max(0, min(int(delay_seconds), MAX_DELAY_SECONDS))
        sqs = self._sqs(queue_url)
        ids: list[str] = []
        for start in range(0, len(bodies), BATCH):
            chunk = bodies[start : start + BATCH]
            entries = [{"Id": str(i), "MessageBody": body, "DelaySeconds": delay} for i, body in enumerate(chunk)]
            try:
                reply = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                failed = reply.get("Failed") or []
                if failed:
                    # Retry the failed entries once: batch failures are usually throttling of single entries.
                    retry = [entries[int(f["Id"])] for f in failed]
                    again = sqs.send_message_batch(QueueUrl=queue_url, Entries=retry)
                    if again.get("Failed"):
                        codes = sorted({f.get("Code", "?") for f in again["Failed"]})
                        raise QueueError(f"{len(again['Failed'])} message(s) not sent to the queue: {codes}")
                    reply["Successful"] = list(reply.get("Successful", [])) + list(again.get("Successful", []))
            except ClientError as exc:
                error = exc.response.get("Error", {})
                raise QueueError(
                    f"queue refused the message: {error.get('Code', '?')}: {error.get('Message', '')}"
                ) from None
            except BotoCoreError as exc:
                raise QueueError(f"queue unreachable: {type(exc).__name__}") from None
            by_id = {s["Id"]: s["MessageId"] for s in reply.get("Successful", [])}
            ids.extend(by_id[str(i)] for i in range(len(chunk)))
        return ids
