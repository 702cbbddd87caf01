"""Cold-start figures: import the handler module in fresh processes, beside an eager baseline."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What a handler module costs when it imports everything a path might need, eagerly.
EAGER_BASELINE = (
    "import requests, pydantic, boto3, jwt, slack_sdk.signature\n"
    "boto3.client('sqs', region_name='us-east-1')\n"
    "from aws_lambda_powertools import Logger; Logger(service='x')\n"
    "from aws_lambda_powertools.utilities.batch import BatchProcessor\n"
    "from aws_lambda_powertools.utilities.parser import parse\n"
    "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
)
HANDLER_IMPORT = "import app\n"
BARE = "pass\n"

TIMER = "import time, sys\nt0 = time.perf_counter()\n{code}sys.stdout.write(str(time.perf_counter() - t0))\n"


def _once(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(code=code)],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'function'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def median_import_seconds(code: str, runs: int = 5) -> float:
    _once(code)  # warm the .pyc cache so every measured run compares the same thing
    return statistics.median(_once(code) for _ in range(runs))


def measure(runs: int = 5) -> dict[str, float]:
    handler = median_import_seconds(HANDLER_IMPORT, runs)
    baseline = median_import_seconds(EAGER_BASELINE, runs)
    return {
        "handler_import_ms": round(handler * 1000, 1),
        "eager_baseline_import_ms": round(baseline * 1000, 1),
        "handler_to_baseline_ratio": round(handler / baseline, 3) if baseline else 0.0,
        "runs": runs,
    }


if __name__ == "__main__":
    print(measure())
