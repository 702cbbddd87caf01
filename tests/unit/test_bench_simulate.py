"""bench/simulate.py: the virtual operation the poll-economy figure and the schedule's tests replay."""

from __future__ import annotations

import math

import pytest

from bench.simulate import PROGRESS_MODES, progress_curve, simulate_polls, trace_polls
from settings import Settings

DEFAULTS = Settings()


def test_unknown_progress_mode_is_refused():
    with pytest.raises(ValueError, match="unknown progress mode"):
        simulate_polls(60, "sideways", DEFAULTS)


@pytest.mark.parametrize("mode", PROGRESS_MODES)
def test_every_mode_is_simulated_and_ends_with_the_check_that_sees_done(mode):
    polls, lag, checks = trace_polls(600, mode, DEFAULTS)

    assert polls == len(checks) >= 1 and lag >= 0
    assert checks[-1][0] >= 600 and all(t < 600 for t, _ in checks[:-1])
    assert (polls, lag) == simulate_polls(600, mode, DEFAULTS)


def test_the_first_check_comes_at_the_first_delay():
    _, _, checks = trace_polls(7200, "linear", Settings(FOLLOWUP_FIRST_DELAY_SECONDS=45))
    assert checks[0][0] == 45


@pytest.mark.parametrize(
    ("mode", "t", "expected"),
    [
        ("linear", 360, 5.0),
        ("integer", 71, 0.0),
        ("integer", 72, 1.0),
        ("startup", 1000, 0.0),
        ("jumps", 1439, 10.0),
        ("accelerating", 3600, 25.0),
        ("none", 3600, None),
    ],
)
def test_progress_curves_report_what_their_docstring_says(mode, t, expected):
    assert progress_curve(7200, mode)(t) == expected


def test_noisy_progress_is_seeded_monotonic_and_ends_near_100():
    curve = progress_curve(7200, "noisy", seed=3)
    readings = [curve(t) for t in range(0, 7201, 60)]
    assert readings == [progress_curve(7200, "noisy", seed=3)(t) for t in range(0, 7201, 60)]
    assert readings != [progress_curve(7200, "noisy", seed=4)(t) for t in range(0, 7201, 60)]
    assert readings == sorted(readings) and readings[0] == 0.0 and readings[-1] >= 99.9


def test_a_backup_past_the_deadline_times_out():
    polls, lag = simulate_polls(7200, "linear", Settings(FOLLOWUP_DEADLINE_SECONDS=3600))
    assert math.isinf(lag) and polls >= 1
