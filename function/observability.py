"""One place that owns logging: a powertools Logger emitting one JSON line per decision."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

SERVICE = "yc-backup-runner"


@lru_cache(maxsize=1)
def get_logger() -> Logger:
    from aws_lambda_powertools import Logger

    return Logger(service=SERVICE, use_rfc3339=True)
