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
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from bench.workerlib import (  # noqa: E402  (standard library only, like the imports above)
    ROOT,
    Context,
    enter_quota,
    maxrss_mb,
    median,
    ms,
    next_day,
    peak_rss_mb,
    queue_event,
    read_text,
    slack_event,
    started_count,
    timer_event,
)

HEAVY = ("requests", "pydantic", "boto3", "botocore", "aws_lambda_powertools", "jwt", "slack_sdk", "cryptography")

# --- scenarios ------------------------------------------------------------------------------------------------


def _cold_call(handler: str, event: Any) -> tuple[Any, Any, dict[str, float]]:
    """`import app` (timed, unthrottled in the "aws" model), then join the quota and make this process's first
    call of `app.<handler>`: (the app module, the reply, the cold figures every scenario reports)."""
    t0 = time.perf_counter()
    import app

    t_init = time.perf_counter()
    enter_quota()
    cpu = time.process_time()
    t1 = time.perf_counter()
    reply = getattr(app, handler)(event, Context())
    t2 = time.perf_counter()
    t_reply = time.time()
    figures = {
        "spawn_to_reply_ms": ms(t_reply - float(os.environ["BENCH_SPAWN_TIME"])),
        "import_ms": ms(t_init - t0),
        "first_invocation_ms": ms(t2 - t1),
        "call_cpu_ms": ms(time.process_time() - cpu),
    }
    return app, reply, figures


def _warm_call(call: Any) -> tuple[Any, float, float]:
    """`call()` timed: (its result, wall ms, CPU ms)."""
    cpu = time.process_time()
    t0 = time.perf_counter()
    result = call()
    return result, ms(time.perf_counter() - t0), ms(time.process_time() - cpu)


def first(spec: dict[str, Any]) -> dict[str, Any]:
    """Import app and run the yc-timer sample: the first invocation of a fresh instance, then a warm one."""
    event = json.loads(read_text(os.path.join(ROOT, "events", "yc-timer.json")))
    app, reply, cold = _cold_call("trigger_handler", event)
    loaded = sorted(name for name in HEAVY if name in sys.modules)
    next_day()
    event["messages"][0]["event_metadata"]["event_id"] = "a1s41g2n5g0oqbench02"
    again, warm_ms, warm_cpu_ms = _warm_call(lambda: app.trigger_handler(event, Context()))
    return {
        **cold,
        "second_invocation_ms": warm_ms,
        "warm_call_ms": warm_ms,
        "warm_call_cpu_ms": warm_cpu_ms,
        "started": [started_count(reply), started_count(again)],
        "loaded": loaded,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def slack(spec: dict[str, Any]) -> dict[str, Any]:
    """A signed slash command, cold (this process's first invocation, imports included) then warm."""
    # BENCH_SLACK_SECRET: the value behind SLACK_SIGNING_SECRET_ARN ("aws" model), which the caller signs with
    secret = os.environ.get("BENCH_SLACK_SECRET") or os.environ["SLACK_SIGNING_SECRET"]
    text = spec["text"]
    app, reply, cold = _cold_call("trigger_handler", slack_event(secret, text, "1.1.cold"))
    replies = [reply]
    warm: list[float] = []
    for i in range(int(spec["warm_runs"])):
        next_day()
        event = slack_event(secret, text, f"1.1.warm{i}")
        again, warm_ms, _ = _warm_call(lambda event=event: app.trigger_handler(event, Context()))
        replies.append(again)
        warm.append(warm_ms)
    texts = [json.loads(r["body"]).get("text", "") if isinstance(r, dict) and "body" in r else "" for r in replies]
    return {
        **cold,
        "interpreter_ms": ms(T_PROCESS - float(os.environ["BENCH_SPAWN_TIME"])),
        "warm_ms": warm,
        "warm_median_ms": round(median(warm), 1) if warm else None,
        "status_codes": sorted({r.get("statusCode") for r in replies if isinstance(r, dict)}),
        "started_replies": sum(1 for t in texts if "started" in t or "Starting a backup" in t),
        "replies": len(replies),
        "sample_reply": texts[0][:120],
    }


def followup(spec: dict[str, Any]) -> dict[str, Any]:
    """A fresh instance's first follow-up invocation: one ticket (spec["body"]) as a Message Queue trigger event."""
    app, reply, cold = _cold_call("followup_handler", queue_event(spec["body"], "bench-followup"))
    # A warm invocation of the same instance, the same ticket (the backup is done: Get, the result event again).
    warm_event = queue_event(spec["body"], "bench-followup-warm")
    _, warm_ms, warm_cpu_ms = _warm_call(lambda: app.followup_handler(warm_event, Context()))
    return {
        **cold,
        "warm_call_ms": warm_ms,
        "warm_call_cpu_ms": warm_cpu_ms,
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
    """Warm invocations: overhead per target, inline throughput, fan-out hand-off (bench.loadwork)."""
    from bench.loadwork import load as run

    return run(spec)


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
    spec = json.loads(read_text(spec_path))
    result = SCENARIOS[scenario](spec)
    result["peak_rss_end_mb"] = round(peak_rss_mb(), 1)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
