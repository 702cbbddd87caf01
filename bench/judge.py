"""Judging `make bench`'s figures against their goals, and the table it prints (bench.run collects them).

Each row: figure number, name, what was measured, the goal, and PASS / FAIL / info. Goals come from the issues
named beside each constant; docs/BENCHMARKS.md explains every figure.
"""

from __future__ import annotations

from typing import Any

# Goals (issues "trigger handler", "follow-up", "chatops", "proof under load").
LATENCY_S = 0.020  # added to every emulator call in the throughput figures
CONCURRENCY = (8, 16)
TARGETS = 1000
MAX_WALL_RATIO = 1.3
MAX_CALLS_PER_TARGET = 1.01  # one Execute each, the listings amortised
PER_TARGET_BUDGET_MS = LATENCY_S * 1000.0 / 8  # 2.5 ms: what EXECUTE_CONCURRENCY=8 leaves per target at 20 ms
SLACK_BUDGET_MS = 3000.0
MEMORY_MAX_MB = 128.0


# Progress modes the poll goal applies to: progressPercentage reported and moving steadily.
STEADY_PROGRESS_MODES = frozenset({"linear", "integer", "noisy", "number"})


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
