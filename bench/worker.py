"""The function's side of the benchmarks, run in a fresh process: `python -m bench.worker SCENARIO SPEC OUT`.

The parent (bench.run) hosts the emulator, moto and the SQS stub and passes their URLs in the environment
(YC_API_ENDPOINT, YC_IAM_TOKEN, AWS_ENDPOINT_URL_SQS, FOLLOWUP_QUEUE_URL ...); SPEC is a JSON file with the
scenario's parameters, OUT the JSON file this process writes its figures to. Only the standard library is
imported before the timed `import app`, so a scenario's import figure is that of a fresh function instance.
Between invocations the worker moves the emulator's manual clock a day forward (every backup started before
is then done, so the next Execute is not refused as "already running") through the control API; that is
outside every timed region.
"""

from __future__ import annotations

import time

T_PROCESS = time.time()  # wall clock: the parent compares it with the time it spawned this process
T0 = time.perf_counter()

# Only small standard modules before the timed imports: json, os, sys, resource (collections.abc comes with os).
# Not typing: `import app` loads it, so the figure includes it as the cold-start one does.
import json  # noqa: E402  (the timestamps above come first on purpose)
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400.0
HEAVY = ("requests", "pydantic", "boto3", "botocore", "aws_lambda_powertools", "jwt", "slack_sdk", "cryptography")


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


def _read(path: str) -> str:
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
    event: dict[str, Any] = json.loads(_read(os.path.join(ROOT, "events", "yc-message-queue.json")))
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
    event: dict[str, Any] = json.loads(_read(os.path.join(ROOT, "events", "yc-http.json")))
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


# --- instrumentation: the same handler, with the client and the queue observed ----------------------------------


class TimedQueue:
    """A MessageQueue wrapper adding up the time spent handing messages off."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.messages = 0

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        return self.send_many(queue_url, [body], delay_seconds=delay_seconds)[0]

    def send_many(self, queue_url: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> list[str]:
        started = time.perf_counter()
        try:
            ids: list[str] = self.inner.send_many(queue_url, bodies, delay_seconds=delay_seconds)
            self.messages += len(ids)
            return ids
        finally:
            self.seconds += time.perf_counter() - started


class Observed:
    """`handlers.trigger.handle` with a client factory that remembers its clients and a timed queue."""

    def __init__(self, sqs_endpoint: str | None = None) -> None:
        from adapters.sqs import SqsQueue

        self.queue = TimedQueue(SqsQueue(endpoint_url=sqs_endpoint))
        self.clients: list[Any] = []
        self.cpu_seconds = 0.0  # of the last invocation, every thread of this process
        self.server_cpu_seconds: float | None = None  # of the last invocation, the parent's servers

    def cloud_factory(self, settings: Any, context: Any) -> Any:
        from ycloud.client import YandexCloud

        client = YandexCloud.from_settings(settings, context=context)
        self.clients.append(client)
        return client

    def invoke(self, event: dict[str, Any], env: dict[str, str]) -> tuple[Any, float, int]:
        """(reply, seconds, client API calls) of one invocation with `env` over the process environment."""
        from handlers.deps import Deps
        from handlers.trigger import handle

        from settings import Settings

        deps = Deps(
            settings=Settings.from_env({**os.environ, **env}),
            cloud_factory=self.cloud_factory,
            queue_factory=lambda: self.queue,
        )
        self.clients.clear()
        server_cpu = parent_cpu_s()
        cpu = time.process_time()
        started = time.perf_counter()
        reply = handle(event, Context(), deps)
        elapsed = time.perf_counter() - started
        self.cpu_seconds = time.process_time() - cpu
        after = parent_cpu_s()
        self.server_cpu_seconds = None if after is None or server_cpu is None else after - server_cpu
        return reply, elapsed, sum(c.calls for c in self.clients)


def started_count(reply: Any) -> int:
    return len(reply.get("started", [])) if isinstance(reply, dict) else 0


# --- scenarios ------------------------------------------------------------------------------------------------


def first(spec: dict[str, Any]) -> dict[str, Any]:
    """Import app and run the yc-timer sample: the first invocation of a fresh instance, then a warm one."""
    event = json.loads(_read(os.path.join(ROOT, "events", "yc-timer.json")))
    t0 = time.perf_counter()
    import app

    t_init = time.perf_counter()
    enter_quota()
    cpu = time.process_time()
    t1 = time.perf_counter()
    reply = app.trigger_handler(event, Context())
    t2 = time.perf_counter()
    t_reply = time.time()
    cpu_call = time.process_time() - cpu
    loaded = sorted(name for name in HEAVY if name in sys.modules)
    next_day()
    event["messages"][0]["event_metadata"]["event_id"] = "a1s41g2n5g0oqbench02"
    cpu = time.process_time()
    t3 = time.perf_counter()
    again = app.trigger_handler(event, Context())
    t4 = time.perf_counter()
    return {
        "spawn_to_reply_ms": ms(t_reply - float(os.environ["BENCH_SPAWN_TIME"])),
        "import_ms": ms(t_init - t0),
        "first_invocation_ms": ms(t2 - t1),
        "call_cpu_ms": ms(cpu_call),
        "second_invocation_ms": ms(t4 - t3),
        "warm_call_ms": ms(t4 - t3),
        "warm_call_cpu_ms": ms(time.process_time() - cpu),
        "started": [started_count(reply), started_count(again)],
        "loaded": loaded,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def slack(spec: dict[str, Any]) -> dict[str, Any]:
    """A signed slash command, cold (this process's first invocation, imports included) then warm."""
    secret = os.environ["SLACK_SIGNING_SECRET"]
    text = spec["text"]
    event = slack_event(secret, text, "1.1.cold")
    t0 = time.perf_counter()
    import app

    t_init = time.perf_counter()
    enter_quota()
    cpu = time.process_time()
    t1 = time.perf_counter()
    reply = app.trigger_handler(event, Context())
    t2 = time.perf_counter()
    t_reply = time.time()
    cpu_call = time.process_time() - cpu
    replies = [reply]
    warm: list[float] = []
    for i in range(int(spec["warm_runs"])):
        next_day()
        event = slack_event(secret, text, f"1.1.warm{i}")
        started = time.perf_counter()
        replies.append(app.trigger_handler(event, Context()))
        warm.append(time.perf_counter() - started)
    texts = [json.loads(r["body"]).get("text", "") if isinstance(r, dict) and "body" in r else "" for r in replies]
    return {
        "spawn_to_reply_ms": ms(t_reply - float(os.environ["BENCH_SPAWN_TIME"])),
        "interpreter_ms": ms(T_PROCESS - float(os.environ["BENCH_SPAWN_TIME"])),
        "import_ms": ms(t_init - t0),
        "first_invocation_ms": ms(t2 - t1),
        "call_cpu_ms": ms(cpu_call),
        "warm_ms": [ms(w) for w in warm],
        "warm_median_ms": ms(median(warm)) if warm else None,
        "status_codes": sorted({r.get("statusCode") for r in replies if isinstance(r, dict)}),
        "started_replies": sum(1 for t in texts if "started" in t),
        "replies": len(replies),
        "sample_reply": texts[0][:120],
    }


def followup(spec: dict[str, Any]) -> dict[str, Any]:
    """A fresh instance's first follow-up invocation: one ticket (spec["body"]) as a Message Queue trigger event."""
    event = queue_event(spec["body"], "bench-followup")
    t0 = time.perf_counter()
    import app

    t_init = time.perf_counter()
    enter_quota()
    cpu = time.process_time()
    t1 = time.perf_counter()
    reply = app.followup_handler(event, Context())
    t2 = time.perf_counter()
    t_reply = time.time()
    cpu_call = time.process_time() - cpu
    # A warm invocation of the same instance, the same ticket (the backup is done: Get, the result event again).
    cpu = time.process_time()
    t3 = time.perf_counter()
    app.followup_handler(queue_event(spec["body"], "bench-followup-warm"), Context())
    t4 = time.perf_counter()
    return {
        "spawn_to_reply_ms": ms(t_reply - float(os.environ["BENCH_SPAWN_TIME"])),
        "import_ms": ms(t_init - t0),
        "first_invocation_ms": ms(t2 - t1),
        "call_cpu_ms": ms(cpu_call),
        "warm_call_ms": ms(t4 - t3),
        "warm_call_cpu_ms": ms(time.process_time() - cpu),
        "reply": reply if isinstance(reply, dict) else None,
    }


def baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """The eager baseline's imports (bench.coldstart.EAGER_BASELINE) in this process, timed, under its quota."""
    cpu = time.process_time()
    t0 = time.perf_counter()
    exec(compile(spec["code"], "<eager baseline>", "exec"), {})  # the bench's own constant
    return {
        "spawn_to_reply_ms": ms(time.time() - float(os.environ["BENCH_SPAWN_TIME"])),
        "import_ms": ms(time.perf_counter() - t0),
        "import_cpu_ms": ms(time.process_time() - cpu),
    }


def memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of a fresh process running one trigger invocation with `targets` targets (inline execute)."""
    before = peak_rss_mb()
    import app

    after_import = peak_rss_mb()
    event = timer_event(spec["payload"], "bench-memory")
    started = time.perf_counter()
    reply = app.trigger_handler(event, Context())
    elapsed = time.perf_counter() - started
    return {
        "peak_rss_start_mb": round(before, 1),
        "peak_rss_after_import_mb": round(after_import, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "ru_maxrss_mb": round(maxrss_mb(), 1),
        "started": started_count(reply),
        "invocation_ms": ms(elapsed),
    }


def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm invocations: overhead per target (no latency), inline throughput (with latency), fan-out hand-off."""
    import app  # noqa: F401  (the warm-up below imports the rest)

    out: dict[str, Any] = {}
    observed = Observed(spec.get("sqs_endpoint"))
    base_env = {"FANOUT_THRESHOLD": "100000"}
    counter = iter(range(1_000_000))

    def run(payload: dict[str, Any], env: dict[str, str], tag: str) -> tuple[Any, float, int, dict[str, int]]:
        next_day()
        event = timer_event(payload, f"bench-{tag}-{next(counter)}")
        reply, seconds, calls = observed.invoke(event, {**base_env, **env})
        return reply, seconds, calls, call_counts()

    set_latency(0.0)
    for _ in range(3):  # warm-up: imports, the HTTP session, the SQS client, pydantic's first validations
        run(spec["warmup_payload"], {}, "warmup")

    per_target = []
    for case in spec["per_target"]:
        times: list[float] = []
        cpu: list[float] = []
        started = 0
        for _ in range(int(case["runs"])):
            reply, seconds, _, _ = run(case["payload"], {}, f"n{case['targets']}")
            times.append(seconds)
            cpu.append(observed.cpu_seconds)
            started = started_count(reply)
        typical = median(times)
        per_target.append(
            {
                "targets": case["targets"],
                "runs": len(times),
                "started": started,
                "invocation_ms_median": ms(typical),
                "ms_per_target": round(typical * 1000.0 / case["targets"], 3),
                "function_cpu_ms_per_target": round(median(cpu) * 1000.0 / case["targets"], 3),
            }
        )
    out["per_target"] = per_target

    throughput = []
    try:
        for latency, concurrency in spec["throughput_cases"]:
            set_latency(float(latency))
            runs: list[dict[str, Any]] = []
            for _ in range(int(spec["throughput_runs"])):
                observed.queue.seconds = 0.0
                env = {"EXECUTE_CONCURRENCY": str(concurrency)}
                reply, seconds, calls, counts = run(spec["large_payload"], env, f"c{concurrency}")
                runs.append(
                    {
                        "seconds": seconds,
                        "started": started_count(reply),
                        "client_calls": calls,
                        "emulator_calls": counts,
                        "handoff_s": observed.queue.seconds,
                        "cpu_s": observed.cpu_seconds,
                        "server_cpu_s": observed.server_cpu_seconds,
                    }
                )
            runs.sort(key=lambda r: r["seconds"])
            mid = runs[len(runs) // 2]
            targets = int(spec["targets"])
            ideal = targets * latency / concurrency
            throughput.append(
                {
                    "concurrency": concurrency,
                    "targets": targets,
                    "latency_ms": ms(latency),
                    "runs": len(runs),
                    "wall_s": round(mid["seconds"], 3),
                    "wall_s_all": [round(r["seconds"], 3) for r in runs],
                    "ideal_s": round(ideal, 3),
                    "ratio": round(mid["seconds"] / ideal, 3),
                    "executes_per_s": round(mid["started"] / mid["seconds"], 1),
                    "started": mid["started"],
                    "client_calls": mid["client_calls"],
                    "emulator_calls": mid["emulator_calls"],
                    "calls_per_target": round(mid["client_calls"] / targets, 4),
                    "ticket_handoff_ms": ms(mid["handoff_s"]),
                    "function_cpu_s": round(mid["cpu_s"], 3),
                    "function_cpu_ms_per_target": round(mid["cpu_s"] * 1000.0 / targets, 3),
                    "server_cpu_s": None if mid["server_cpu_s"] is None else round(mid["server_cpu_s"], 3),
                }
            )
    finally:
        set_latency(0.0)
    out["throughput"] = throughput

    fanout = []
    for target in spec["fanout"]:
        queue_observed = Observed(target["sqs_endpoint"])
        # Untimed: builds this endpoint's SQS client (the tickets of this one target go to its follow-up queue).
        warm_env = {**base_env, "FOLLOWUP_QUEUE_URL": target["followup_queue_url"]}
        queue_observed.invoke(timer_event(spec["warmup_payload"], f"bench-fanout-warm-{next(counter)}"), warm_env)
        next_day()
        env = {
            **warm_env,
            "FANOUT_THRESHOLD": str(spec["fanout_threshold"]),
            "REQUEST_QUEUE_URL": target["queue_url"],
            "FANOUT_SECRET": os.urandom(16).hex(),  # fan-out messages are signed (backups.handoff)
        }
        event = timer_event(spec["large_payload"], f"bench-fanout-{next(counter)}")
        queue_observed.queue.seconds = 0.0
        reply, seconds, calls = queue_observed.invoke(event, env)
        fanned = int(reply.get("fannedOut", 0)) if isinstance(reply, dict) else 0
        put = queue_observed.queue.seconds
        server = queue_observed.server_cpu_seconds
        fanout.append(
            {
                "queue": target["name"],
                "function_cpu_ms": ms(queue_observed.cpu_seconds),
                "server_cpu_ms": None if server is None else ms(server),
                "fanned_out": fanned,
                "invocation_ms": ms(seconds),
                "put_ms": ms(put),
                "messages_per_s": round(fanned / put, 1) if put else None,
                "client_calls": calls,
            }
        )
    out["fanout"] = fanout
    return out


SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "first": first,
    "slack": slack,
    "followup": followup,
    "baseline": baseline,
    "memory": memory,
    "load": load,
}


def main(argv: list[str]) -> int:
    scenario, spec_path, out_path = argv
    if os.environ.get("BENCH_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    spec = json.loads(_read(spec_path))
    result = SCENARIOS[scenario](spec)
    result["peak_rss_end_mb"] = round(peak_rss_mb(), 1)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
