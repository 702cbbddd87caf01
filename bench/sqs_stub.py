"""A minimal SQS endpoint (JSON protocol) that accepts messages in O(1): for hand-offs of hundreds of messages.

moto 5.2 recomputes every queue attribute (three scans of all messages) for each message it accepts, so putting
1,000 messages on one queue costs it about 20 s on this machine and the figure would measure moto, not the
function. This stub answers what the function's SQS adapter and boto3 need (CreateQueue, GetQueueUrl,
SendMessage, SendMessageBatch, GetQueueAttributes, PurgeQueue), keeps only counts, and checks the limits the
real service enforces (10 entries per batch, 256 KiB per batch, DelaySeconds 0..900). Loopback only.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "000000000000"
MAX_BATCH = 10
MAX_BATCH_BYTES = 256 * 1024


@dataclass
class StubQueue:
    name: str
    messages: int = 0
    bytes: int = 0
    calls: int = 0
    delays: set[int] = field(default_factory=set)


class _Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SqsStub:
    """`with SqsStub() as stub:` -> `stub.url` for AWS_ENDPOINT_URL_SQS; `stub.queue(url)` for the counts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, StubQueue] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                target = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                try:
                    status, payload = 200, stub.dispatch(target, json.loads(raw or b"{}"))
                except _Error as exc:
                    status, payload = 400, {"__type": f"com.amazonaws.sqs#{exc.code}", "message": exc.message}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="sqs-stub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SqsStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> SqsStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def create_queue(self, name: str) -> str:
        return str(self.dispatch("CreateQueue", {"QueueName": name})["QueueUrl"])

    def queue(self, url: str) -> StubQueue:
        with self.lock:
            return self.queues[url.rsplit("/", 1)[-1]]

    # --- the protocol ---------------------------------------------------------------------------------------

    def _queue_of(self, body: dict[str, Any]) -> StubQueue:
        name = str(body.get("QueueUrl", "")).rsplit("/", 1)[-1]
        if name not in self.queues:
            raise _Error("QueueDoesNotExist", "The specified queue does not exist.")
        return self.queues[name]

    def dispatch(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if action in ("CreateQueue", "GetQueueUrl"):
                name = str(body.get("QueueName", ""))
                if action == "CreateQueue":
                    self.queues.setdefault(name, StubQueue(name))
                elif name not in self.queues:
                    raise _Error("QueueDoesNotExist", "The specified queue does not exist.")
                return {"QueueUrl": f"{self.url}/{ACCOUNT}/{name}"}
            queue = self._queue_of(body)
            queue.calls += 1
            if action == "SendMessage":
                return self._accept(queue, body)
            if action == "SendMessageBatch":
                entries = body.get("Entries") or []
                if not 1 <= len(entries) <= MAX_BATCH:
                    raise _Error("TooManyEntriesInBatchRequest", f"{len(entries)} entries")
                size = sum(len(str(e.get("MessageBody", "")).encode()) for e in entries)
                if size > MAX_BATCH_BYTES:
                    raise _Error("BatchRequestTooLong", f"{size} bytes")
                done = [{"Id": e["Id"], **self._accept(queue, e)} for e in entries]
                return {"Successful": done, "Failed": []}
            if action == "GetQueueAttributes":
                return {"Attributes": {"ApproximateNumberOfMessages": str(queue.messages)}}
            if action == "PurgeQueue":
                queue.messages = queue.bytes = 0
                return {}
            raise _Error("InvalidAction", f"the stub does not serve {action}")

    @staticmethod
    def _accept(queue: StubQueue, entry: dict[str, Any]) -> dict[str, Any]:
        body = str(entry.get("MessageBody", ""))
        delay = int(entry.get("DelaySeconds") or 0)
        if not 0 <= delay <= 900:
            raise _Error("InvalidParameterValue", "DelaySeconds must be >= 0 and <= 900")
        queue.messages += 1
        queue.bytes += len(body.encode())
        queue.delays.add(delay)
        md5 = hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
        return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": md5}
