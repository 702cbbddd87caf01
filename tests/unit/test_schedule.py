"""The poll schedule: bounds of `next_delay`, the estimate, and its polls and lags (replayed by bench/simulate.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backups import schedule
from backups.handoff import FollowupTicket, ProgressSample
from backups.models import TriggerInfo
from backups.schedule import (
    estimate_remaining,
    first_delay,
    next_delay,
    record_progress,
    retry_delay,
)
from backups.target import BackupTarget
from bench.simulate import simulate_polls, trace_polls
from settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULTS = Settings()
MINUTE, TEN_MINUTES, TWO_HOURS = 60, 600, 7200
SEEDS = range(20)


def ticket(
    *, deadline_s: float = 86400, samples: list[tuple[float, float]] | None = None, attempt: int = 1
) -> FollowupTicket:
    """A ticket checked `attempt` times before (1 by default: past the first check's special growth)."""
    return FollowupTicket(
        operation_id="op1",
        target=BackupTarget(
            trigger=TriggerInfo(source="direct", trigger_id="t1"),
            asked="computeInstanceId=vm1",
            policy_id="pol1",
            compute_instance_id="vm1",
        ),
        started_at=START,
        deadline=START + timedelta(seconds=deadline_s),
        attempt=attempt,
        progress=[ProgressSample(at=START + timedelta(seconds=t), percent=p) for t, p in samples or []],
    )


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def worst(duration: int, mode: str) -> tuple[int, float]:
    seeds = SEEDS if mode == "noisy" else [0]
    runs = [simulate_polls(duration, mode, DEFAULTS, seed=s) for s in seeds]
    return max(p for p, _ in runs), max(lag for _, lag in runs)


# --- the simulator: the targets ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["linear", "integer", "noisy"])
def test_two_hours_with_progress_costs_at_most_12_polls_and_lag_within_10_percent(mode):
    polls, lag = worst(TWO_HOURS, mode)
    assert polls <= 12
    assert lag <= 0.10 * TWO_HOURS


@pytest.mark.parametrize("mode", ["integer", "noisy"])
@pytest.mark.parametrize("duration", range(50 * MINUTE, TWO_HOURS + 1, 10 * MINUTE))
def test_backups_up_to_two_hours_with_whole_percent_or_noisy_progress_cost_at_most_12_polls(mode, duration):
    polls, lag = worst(duration, mode)
    assert polls <= 12
    assert lag <= 0.10 * duration


@pytest.mark.parametrize("mode", ["linear", "integer", "noisy"])
@pytest.mark.parametrize("duration", [MINUTE, TEN_MINUTES, TWO_HOURS])
def test_lag_within_10_percent_with_progress(mode, duration):
    _, lag = worst(duration, mode)
    # Under a minute the minimum delay (10 s) is the floor of any lag.
    assert lag <= max(0.10 * duration, DEFAULTS.followup_min_delay_seconds)


def test_whole_percent_progress_sees_the_first_percent_of_a_two_hour_run_by_the_third_check():
    # 1% takes 72 s: checks at 30, 60 and 87 s (the second at twice the first) instead of 30, 44, 64 and 93 s.
    _, _, checks = trace_polls(TWO_HOURS, "integer", DEFAULTS)
    assert [t for t, _ in checks[:3]] == [30, 60, 87]
    assert [p for _, p in checks[:3]] == [0.0, 0.0, 1.0]


def test_a_lone_first_percent_after_zeros_keeps_the_next_step_short():
    # The start-up protection: 0, 0, 1% at 30, 60, 87 s also fits a ~9-minute run that idled for 80 s, so the
    # next check comes within a few minutes, not at the 2-hour estimate.
    t = ticket(samples=[(30, 0.0), (60, 0.0)], attempt=2)
    assert next_delay(t, at(87), 1.0, DEFAULTS) <= 300
    polls, lag = worst(TEN_MINUTES, "startup")
    assert lag <= 0.10 * TEN_MINUTES and polls <= 10


@pytest.mark.parametrize("mode", ["startup", "jumps", "accelerating"])
@pytest.mark.parametrize("duration", [MINUTE, TEN_MINUTES, TWO_HOURS])
def test_irregular_progress_stays_bounded(mode, duration):
    polls, lag = worst(duration, mode)
    assert polls <= 20
    assert lag <= max(0.15 * duration, DEFAULTS.followup_min_delay_seconds)


@pytest.mark.parametrize("duration", [MINUTE, TEN_MINUTES, TWO_HOURS])
def test_without_progress_the_geometric_fallback_bounds_polls_and_lag(duration):
    polls, lag = simulate_polls(duration, "none", DEFAULTS)
    assert polls <= 20
    # Geometric growth 1.45: the lag is at most 45% of the elapsed time, and never more than one 900 s step.
    assert lag <= min((schedule.GROWTH - 1) * duration, 900)


def test_short_backups_are_noticed_within_few_polls():
    assert simulate_polls(MINUTE, "linear", DEFAULTS)[0] <= 3
    assert simulate_polls(TEN_MINUTES, "linear", DEFAULTS)[0] <= 6


def test_a_backup_longer_than_the_deadline_is_never_polled_past_it():
    short = Settings(FOLLOWUP_DEADLINE_SECONDS=3600)
    polls, lag = simulate_polls(TWO_HOURS, "linear", short)
    assert math.isinf(lag)  # the ticket times out
    assert polls <= 12


# --- next_delay --------------------------------------------------------------------------------------------


def test_no_progress_grows_geometrically():
    assert next_delay(ticket(), at(100), None, DEFAULTS) == 45
    assert next_delay(ticket(), at(1000), None, DEFAULTS) == 450


def test_without_progress_the_second_check_comes_at_twice_the_first():
    assert next_delay(ticket(attempt=0), at(30), None, DEFAULTS) == 30
    assert next_delay(ticket(attempt=0), at(30), 0.0, DEFAULTS) == 30
    assert next_delay(ticket(attempt=1), at(60), None, DEFAULTS) == 27


def test_zero_progress_tells_nothing():
    assert next_delay(ticket(), at(100), 0.0, DEFAULTS) == 45


def test_delay_is_capped_by_the_queue_limit_and_the_configured_maximum():
    assert next_delay(ticket(), at(50_000), None, DEFAULTS) == 900
    assert next_delay(ticket(), at(50_000), None, Settings(FOLLOWUP_MAX_DELAY_SECONDS=300)) == 300


def test_delay_never_below_the_minimum():
    assert next_delay(ticket(), at(1), None, DEFAULTS) == DEFAULTS.followup_min_delay_seconds
    # About to finish: still the minimum, not 0.
    t = ticket(samples=[(100, 80.0), (150, 90.0)])
    assert next_delay(t, at(190), 99.9, DEFAULTS) == DEFAULTS.followup_min_delay_seconds
    # Later in a long run the floor is 5% of the elapsed time (few polls while waiting for the very end).
    t = ticket(samples=[(1000, 80.0), (2000, 90.0)])
    assert next_delay(t, at(3000), 99.9, DEFAULTS) == 150


def test_steady_progress_near_the_end_aims_just_past_the_estimated_finish():
    # 1%/10 s, at 90% after 900 s: the finish is 100 s away.
    t = ticket(samples=[(700, 70.0), (800, 80.0)])
    delay = next_delay(t, at(900), 90.0, DEFAULTS)
    assert 100 <= delay <= 100 * schedule.AIM_FACTOR + 2


def test_steady_progress_far_from_the_end_stops_before_it_on_the_safe_side():
    # At 50% after 500 s the estimate (500 s left) could be off: check again before it, past the earliest finish.
    t = ticket(samples=[(300, 30.0), (400, 40.0)])
    delay = next_delay(t, at(500), 50.0, DEFAULTS)
    est = estimate_remaining([(300, 30.0), (400, 40.0), (500, 50.0)])
    assert est is not None and est.trusted
    assert est.earliest <= delay < est.remaining


def test_a_lone_first_reading_is_not_trusted_far():
    # 1% after 30 s would extrapolate to ~50 minutes; one reading is followed at most one elapsed time ahead.
    assert next_delay(ticket(), at(30), 1.0, DEFAULTS) <= 30


def test_delay_lands_at_most_a_little_past_the_deadline():
    t = ticket(deadline_s=1000)
    assert next_delay(t, at(900), None, DEFAULTS) <= 100 + schedule.DEADLINE_GRACE_SECONDS
    # Past the deadline already: the minimum (the next check ends the ticket).
    assert next_delay(t, at(1100), None, DEFAULTS) == DEFAULTS.followup_min_delay_seconds


@hsettings(max_examples=300, deadline=None)
@given(
    elapsed=st.floats(min_value=0, max_value=200_000),
    readings=st.lists(st.tuples(st.floats(1, 100_000), st.floats(0, 100)), max_size=4),
    progress=st.one_of(st.none(), st.floats(-5, 120)),
    deadline=st.floats(60, 200_000),
)
def test_delay_is_always_within_bounds(elapsed, readings, progress, deadline):
    readings = sorted(readings)
    t = ticket(deadline_s=deadline, samples=[(s, p) for s, p in readings if s < elapsed])
    now = at(elapsed)
    delay = next_delay(t, now, progress, DEFAULTS)
    assert DEFAULTS.followup_min_delay_seconds <= delay <= 900
    if delay > DEFAULTS.followup_min_delay_seconds:
        assert now + timedelta(seconds=delay) <= t.deadline + timedelta(seconds=schedule.DEADLINE_GRACE_SECONDS + 1)


# --- pieces ------------------------------------------------------------------------------------------------


def test_record_progress_keeps_the_last_readings():
    t = ticket(samples=[(i * 10, float(i)) for i in range(1, 5)])
    samples = record_progress(t, at(100), 10.0)
    assert len(samples) == schedule.WINDOW
    assert samples[-1].percent == 10.0 and samples[0].percent == 2.0
    # No reading: unchanged.
    assert record_progress(t, at(100), None) == t.progress


def test_estimate_of_linear_progress_is_trusted_and_exact():
    est = estimate_remaining([(100, 10.0), (200, 20.0), (300, 30.0)])
    assert est is not None and est.trusted
    assert est.remaining == pytest.approx(700)
    assert est.earliest < est.remaining


def test_estimate_of_rounded_small_moves_is_not_trusted():
    est = estimate_remaining([(64, 0.0), (93, 1.0)])
    assert est is not None and not est.trusted


def test_estimate_is_none_when_nothing_moves():
    assert estimate_remaining([]) is None
    assert estimate_remaining([(10, 0.0), (20, 0.0)]) is None
    assert estimate_remaining([(10, 5.0), (20, 5.0), (30, 5.0)]) is None


def test_retry_delay_backs_off_and_is_capped():
    assert [retry_delay(n, DEFAULTS) for n in (1, 2, 3, 4, 5, 6, 10)] == [15, 30, 60, 120, 240, 300, 300]


def test_first_delay_follows_the_setting():
    assert first_delay(DEFAULTS) == 30
    assert first_delay(Settings(FOLLOWUP_FIRST_DELAY_SECONDS=0)) == DEFAULTS.followup_min_delay_seconds
