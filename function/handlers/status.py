"""`GET /backup/{operationId}`: the state of a backup this function started, for a CI gate that waits on it.

The request is already verified (handlers.http: the v1 signature over `GET /backup/<operationId>`, the id checked
against the id pattern before any call). One `Operation.Get`; only Execute operations are answered, every other
id is 404 (the route is not a general window on the folder's operations):

    {"operationId", "status": "running" | "succeeded" | "failed", "progressPercentage", "computeInstanceId",
     "policyId", "createdAt", "modifiedAt", "error": {"code", "message", "grpcCode"}}   (error: when failed only)

An Execute operation is recognised by its metadata's `@type` (yandex.cloud.backup.v1.ExecuteMetadata,
`Operation.is_execute`); Apply and Revoke operations carry the same two ids but another type, so they are 404.
"""

from __future__ import annotations

from typing import Any

from handlers.deps import Deps
from observability import get_logger
from triggers.http import http_reply
from triggers.model import Invocation
from ycloud.errors import TRANSIENT_CODES, CloudError
from ycloud.models import Operation

NOT_FOUND_CODES = frozenset({3, 5, 7})  # INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED: not an id we can show
RETRY_AFTER = "10"


def status_body(operation: Operation) -> dict[str, Any]:
    """The reply for an Execute operation (see the module docstring)."""
    meta = operation.metadata
    state = "failed" if operation.failed else "succeeded" if operation.done else "running"
    body: dict[str, Any] = {
        "operationId": operation.id,
        "status": state,
        "progressPercentage": meta.progress_percentage,
        "computeInstanceId": meta.compute_instance_id,
        "policyId": meta.policy_id,
        "createdAt": operation.created_at.isoformat() if operation.created_at else None,
        "modifiedAt": operation.modified_at.isoformat() if operation.modified_at else None,
    }
    if state == "failed" and operation.error is not None:
        error = CloudError(operation.error.code, operation.error.message)
        body["error"] = {"code": error.name, "message": error.message or "no message", "grpcCode": error.code}
    return body


def _error(invocation: Invocation, status: int, code: str, message: str, **headers: str) -> dict[str, Any]:
    return http_reply(invocation, status, {"error": {"code": code, "message": message}}, headers or None)


def handle_status(invocation: Invocation, operation_id: str, context: Any, deps: Deps) -> dict[str, Any]:
    log = get_logger()
    log.append_keys(operation_id=operation_id)
    not_found = f"no backup operation {operation_id} (only operations of Policy.Execute are shown)"
    try:
        operation = deps.cloud(context).operations.get(operation_id)
    except CloudError as exc:
        if exc.code in NOT_FOUND_CODES:
            log.info("status: operation not found", extra={"grpcCode": exc.code})
            return _error(invocation, 404, "NOT_FOUND", not_found)
        log.warning("status: Operation.Get failed", extra={"grpcCode": exc.code, "error": exc.message})
        if exc.code in TRANSIENT_CODES:
            return _error(
                invocation, 503, "CLOUD_UNAVAILABLE", f"{exc.name}: {exc.message}", **{"Retry-After": RETRY_AFTER}
            )
        return _error(invocation, 502, "CLOUD_FAILED", f"{exc.name}: {exc.message}")
    if operation.id != operation_id or not operation.is_execute:
        log.info("status: not an Execute operation")
        return _error(invocation, 404, "NOT_FOUND", not_found)
    return http_reply(invocation, 200, status_body(operation))
