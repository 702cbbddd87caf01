"""One place that owns logging: a powertools Logger emitting one JSON line per decision."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

SERVICE = "yc-backup-runner"

# Keys whose values never reach a log line, whatever a caller passes.
SECRET_KEYS = frozenset(
    {
        "authorization",
        "token",
        "iamtoken",
        "iam_token",
        "access_token",
        "private_key",
        "privatekey",
        "secret",
        "signature",
        "x-slack-signature",
        "x-signature",
        "password",
        "jwt",
        "cookie",
    }
)


@lru_cache(maxsize=1)
def get_logger() -> Logger:
    from aws_lambda_powertools import Logger

    return Logger(service=SERVICE, use_rfc3339=True)


def redact(value: Any) -> Any:
    """A copy of `value` with secret-looking keys masked, for the rare log line that carries a structure."""
    if isinstance(value, dict):
        return {k: ("***" if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
