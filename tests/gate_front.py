"""A small fake HTTP front for the backup gate's tests: `POST /backup` and `GET /backup/{operationId}` on 127.0.0.1.

It implements the contract of docs/WEBHOOK.md (issue 12) and nothing more: v1 signatures over
"<timestamp>.<body>" and "<timestamp>.GET /backup/<operationId>" within 300 s, 401 otherwise; 202 with `started`,
200 with `plan` for dry runs, 422 with `failed` when nothing could start, `{"error": {"code", "message"}}` bodies;
the same correlationId and instance give the same operation (Execute is idempotent). Each operation answers its
scripted `statuses` one GET at a time (the last one repeats). `faults` scripts what the next requests get:
an HTTP status (with `Retry-After: 1` for 429/503) or "drop" (the connection is closed without a reply).
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

RUNNING = {"status": "running"}


def running(percent: float) -> dict[str, Any]:
    return {"status": "running", "progressPercentage": percent}


SUCCEEDED = {"status": "succeeded", "progressPercentage": 100.0}
FAILED = {
    "status": "failed",
    "error": {"code": "INTERNAL", "message": "backup failed: not enough space in the vault", "grpcCode": 13},
}


@dataclass
class Operation:
    operation_id: str
    instance_id: str
    policy_id: str
    statuses: list[dict[str, Any]]
    gets: int = 0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeFront:
    secret: str
    statuses: list[dict[str, Any]] = field(default_factory=lambda: [running(30.0), running(70.0), SUCCEEDED])
    not_startable: set[str] = field(default_factory=set)  # instance ids answered as `failed` targets
    transient: dict[str, int] = field(default_factory=dict)  # instance id -> POSTs answering it as `retryable`
    fanned_out: int = 0  # > 0: answer 202 with this fannedOut and no started ids
    queues_retryable: bool = False  # answer the retryable targets of a 202 as queued[] (the function retries them)
    faults: list[Any] = field(default_factory=list)
    retry_after: str | None = None  # sent on every status reply when set
    operations: dict[str, Operation] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    executes: int = 0  # operations created (reruns with the same correlationId create none)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                front._handle(self, "POST")

            def do_GET(self) -> None:
                front._handle(self, "GET")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the contract -----------------------------------------------------------------------------------------

    def _verify(self, headers: dict[str, str], message: bytes) -> str | None:
        ts = headers.get("x-backup-timestamp", "")
        sig = headers.get("x-backup-signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return "missing or stale X-Backup-Timestamp"
        expected = hmac.new(self.secret.encode(), ts.encode() + b"." + message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest("v1=" + expected, sig):
            return "the X-Backup-Signature does not match"
        return None

    def _handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length)
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.requests.append(Seen(method, h.path, headers, body))
            fault = self.faults.pop(0) if self.faults else None
        if fault == "drop":
            h.close_connection = True
            h.connection.close()
            return
        if isinstance(fault, int):
            extra = {"Retry-After": "1"} if fault in (429, 503) else {}
            return self._reply(h, fault, {"error": {"code": "UNAVAILABLE", "message": "scripted fault"}}, extra)
        if method == "POST" and h.path == "/backup":
            return self._post(h, headers, body)
        if method == "GET" and h.path.startswith("/backup/"):
            return self._get(h, headers, h.path[len("/backup/") :])
        return self._reply(h, 404, {"error": {"code": "NOT_FOUND", "message": "no such route"}})

    def _post(self, h: Any, headers: dict[str, str], body: bytes) -> None:
        problem = self._verify(headers, body)
        if problem:
            return self._reply(h, 401, {"error": {"code": "UNAUTHENTICATED", "message": problem}})
        if self.fanned_out:
            return self._reply(h, 202, {"started": [], "fannedOut": self.fanned_out, "ok": True})
        try:
            request = json.loads(body)
            instances = request.get("computeInstanceIds") or [request["computeInstanceId"]]
        except (ValueError, KeyError, TypeError):
            return self._reply(h, 400, {"error": {"code": "INVALID_REQUEST", "message": "computeInstanceId: missing"}})
        policy = request.get("policyId", "cbpdefaultdaily00001")
        correlation = request.get("correlationId") or "none"
        if request.get("dryRun"):
            plan = [{"computeInstanceId": i, "policyId": policy, "idempotencyKey": f"k-{i}"} for i in instances]
            return self._reply(h, 200, {"dryRun": True, "plan": plan, "ok": True})
        started, failed, retryable = [], [], []
        with self._lock:
            for instance in instances:
                if self.transient.get(instance, 0) > 0:
                    self.transient[instance] -= 1
                    retryable.append({"code": "UNAVAILABLE", "message": "try again", "computeInstanceId": instance})
                    continue
                if instance in self.not_startable:
                    failed.append({"code": "POLICY_NOT_APPLIED", "message": "apply the policy", "target": instance})
                    continue
                oid = "op" + hashlib.sha256(f"{correlation}|{instance}".encode()).hexdigest()[:18]
                if oid not in self.operations:
                    self.executes += 1
                    self.operations[oid] = Operation(oid, instance, policy, list(self.statuses))
                started.append({"operationId": oid, "computeInstanceId": instance, "policyId": policy})
        if not started and retryable:
            error = {"code": "UNAVAILABLE", "message": "the cloud is unavailable"}
            return self._reply(h, 503, {"error": error, "retryable": retryable}, {"Retry-After": "1"})
        if not started:
            error = {"code": "NOTHING_STARTED", "message": "no target could start: see failed[]"}
            return self._reply(h, 422, {"error": error, "failed": failed})
        if self.queues_retryable:
            queued = [t | {"attempt": 1, "delaySeconds": 15} for t in retryable]
            reply = {"started": started, "failed": failed, "retryable": [], "queued": queued, "ok": False}
            return self._reply(h, 202, reply)
        return self._reply(h, 202, {"started": started, "failed": failed, "retryable": retryable, "ok": not failed})

    def _get(self, h: Any, headers: dict[str, str], operation_id: str) -> None:
        problem = self._verify(headers, f"GET /backup/{operation_id}".encode())
        if problem:
            return self._reply(h, 401, {"error": {"code": "UNAUTHENTICATED", "message": problem}})
        with self._lock:
            op = self.operations.get(operation_id)
            if op is None:
                return self._reply(h, 404, {"error": {"code": "NOT_FOUND", "message": "no such backup operation"}})
            status = op.statuses[min(op.gets, len(op.statuses) - 1)]
            op.gets += 1
        reply = {
            "operationId": op.operation_id,
            "computeInstanceId": op.instance_id,
            "policyId": op.policy_id,
            "createdAt": "2026-12-01T10:00:00Z",
            "modifiedAt": "2026-12-01T10:00:05Z",
            "progressPercentage": 0.0,
            **status,
        }
        extra = {"Retry-After": self.retry_after} if self.retry_after else {}
        return self._reply(h, 200, reply, extra)

    def _reply(self, h: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)
