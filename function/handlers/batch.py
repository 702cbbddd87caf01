"""The reply of a queue invocation: which messages must come back, in each platform's protocol."""

from __future__ import annotations

from typing import Any

from backups.errors import RedeliveryRequested
from triggers.model import Invocation
from triggers.queue import batch_failure_reply


def queue_reply(invocation: Invocation, failed: list[str]) -> Any:
    """The reply of a queue invocation in which `failed` messages must come back. AWS: batchItemFailures. Yandex:
    no per-message protocol, so any failure fails the invocation (RedeliveryRequested) and the whole batch comes
    back (safe: idempotency keys)."""
    reply = batch_failure_reply(invocation, failed)
    if reply is None and failed:
        raise RedeliveryRequested(f"{len(failed)} of {len(invocation.messages)} message(s) must be redelivered")
    return reply if reply is not None else {"batchItemFailures": []} if invocation.platform == "aws" else {"ok": True}
