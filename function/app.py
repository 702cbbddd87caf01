"""Entry points for Yandex Cloud Functions (`app.trigger_handler`, `app.followup_handler`) and AWS Lambda.

Thin on purpose: the work lives in handlers/ and is imported on the first call, so a cold start pays only for
the path it takes.
"""

from __future__ import annotations

from typing import Any


def trigger_handler(event: Any, context: Any) -> Any:
    """A timer, queue message, HTTP request or direct call asking for backups: start them, hand off tickets."""
    from handlers.trigger import handle

    return handle(event, context)


def followup_handler(event: Any, context: Any) -> Any:
    """Follow-up tickets from the follow-up queue: check each operation, reschedule or emit its result."""
    from handlers.followup import handle

    return handle(event, context)
