"""Entry points for Yandex Cloud Functions (`app.trigger_handler`, `app.followup_handler`) and AWS Lambda.

Cold start: a function gets a CPU share proportional to its memory (AWS Lambda: 1,769 MB is one vCPU), but
Lambda's init phase, which loads this module, runs at full speed; only the invocation gets the share
(docs/BENCHMARKS.md, figure 8). So this module imports, at module level, what every invocation needs: the
handlers with the domain and the pydantic models, requests (the Yandex Cloud client, and SQS and Secrets Manager
through adapters.aws: every path hands off or sends back a ticket) and the powertools Logger. Measured at 256 MB
with 30 ms of API latency, that took a timer's first invocation from ~4 s to ~0.1 s.

No AWS SDK: adapters.aws signs SQS's and Secrets Manager's JSON protocol itself. botocore's session, its SQS
data and a client cost ~0.1 s of CPU in init (`import app` went from a median ~430 ms to ~320 ms of CPU on this
machine's full core), and powertools' parameters imported boto3 inside the invocation to read the secrets.

The Slack signature is checked with the standard library (security.slack): slack_sdk, whose import cost the cold
Slack ack ~0.1 s at 1,024 MB, is no longer a runtime dependency.

PyJWT and cryptography (the token exchange of a service-account authorized key) are imported here only when the
environment names a key (`YC_SERVICE_ACCOUNT_KEY_SECRET_ARN` or `YC_SERVICE_ACCOUNT_KEY`): then every cold start
exchanges it (template.yaml deploys so; deploy-yc.sh never does, Yandex functions get a context token). Measured:
their import is ~30 ms of CPU (the first PS256 signature ~40 ms more, in the call either way). In the "aws" model
(bench/coldpaths.py: init at full speed, the call under the share) importing them in init took a follow-up's first
invocation at 256 MB from 470-500 ms to 250-330 ms and the Slack ack's call at 1,024 MB from 210-250 ms to
~180 ms; imported unconditionally they would add those ~30 ms of CPU to every Yandex cold start, ~0.2 s at
256 MB if Yandex's init runs under the share. A hint read once, never a setting: a call that needs them imports
them anyway (ycloud.auth).

Nothing else here reads the environment or builds a client: settings and clients are made per invocation.
"""

from __future__ import annotations

import os
from typing import Any

import aws_lambda_powertools  # noqa: F401  (the Logger's module: every invocation logs)
import handlers.slack  # noqa: F401  (handlers.http imports it on a Slack request)
import requests  # noqa: F401  (ycloud.client and the webhook sink use it)
from handlers.followup import handle as _followup
from handlers.trigger import handle as _trigger

import adapters.aws  # SQS and Secrets Manager over requests (no AWS SDK)
import adapters.secrets  # AWS: the secrets named by ARN, read at an instance's first call
import adapters.sinks
import adapters.sqs  # noqa: F401  (the queue adapter every path uses)
import ycloud.client  # noqa: F401  (handlers.deps builds the client from it)

if os.environ.get("YC_SERVICE_ACCOUNT_KEY_SECRET_ARN") or os.environ.get("YC_SERVICE_ACCOUNT_KEY"):
    import jwt  # noqa: F401  (every cold start of this deployment exchanges a key: see above)


def trigger_handler(event: Any, context: Any) -> Any:
    """A timer, queue message, HTTP request or direct call asking for backups: start them, hand off tickets."""
    return _trigger(event, context)


def followup_handler(event: Any, context: Any) -> Any:
    """Follow-up tickets from the follow-up queue: check each operation, reschedule or emit its result."""
    return _followup(event, context)
