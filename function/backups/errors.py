"""Request-level errors: a problem with the whole request, not with one target (those are `Failed` outcomes).

Each names the reply class a handler maps it to (`http_status`) and a stable `code`. Messages say what to fix and
never carry a secret or the input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ycloud.errors import CloudError


class StartError(Exception):
    """A problem with the whole request. `http_status` is the reply class the handler maps it to."""

    http_status, code = 500, "INTERNAL"

    def __init__(self, message: str, *, cloud_error: CloudError | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cloud_error = cloud_error

    def to_json_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class RequestInvalid(StartError):
    """400: malformed body, empty or several selectors, policyId and policyName together, missing folder."""

    http_status, code = 400, "INVALID_REQUEST"


class NothingMatched(StartError):
    """404: the selector matched no instance, or the policy named does not exist."""

    http_status, code = 404, "NOTHING_MATCHED"


class CloudUnavailable(StartError):
    """503: a transient cloud error while resolving; a queue source should redeliver the message."""

    http_status, code = 503, "CLOUD_UNAVAILABLE"


class CloudFailed(StartError):
    """502: a permanent cloud error while resolving (PERMISSION_DENIED on a listing, UNAUTHENTICATED ...)."""

    http_status, code = 502, "CLOUD_FAILED"


class HandOffFailed(StartError):
    """503: operations started (or fan-out prepared) but a queue refused the messages. Redelivery is safe:
    the idempotency keys return the same operations. `report` holds what was done."""

    http_status, code = 503, "HANDOFF_FAILED"

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


class RedeliveryRequested(RuntimeError):
    """The trigger must come back (a transient failure, or a result no sink took); nothing was lost. `report`: what
    was started before (a StartReport), when anything was."""

    report: Any = None


TRANSIENT = (CloudUnavailable, HandOffFailed)
