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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
FUNCTION_DIR = ROOT / "function"

# Goals (issues "trigger handler", "follow-up", "chatops", "proof under load").
LATENCY_S = 0.020  # added to every emulator call in the throughput figures
CONCURRENCY = (8, 16)
# (added latency s, EXECUTE_CONCURRENCY): 20 ms shows where the function's own CPU (~2 ms/target in the HTTP stack)
# becomes the bound; 50 ms is closer to a control-plane write (Execute creates an operation) and is latency-bound.
THROUGHPUT_CASES = [(LATENCY_S, c) for c in CONCURRENCY] + [(0.050, 8)]
TARGETS = 1000
MAX_WALL_RATIO = 1.3
MAX_CALLS_PER_TARGET = 1.01  # one Execute each, the listings amortised
PER_TARGET_BUDGET_MS = LATENCY_S * 1000.0 / 8  # 2.5 ms: what EXECUTE_CONCURRENCY=8 leaves per target at 20 ms
FANOUT_THRESHOLD = 50
SLACK_BUDGET_MS = 3000.0
MEMORY_MAX_MB = 128.0


# Progress modes the poll goal applies to: progressPercentage reported and moving steadily.
STEADY_PROGRESS_MODES = frozenset({"linear", "integer", "noisy", "number"})


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
        slack_env = servers.env("moto", SLACK_SIGNING_SECRET=os.urandom(16).hex(), CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID)
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


# --- judging ------------------------------------------------------------------------------------------------


def goals(f: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(figure: str, name: str, measured: str, goal: str, ok: bool | None) -> None:
        rows.append({"figure": figure, "name": name, "measured": measured, "goal": goal, "pass": ok})

    if "cold_start" in f:
        _cold_rows(f, add)
    if "cold_paths" in f:
        from bench.coldpaths import goal_rows

        for name, measured, goal, ok in goal_rows(f["cold_paths"]):
            add("8", name, measured, goal, ok)
    return rows


def _cold_rows(f: dict[str, Any], add: Any) -> None:
    """Figures 1 to 7 (one full run)."""
    cold = f["cold_start"]
    cases = cold["cases"]
    base = cases["eager_baseline"]["median_ms"]
    add("1", "eager baseline import", f"{base:.0f} ms", "reference (same run)", None)
    # Issue 7 judged these against the lazy design (`import app` <= 0.10x, the trigger path <= 0.50x, the first
    # invocation <= baseline + warm call). Issue 13 moved the imports into init on purpose (Lambda runs init at
    # full speed): they are references now, and figure 8 judges the cold paths under the CPU share.
    superseded = "info (init by design since issue 13; figure 8 judges)"
    app_ratio, trig_ratio = cold["app_to_baseline_ratio"], cold["trigger_to_baseline_ratio"]
    add("1", "import app (init)", f"{cases['app']['median_ms']:.0f} ms = {app_ratio:.2f}x baseline", superseded, None)
    add(
        "1",
        "import app, handlers.trigger",
        f"{cases['trigger']['median_ms']:.0f} ms = {trig_ratio:.2f}x baseline",
        superseded,
        None,
    )

    first = f["first_invocation"]
    cold_total = first["cold_total_ms"]
    add(
        "2",
        "first invocation (yc-timer)",
        f"import {first['import_ms']:.0f} + call {first['first_invocation_ms']:.0f} = {cold_total:.0f} ms "
        f"(n={len(first['runs'])}; baseline import + warm call {base + first['second_invocation_ms']:.0f} ms)",
        superseded,
        None if first["started_each"] else False,
    )
    add(
        "2",
        "second invocation, same process",
        f"{first['second_invocation_ms']:.0f} ms",
        "info (warm)",
        None,
    )

    for row in f["warm_per_target"]:
        amortised = row["targets"] >= 100
        add(
            "3",
            f"warm, {row['targets']} target(s), no latency",
            f"{row['ms_per_target']:.2f} ms/target ({row['invocation_ms_median']:.0f} ms)",
            f"<= {PER_TARGET_BUDGET_MS:.1f} ms/target" if amortised else "info (fixed cost not amortised)",
            row["ms_per_target"] <= PER_TARGET_BUDGET_MS and row["started"] == row["targets"] if amortised else None,
        )

    for row in f["throughput"]:
        add(
            "4",
            f"{row['targets']} inline, c={row['concurrency']}, {row['latency_ms']:.0f} ms",
            f"{row['wall_s']:.2f} s / ideal {row['ideal_s']:.2f} s = {row['ratio']:.2f}x "
            f"({row['executes_per_s']:.0f}/s; CPU fn {row['function_cpu_s']:.1f} s, emu {_num(row['server_cpu_s'])} s)",
            f"<= {MAX_WALL_RATIO}x ideal",
            row["ratio"] <= MAX_WALL_RATIO and row["started"] == row["targets"],
        )
    if f["throughput"]:
        row = f["throughput"][0]
        calls = row["emulator_calls"]
        add(
            "4",
            "API calls per target",
            f"{row['calls_per_target']:.3f} ({calls['execute']} Execute + {calls['listing']} listing)",
            f"<= {MAX_CALLS_PER_TARGET} and 1 Execute each",
            all(
                r["calls_per_target"] <= MAX_CALLS_PER_TARGET and r["emulator_calls"]["execute"] == r["targets"]
                for r in f["throughput"]
            ),
        )
    ideal_c16 = TARGETS * LATENCY_S / max(CONCURRENCY)
    for row in f["fanout"]:
        measured = f"{row['put_ms'] / 1000:.2f} s for {row['messages_on_queue']} msgs ({row['messages_per_s']:.0f}/s)"
        if row["queue"] == "moto":
            add("4", "fan-out hand-off, moto", measured, "info (moto-bound, see docs)", None)
        else:
            add(
                "4",
                f"fan-out hand-off, {row['queue']}",
                measured,
                f"<= {ideal_c16:.2f} s (ideal inline, c={max(CONCURRENCY)})",
                row["put_ms"] / 1000 <= ideal_c16 and row["messages_on_queue"] == TARGETS,
            )

    from bench import polls

    sim: dict[str, list[dict[str, Any]]] = {}
    for row in f["poll_economy"]["simulated"]:
        sim.setdefault(row["mode"], []).append(row)
    for mode, cells in sim.items():
        # The goal is for progress that moves steadily; the other modes are stress cases for the fallback
        # (the issue itself says no schedule can meet both goals when progress tells nothing).
        steady = mode in STEADY_PROGRESS_MODES
        add(
            "5",
            f"polls, simulated: {mode}",
            _polls_cell(cells),
            polls.GOAL if steady else "info (stress case: fallback schedule)",
            all(c["pass"] for c in cells) if steady else None,
        )
    emu: dict[str, list[dict[str, Any]]] = {}
    for row in f["poll_economy"]["emulator"]:
        emu.setdefault(row["progress_mode"], []).append(row)
    for mode, cells in emu.items():
        agree = all(c["polls"] == c["simulator_polls"] and c["lag_s"] == c["simulator_lag_s"] for c in cells)
        add(
            "5",
            f"polls, emulator: {mode}",
            _polls_cell(cells) + ("; = simulator" if agree else "; differs from simulator"),
            polls.GOAL if mode in STEADY_PROGRESS_MODES else "info (fallback schedule)",
            all(c["pass"] for c in cells) if mode in STEADY_PROGRESS_MODES else None,
        )

    slack = f["slack"]
    ok_replies = slack["started_replies"] == slack["replies"] and slack["status_codes"] == [200]
    add(
        "6",
        "Slack ack, cold (spawn to reply)",
        f"{slack['spawn_to_reply_ms']:.0f} ms (interpreter {slack['interpreter_ms']:.0f}, import "
        f"{slack['import_ms']:.0f}, call {slack['first_invocation_ms']:.0f}; n={len(slack['runs'])})",
        f"< {SLACK_BUDGET_MS:.0f} ms",
        slack["spawn_to_reply_ms"] < SLACK_BUDGET_MS and ok_replies,
    )
    add(
        "6",
        "Slack ack, warm (median)",
        f"{slack['warm_median_ms']:.0f} ms (n={len(slack['warm_ms'])})",
        f"< {SLACK_BUDGET_MS:.0f} ms",
        slack["warm_median_ms"] < SLACK_BUDGET_MS and ok_replies,
    )

    mem = f["memory"]
    add("7", "bare interpreter peak RSS", f"{mem['bare_interpreter_mb']:.0f} MB", "reference", None)
    add(
        "7",
        f"peak RSS, {mem['started']}-target invocation",
        f"{mem['peak_rss_mb']:.0f} MB (after import app {mem['peak_rss_after_import_mb']:.0f} MB)",
        f"< {MEMORY_MAX_MB:.0f} MB",
        mem["peak_rss_mb"] < MEMORY_MAX_MB and mem["started"] == TARGETS,
    )


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _polls_cell(cells: list[dict[str, Any]]) -> str:
    polls = "/".join(str(c["polls"]) for c in cells)
    lags = "/".join(f"{c['lag_s']:.0f}" for c in cells)
    return f"polls {polls}, lag {lags} s"


# --- output -------------------------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    header = ("#", "figure", "measured", "goal", "result")
    lines = [
        (r["figure"], r["name"], r["measured"], r["goal"], {True: "PASS", False: "FAIL", None: "info"}[r["pass"]])
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(line.rstrip() for line in out)


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
