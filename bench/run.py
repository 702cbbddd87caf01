"""`make bench`: every benchmark figure in one run, a table on stdout, and bench/results.json.

Ratios compare figures measured in this run only. See docs/BENCHMARKS.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.judge import CONCURRENCY, LATENCY_S, TARGETS, goals, table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
FUNCTION_DIR = ROOT / "function"

# The throughput cases: (added latency s, EXECUTE_CONCURRENCY). 20 ms shows where the function's own CPU
# (~2 ms/target in the HTTP stack) becomes the bound; 50 ms is closer to a control-plane write and is latency-bound.
THROUGHPUT_CASES = [(LATENCY_S, c) for c in CONCURRENCY] + [(0.050, 8)]
FANOUT_THRESHOLD = 50


def _prepare_path() -> None:
    for path in (str(FUNCTION_DIR), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the parent's own follow-up checks (poll economy)


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu_model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "load_average_1m_at_start": round(load[0], 2),
    }


# --- collecting ---------------------------------------------------------------------------------------------


def run_all(
    cold_runs: int, quick: bool = False, cpu_runs: int = 3, cpu_sizes: tuple[int, ...] = (), only: str = "all"
) -> dict[str, Any]:
    """Every figure; `cold_runs` fresh interpreters per import case (and per first/Slack cold invocation: 5)."""
    from bench import coldpaths, coldstart, polls
    from bench.servers import BenchServers
    from local.emulator.seed import DEMO_FOLDER_ID, INSTANCE_PROD_DB

    figures: dict[str, Any] = {}
    fresh_runs = 3 if quick else 5
    if only == "cpu":
        with BenchServers(sizes=(1,)) as servers:
            _say(f"cold paths under the CPU share: {cpu_runs} round(s) of fresh processes ...")
            figures["cold_paths"] = coldpaths.measure(servers, runs=cpu_runs, extra_sizes=cpu_sizes)
        return figures
    _say("cold start: fresh interpreters ...")
    figures["cold_start"] = coldstart.measure(runs=cold_runs)
    _say("poll economy: simulator and emulator ...")
    figures["poll_economy"] = polls.measure()

    with BenchServers() as servers:
        folders = servers.folders
        _say(f"first invocation: {fresh_runs} fresh processes, yc-timer sample ...")
        first = [servers.spawn("first", {}, servers.env("moto")) for _ in range(fresh_runs)]
        figures["first_invocation"] = summarize_first(first)

        _say(f"slack: signed slash command, {fresh_runs} cold processes, warm in the first ...")
        slack_env = servers.env(  # as deployed: answered first, handed to the request queue (handlers.slack)
            "moto",
            SLACK_SIGNING_SECRET=os.urandom(16).hex(),
            CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID,
            REQUEST_QUEUE_URL=servers.queues["moto:requests"],
            HANDOFF_SECRET=os.urandom(16).hex(),
        )
        slack = [
            servers.spawn("slack", {"text": INSTANCE_PROD_DB, "warm_runs": 7 if i == 0 else 0}, slack_env)
            for i in range(fresh_runs)
        ]
        figures["slack"] = summarize_slack(slack)

        _say(f"memory: fresh process, one {TARGETS}-target invocation ...")
        servers.next_day()
        memory_env = servers.env("stub", FANOUT_THRESHOLD="100000")
        figures["memory"] = servers.spawn("memory", {"payload": folders[TARGETS].payload()}, memory_env)
        figures["memory"]["bare_interpreter_mb"] = figures["cold_start"]["cases"]["bare"]["peak_rss_mb"]

        _say("load: warm overhead per target, inline throughput, fan-out hand-off ...")
        fanout_targets = [
            {
                "name": "stub",
                "sqs_endpoint": servers.stub.url,
                "queue_url": servers.queues["stub:requests"],
                "followup_queue_url": servers.queues["stub:followups"],
            },
            {
                "name": "moto",
                "sqs_endpoint": servers.moto_url,
                "queue_url": servers.queues["moto:requests"],
                "followup_queue_url": servers.queues["moto:followups"],
            },
        ]
        spec = {
            "warmup_payload": folders[1].payload(),
            "per_target": [
                {"targets": n, "runs": runs, "payload": folders[n].payload()}
                for n, runs in ((1, 15), (10, 9), (100, 5))
            ],
            "latency_s": LATENCY_S,
            "concurrency": list(CONCURRENCY),
            "throughput_cases": THROUGHPUT_CASES,
            "throughput_runs": 1 if quick else 3,
            "targets": TARGETS,
            "large_payload": folders[TARGETS].payload(),
            "fanout_threshold": FANOUT_THRESHOLD,
            "fanout": fanout_targets[:1] if quick else fanout_targets,
        }
        load = servers.spawn("load", spec, servers.env("stub"), timeout=600)
        # What really arrived on the request queues (the queues' own counts, not the function's report).
        for row in load["fanout"]:
            row["messages_on_queue"] = servers.queue_depth(row["queue"], "requests")
        figures["warm_per_target"] = load["per_target"]
        figures["throughput"] = load["throughput"]
        figures["fanout"] = load["fanout"]

        _say(f"cold paths under the CPU share: {cpu_runs} round(s) of fresh processes ...")
        figures["cold_paths"] = coldpaths.measure(servers, runs=cpu_runs, extra_sizes=cpu_sizes)
    return figures


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def summarize_first(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over fresh processes (one run is at the mercy of whatever else the machine does)."""
    return {
        "runs": runs,
        "import_ms": _median([r["import_ms"] for r in runs]),
        "first_invocation_ms": _median([r["first_invocation_ms"] for r in runs]),
        "cold_total_ms": _median([r["import_ms"] + r["first_invocation_ms"] for r in runs]),
        "second_invocation_ms": _median([r["second_invocation_ms"] for r in runs]),
        "started_each": all(r["started"] == [1, 1] for r in runs),
        "loaded": runs[0]["loaded"],
    }


def summarize_slack(runs: list[dict[str, Any]]) -> dict[str, Any]:
    warm = [w for r in runs for w in r["warm_ms"]]
    return {
        "runs": runs,
        "spawn_to_reply_ms": _median([r["spawn_to_reply_ms"] for r in runs]),
        "interpreter_ms": _median([r["interpreter_ms"] for r in runs]),
        "import_ms": _median([r["import_ms"] for r in runs]),
        "first_invocation_ms": _median([r["first_invocation_ms"] for r in runs]),
        "warm_ms": warm,
        "warm_median_ms": _median(warm) if warm else None,
        "status_codes": sorted({c for r in runs for c in r["status_codes"]}),
        "started_replies": sum(r["started_replies"] for r in runs),
        "replies": sum(r["replies"] for r in runs),
        "sample_reply": runs[0]["sample_reply"],
    }


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh processes per cold-start case (>= 5)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no moto fan-out (a smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--cpu-runs", type=int, default=3, help="rounds of figure 8 (the CPU-share cold paths)")
    parser.add_argument(
        "--cpu-sizes", type=int, nargs="*", default=[], help="memory sizes (MB) for figure 8 besides 128, 256, deployed"
    )
    parser.add_argument("--only", choices=("all", "cpu"), default="all", help="cpu: figure 8 alone")
    args = parser.parse_args(argv)
    if args.cold_runs < 5:
        parser.error("--cold-runs must be at least 5")

    _prepare_path()
    started = time.perf_counter()
    machine = machine_info()
    cpu_runs = 1 if args.quick else args.cpu_runs
    figures = run_all(args.cold_runs, args.quick, cpu_runs, tuple(args.cpu_sizes), args.only)
    rows = goals(figures)
    summary = {
        "passed": sum(1 for r in rows if r["pass"] is True),
        "failed": sum(1 for r in rows if r["pass"] is False),
        "info": sum(1 for r in rows if r["pass"] is None),
    }
    results = {
        "machine": machine,
        "bench_seconds": round(time.perf_counter() - started, 1),
        "figures": figures,
        "goals": rows,
        "summary": summary,
    }
    text = table(rows)
    print(text)
    print(
        f"\n{summary['passed']} passed, {summary['failed']} failed, {summary['info']} for information; "
        f"Python {machine['python']}, {machine['cpu_count']} CPUs, load {machine['load_average_1m_at_start']} at "
        f"start, {results['bench_seconds']:.0f} s"
    )
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, args.output)
    _say(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
