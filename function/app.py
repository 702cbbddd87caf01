"""Entry points for Yandex Cloud Functions (`app.trigger_handler`, `app.followup_handler`) and AWS Lambda.

Cold start: a function gets a CPU share proportional to its memory (AWS Lambda: 1,769 MB is one vCPU), but
Lambda's init phase, which loads this module, runs at full speed; only the invocation gets the share
(docs/BENCHMARKS.md, figure 8). So this module imports, at module level, what every invocation needs: the
handlers with the domain and the pydantic models, requests (the Yandex Cloud client), botocore and its SQS
data (every path hands off or sends back a ticket: adapters.sqs.preload), and the powertools Logger. boto3 is not
imported at all on these paths (adapters.sqs says why). Measured
at 256 MB with 30 ms of API latency, that took a timer's first invocation from ~4 s to ~0.1 s.

The Slack signature is checked with the standard library (security.slack): slack_sdk, whose import cost the cold
Slack ack ~0.1 s at 1,024 MB, is no longer a runtime dependency.

Left lazy, because most invocations never need them: PyJWT and cryptography (a service-account key's token
exchange, never on Yandex) and powertools' parameters (AWS Secrets Manager at the first start of an AWS
instance).

Nothing here reads the settings or builds a client: settings and clients are made per invocation.
"""

from __future__ import annotations

from typing import Any

import aws_lambda_powertools  # noqa: F401  (the Logger's module: every invocation logs)
import handlers.slack  # noqa: F401  (handlers.http imports it on a Slack request)
import requests  # noqa: F401  (ycloud.client and the webhook sink use it)
from handlers.followup import handle as _followup
from handlers.trigger import handle as _trigger

import adapters.aws  # noqa: F401  (SQS and Secrets Manager: every path hands off or sends back a ticket)
import adapters.secrets  # noqa: F401  (AWS: the secrets named by ARN, read at an instance's first call)
import adapters.sinks
import adapters.sqs  # noqa: F401
import ycloud.client  # noqa: F401  (handlers.deps builds the client from it)


def trigger_handler(event: Any, context: Any) -> Any:
    """A timer, queue message, HTTP request or direct call asking for backups: start them, hand off tickets."""
    return _trigger(event, context)


def followup_handler(event: Any, context: Any) -> Any:
    """Follow-up tickets from the follow-up queue: check each operation, reschedule or emit its result."""
    return _followup(event, context)

