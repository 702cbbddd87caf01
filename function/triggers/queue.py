"""Batch replies for queue-triggered invocations.

AWS SQS (Lambda event source mapping with `ReportBatchItemFailures`): return
`{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`; only those messages come back, after their
visibility timeout. An empty list acknowledges the whole batch.

Yandex Message Queue triggers have no per-message report: a batch succeeds or fails as a whole, and a failed
invocation (the handler raising) puts every message of the batch back in the queue. So for yc.message-queue this
helper returns None, and the handler must raise when any message failed if it wants them redelivered; the messages
that did succeed come back too, which the idempotency keys make harmless. (powertools' process_partial_response is
not used: it reads `Records` only and would report a Yandex batch as all successful.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from triggers.model import Invocation, TriggerError


def batch_failure_reply(invocation: Invocation, failed_message_ids: Iterable[str]) -> dict[str, Any] | None:
    """The queue's batch reply for these failed message ids (see the module docstring).

    Raises ValueError for a non-queue invocation, or for an id that is not in the batch (Lambda would fail the
    whole batch on an unknown itemIdentifier; better to say so here).
    """
    if invocation.kind != "queue":
        raise ValueError(f"batch_failure_reply needs a queue invocation, not {invocation.source}")
    known = {message.message_id for message in invocation.messages}
    failed = list(dict.fromkeys(failed_message_ids))  # keep order, drop repeats
    unknown = [message_id for message_id in failed if message_id not in known]
    if unknown:
        raise ValueError(f"{len(unknown)} failed message id(s) are not in this batch")
    if invocation.source == "yc.message-queue":
        return None
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def refused_event_reply(error: TriggerError) -> dict[str, Any]:
    """The reply to an event of no shape we are triggered with (not HTTP): `{ok: false, error: {code, message}}`."""
    return {"ok": False, "error": {"code": error.code, "message": str(error)}}
