"""Cold-start figures: import the handler module in fresh processes, beside an eager baseline, in one run.

Each case runs in its own fresh interpreter (`python -c`) with a clean environment (PYTHONPATH = function/ and
the repository root, fake AWS settings, nothing from the user's shell) and times its imports with
`perf_counter` inside the process, so the interpreter's own start-up is left out (the `bare` case shows what
is left: ~0). The cases are interleaved (A B C D, A B C D, ...) so that a busy moment of the machine hits them
all alike, and one untimed round first writes the `.pyc` files. Reported: the median of `runs` per case, and
the peak RSS (VmHWM: ru_maxrss would carry the parent's RSS at spawn time) of the median run's process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

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
CASES: dict[str, str] = {
    "bare": "pass\n",
    # The module both platforms load at cold start (init): since issue 13 it imports what every invocation needs.
    "app": "import app\n",
    # What the first trigger invocation imports before it touches the network (its module and dependencies).
    "trigger": "import app, handlers.trigger\n",
    "eager_baseline": EAGER_BASELINE,
}

TIMER = (
    "import time, sys\n"
    "t0 = time.perf_counter()\n"
    "{code}"
    "t1 = time.perf_counter()\n"
    "import json\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "rss_kb = int(hwm[0].split()[1]) if hwm else 0\n"
    "sys.stdout.write(json.dumps({{'s': t1 - t0, 'rss_kb': rss_kb, 'modules': len(sys.modules)}}))\n"
)


def clean_env() -> dict[str, str]:
    return {
        "PYTHONPATH": f"{ROOT / 'function'}{os.pathsep}{ROOT}",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def once(code: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(code=code)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(runs: int = 7) -> dict[str, Any]:
    """Median import time (ms) and peak RSS (MB) per case, and the handler-to-baseline ratios."""
    for code in CASES.values():
        once(code)  # writes the .pyc files, so every measured run compares the same thing
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
    for _ in range(runs):
        for name, code in CASES.items():
            samples[name].append(once(code))
    cases: dict[str, Any] = {}
    for name, runs_of in samples.items():
        ordered = sorted(runs_of, key=lambda r: r["s"])
        mid = ordered[len(ordered) // 2]
        cases[name] = {
            "median_ms": round(statistics.median(r["s"] for r in runs_of) * 1000.0, 1),
            "all_ms": [round(r["s"] * 1000.0, 1) for r in runs_of],
            "peak_rss_mb": round(mid["rss_kb"] / 1024.0, 1),
            "modules": mid["modules"],
        }
    baseline = cases["eager_baseline"]["median_ms"]
    return {
        "runs": runs,
        "cases": cases,
        "app_to_baseline_ratio": round(cases["app"]["median_ms"] / baseline, 3) if baseline else None,
        "trigger_to_baseline_ratio": round(cases["trigger"]["median_ms"] / baseline, 3) if baseline else None,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2, sort_keys=True))
