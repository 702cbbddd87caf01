"""The `load` scenario of bench.worker: warm overhead per target, inline throughput and the fan-out hand-off.

The same handler (`handlers.trigger.handle`) with a client factory that remembers its clients and a queue that
times the hand-off; see docs/BENCHMARKS.md, figures 3 and 4.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from bench.workerlib import (
    Context,
    call_counts,
    median,
    ms,
    next_day,
    parent_cpu_s,
    set_latency,
    started_count,
    timer_event,
)


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
            "HANDOFF_SECRET": os.urandom(16).hex(),  # fan-out messages are signed (backups.handoff)
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
