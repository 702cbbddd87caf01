"""What the bench's worker processes share: timing, peak RSS, a platform context, the emulator's control surface
and the events the scenarios send.

Standard library only at module level: bench.worker imports this before its timed `import app`.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# How far next_day() moves the emulator's clock. The bench's emulator runs at a million times real time
# (bench.servers.TIME_SCALE), so one emulator second is ~11.6 nominal days: every backup started before is done.
# Kept small so that, over a whole `make bench`, the emulator's clock stays within an authorized key's JWT lifetime
# (1 hour) of the wall clock the function signs its JWTs with (the "aws" model exchanges one: bench.coldpaths).
DAY = 1.0


def maxrss_mb() -> float:
    """ru_maxrss in MB (Linux: kilobytes). Carries the parent's RSS at spawn time: see peak_rss_mb."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM, reset at exec), falling back to ru_maxrss off Linux.

    ru_maxrss is not reset at exec on Linux: a process spawned by a 100 MB parent reports at least ~100 MB.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return maxrss_mb()


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def parent_cpu_s() -> float | None:
    """CPU seconds used so far by the parent (the emulator and the queues serving this process), Linux only."""
    try:
        with open(f"/proc/{os.getppid()}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def enter_quota() -> None:
    """The "aws" CPU model: init done, the invocation runs under the memory's CPU share (bench.cpu)."""
    procs = os.environ.get("BENCH_CPU_JOIN")
    if procs:
        with open(procs, "w", encoding="ascii") as fh:
            fh.write(str(os.getpid()))


class Context:
    """The attributes both platforms give a handler (enough for the client's deadline and the logger)."""

    def __init__(self, name: str = "bench", timeout_s: float = 300.0) -> None:
        self.request_id = self.aws_request_id = f"bench-{time.time_ns()}"
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 128
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- the emulator's control surface (never timed) -------------------------------------------------------------


def control(method: str, path: str, body: Any = None) -> Any:
    import urllib.request

    url = os.environ["YC_API_ENDPOINT"].rstrip("/") + "/_emulator" + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as reply:  # loopback only
        return json.loads(reply.read() or b"{}")


def next_day() -> None:
    """Every backup started so far is done; logs cleared."""
    control("POST", "/clock", {"advance": DAY})
    control("DELETE", "/logs")


def set_latency(seconds: float) -> None:
    if seconds > 0:
        control("POST", "/faults", {"rules": [{"path": "*", "latency": seconds}], "seed": 1})
    else:
        control("DELETE", "/faults")


def call_counts() -> dict[str, int]:
    calls = control("GET", "/calls")["calls"]
    execute = sum(1 for c in calls if c["method"] == "POST" and c["path"].endswith(":execute"))
    gets = sum(1 for c in calls if c["path"].startswith("/operations/"))
    return {"total": len(calls), "execute": execute, "listing": len(calls) - execute - gets, "operationGet": gets}


# --- events ---------------------------------------------------------------------------------------------------


def timer_event(payload: dict[str, Any], trigger_id: str) -> dict[str, Any]:
    """A Yandex timer trigger's event carrying `payload` (the shape of events/yc-timer.json)."""
    return {
        "messages": [
            {
                "event_metadata": {
                    "event_id": trigger_id,
                    "event_type": "yandex.cloud.events.serverless.triggers.TimerMessage",
                    "created_at": "2026-09-01T02:00:00.000000Z",
                    "cloud_id": "b1gbenchcloud0000001",
                    "folder_id": "b1gbenchfolder000001",
                },
                "details": {"trigger_id": "a1sbenchtimer0000001", "payload": json.dumps(payload)},
            }
        ]
    }


def queue_event(body: str, message_id: str) -> dict[str, Any]:
    """A Yandex Message Queue trigger's event carrying one message (the shape of events/yc-message-queue.json)."""
    event: dict[str, Any] = json.loads(read_text(os.path.join(ROOT, "events", "yc-message-queue.json")))
    message = event["messages"][0]["details"]["message"]
    message["body"] = body
    message["message_id"] = message_id
    message.pop("md5_of_body", None)
    return event


def slack_event(secret: str, text: str, trigger_id: str) -> dict[str, Any]:
    """A signed slash command as a Yandex HTTP call (events/yc-http.json with Slack's form and headers)."""
    import hashlib
    import hmac
    from urllib.parse import urlencode

    body = urlencode(
        {
            "token": "legacy",
            "team_id": "T0BENCH01",
            "channel_id": "C0BENCH01",
            "user_id": "U0BENCH01",
            "user_name": "bench",
            "command": "/backup",
            "text": text,
            "response_url": "https://hooks.slack.com/commands/T0BENCH01/1234567890/benchbenchbench",
            "trigger_id": trigger_id,
        }
    )
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    event: dict[str, Any] = json.loads(read_text(os.path.join(ROOT, "events", "yc-http.json")))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["body"] = body
    event["isBase64Encoded"] = False
    return event


def started_count(reply: Any) -> int:
    return len(reply.get("started", [])) if isinstance(reply, dict) else 0
