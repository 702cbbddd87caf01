"""A local stand-in for the serverless platform: queues, triggers and invocations on one machine.

It does what Yandex Cloud Functions (or AWS Lambda) does around our handlers: it keeps the queues
(a moto server speaking the real SQS protocol), turns queue messages into the platform's trigger
events once their delay is due, invokes the handlers, deletes what succeeded and lets the rest come
back after the visibility timeout, moving a message to the dead-letter queue after too many tries.
`make run`, the end-to-end tests and the chaos test all drive the function through this class.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


class LocalContext:
    """The attributes both platforms give a handler (Yandex `request_id`, AWS `aws_request_id`, ...)."""

    def __init__(self, function_name: str, timeout_s: float = 60.0, token: dict[str, Any] | None = None) -> None:
        self.request_id = str(uuid.uuid4())
        self.aws_request_id = self.request_id
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 128
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.log_group_name = f"/local/{function_name}"
        self.log_stream_name = "local"
        self.token = token
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Invocation:
    function: str
    queue: str
    message_ids: list[str]
    reply: Any = None
    error: str | None = None


@dataclass
class LocalPlatform:
    """Queues on a local SQS endpoint, and the triggers that feed them to the handlers.

    `platform` chooses the event shapes the handlers get: "yandex" (Message Queue trigger events)
    or "aws" (SQS `Records`, with batch item failures honoured).
    """

    sqs_endpoint: str
    platform: str = "yandex"
    batch_size: int = 10
    max_receive_count: int = 5
    visibility_timeout: int = 2
    sqs: Any = None
    queues: dict[str, str] = field(default_factory=dict)
    dead_letter: dict[str, str] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    # Chaos hooks: decide per invocation whether to kill it half-way or deliver a message twice.
    kill: Callable[[str], bool] | None = None
    duplicate: Callable[[str], bool] | None = None

    def __post_init__(self) -> None:
        if self.sqs is None:
            import boto3

            self.sqs = boto3.client("sqs", endpoint_url=self.sqs_endpoint, region_name="us-east-1")

    # --- queues ---------------------------------------------------------------------------------

    def create_queue(self, name: str) -> str:
        """A work queue with its dead-letter queue and a redrive policy, as the deployment makes them."""
        suffix = uuid.uuid4().hex[:8]
        dlq_url = self.sqs.create_queue(QueueName=f"{name}-dlq-{suffix}")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.max_receive_count)})
        url = self.sqs.create_queue(
            QueueName=f"{name}-{suffix}",
            Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(self.visibility_timeout)},
        )["QueueUrl"]
        self.queues[name] = url
        self.dead_letter[name] = dlq_url
        return url

    def counts(self, name: str) -> dict[str, int]:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queues[name],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {
            "visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"]),
        }

    def pending(self, name: str) -> int:
        return sum(self.counts(name).values())

    def receive(self, name: str, *, wait: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        reply = self.sqs.receive_message(
            QueueUrl=self.queues[name],
            MaxNumberOfMessages=min(10, limit or self.batch_size),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = reply.get("Messages", [])
        return messages

    def drain(self, name: str, *, dead_letter: bool = False) -> list[dict[str, Any]]:
        url = self.dead_letter[name] if dead_letter else self.queues[name]
        out: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                return out
            for message in messages:
                out.append(message)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    # --- trigger events -------------------------------------------------------------------------

    def queue_event(self, name: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The event a queue trigger hands a function for these messages, in the platform's shape."""
        url = self.queues[name]
        if self.platform == "aws":
            arn = f"arn:aws:sqs:us-east-1:000000000000:{url.rsplit('/', 1)[-1]}"
            return {
                "Records": [
                    {
                        "messageId": m["MessageId"],
                        "receiptHandle": m["ReceiptHandle"],
                        "body": m["Body"],
                        "attributes": m.get("Attributes", {}),
                        "messageAttributes": {},
                        "md5OfBody": m.get("MD5OfBody", ""),
                        "eventSource": "aws:sqs",
                        "eventSourceARN": arn,
                        "awsRegion": "us-east-1",
                    }
                    for m in messages
                ]
            }
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {
            "messages": [
                {
                    "event_metadata": {
                        "event_id": m["MessageId"],
                        "event_type": "yandex.cloud.events.messagequeue.QueueMessage",
                        "created_at": now,
                        "cloud_id": "b1glocalcloud0000000",
                        "folder_id": "b1glocalfolder000000",
                    },
                    "details": {
                        "queue_id": f"yrn:yc:ymq:ru-central1:b1glocalfolder000000:{url.rsplit('/', 1)[-1]}",
                        "message": {
                            "message_id": m["MessageId"],
                            "md5_of_body": m.get("MD5OfBody", ""),
                            "body": m["Body"],
                            "attributes": m.get("Attributes", {}),
                            "message_attributes": {},
                            "md5_of_message_attributes": "",
                        },
                    },
                }
                for m in messages
            ]
        }

    # --- invocations ----------------------------------------------------------------------------

    def deliver(self, name: str, handler: Handler, function: str, *, wait: int = 0) -> Invocation | None:
        """One queue-trigger invocation: receive a batch, invoke, settle the messages as the platform would."""
        messages = self.receive(name, wait=wait)
        if not messages:
            return None
        if self.duplicate is not None:
            # At-least-once delivery: the same message may arrive twice in one batch or in the next.
            messages = messages + [m for m in messages if self.duplicate(m["MessageId"])]
        event = self.queue_event(name, messages)
        record = Invocation(function=function, queue=name, message_ids=[m["MessageId"] for m in messages])
        self.invocations.append(record)
        try:
            if self.kill is not None and self.kill(function):
                raise TimeoutError("invocation killed half-way (chaos)")
            record.reply = handler(event, LocalContext(function))
        except Exception as exc:  # the platform sees a failed invocation: the whole batch comes back
            record.error = f"{type(exc).__name__}: {exc}"
            return record
        failed: set[str] = set()
        if isinstance(record.reply, dict) and "batchItemFailures" in record.reply:
            failed = {item["itemIdentifier"] for item in record.reply["batchItemFailures"]}
        seen: set[str] = set()
        for message in messages:
            if message["MessageId"] in failed or message["ReceiptHandle"] in seen:
                continue
            seen.add(message["ReceiptHandle"])
            self.sqs.delete_message(QueueUrl=self.queues[name], ReceiptHandle=message["ReceiptHandle"])
        return record
