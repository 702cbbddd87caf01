"""The cheapest part of `make bench` (the simulated poll-economy table), so the bench code cannot rot.

Not a timed test: nothing here asserts on speed; `make bench` measures, docs/BENCHMARKS.md explains.
"""

from __future__ import annotations

from bench import polls
from bench.run import goals, table
from bench.simulate import PROGRESS_MODES


def test_given_the_default_schedule_when_simulated_then_every_mode_and_duration_has_a_row() -> None:
    rows = polls.simulated(noisy_seeds=2)

    assert {(r["mode"], r["duration"]) for r in rows} == {(m, d) for m in PROGRESS_MODES for d in polls.DURATIONS}
    assert all(r["polls"] >= 1 and r["lag_s"] >= 0 for r in rows)
    linear_2h = next(r for r in rows if r["mode"] == "linear" and r["duration"] == "2 h")
    assert linear_2h["pass"] is True  # the schedule's own documented result (11 polls, 19 s)


def test_the_goals_judge_polls_and_lag() -> None:
    assert polls.judge(7200, 12, 700.0) is True
    assert polls.judge(7200, 13, 10.0) is False  # over the poll budget
    assert polls.judge(60, 30, 7.0) is False  # later than 10% of the duration
    assert polls.judge(600, 40, 1.0) is True  # the poll budget is for the 2-hour backup


def test_the_table_renders_the_poll_rows() -> None:
    figures = {
        "poll_economy": {"simulated": polls.simulated(noisy_seeds=1), "emulator": []},
        "cold_start": {
            "cases": {n: {"median_ms": 10.0} for n in ("app", "trigger", "eager_baseline")},
            "app_to_baseline_ratio": 1.0,
            "trigger_to_baseline_ratio": 1.0,
        },
    }
    rows = _poll_rows(figures)

    text = table(rows)

    assert "polls, simulated: linear" in text and "PASS" in text
    assert len(text.splitlines()) == 2 + len(PROGRESS_MODES)


def _poll_rows(figures: dict[str, object]) -> list[dict[str, object]]:
    """goals() needs every figure; give it empty ones for the rest and keep the poll rows."""
    full = {
        "first_invocation": {
            "import_ms": 0.0,
            "first_invocation_ms": 0.0,
            "cold_total_ms": 0.0,
            "second_invocation_ms": 0.0,
            "started_each": True,
            "runs": [],
        },
        "warm_per_target": [],
        "throughput": [],
        "fanout": [],
        "slack": {
            "started_replies": 1,
            "replies": 1,
            "status_codes": [200],
            "spawn_to_reply_ms": 0.0,
            "interpreter_ms": 0.0,
            "runs": [],
            "import_ms": 0.0,
            "first_invocation_ms": 0.0,
            "warm_median_ms": 0.0,
            "warm_ms": [0.0],
        },
        "memory": {"bare_interpreter_mb": 0.0, "peak_rss_mb": 0.0, "peak_rss_after_import_mb": 0.0, "started": 0},
        **figures,
    }
    return [r for r in goals(full) if str(r["name"]).startswith("polls")]
