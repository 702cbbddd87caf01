"""A virtual operation followed with the real schedule: `simulate_polls` and the progress curves it replays.

Used by the poll-economy figure (bench/polls.py) and the schedule's tests; it lives in bench/ because nothing
deployed needs it. `simulate_polls` drives `backups.schedule.next_delay` exactly as the follow-up does (the ticket's
progress window updated after every check) and reports how many `Operation.Get` calls the backup cost and how
late its end was noticed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from settings import Settings

ProgressMode = Literal["linear", "integer", "noisy", "startup", "jumps", "accelerating", "none"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("linear", "integer", "noisy", "startup", "jumps", "accelerating", "none")


def progress_curve(duration_s: float, mode: str, *, seed: int = 0) -> Callable[[float], float | None]:
    """What the virtual operation reports as progressPercentage `t` seconds after its start.

    - linear: exact, 100 * t / duration
    - integer: linear, rounded down to whole percent
    - noisy: the rate varies +-40% between 20 stretches of the run (seeded), one decimal
    - startup: 0% for the first 15% of the run, then linear, whole percent
    - jumps: linear but reported in steps of 10 points (0, 10, 20 ...)
    - accelerating: 100 * (t / duration)^2 (slow start, fast end), whole percent
    - none: never reported
    """
    d = float(duration_s)
    if mode == "linear":
        return lambda t: 100.0 * t / d
    if mode == "integer":
        return lambda t: float(math.floor(100.0 * t / d))
    if mode == "noisy":
        rng = random.Random(seed)
        weights = [rng.uniform(0.6, 1.4) for _ in range(20)]
        total = sum(weights)
        cumulative = [0.0]
        for w in weights:
            cumulative.append(cumulative[-1] + w / total)

        def noisy(t: float) -> float:
            x = min(max(t / d, 0.0), 1.0) * 20
            i = min(int(x), 19)
            share = cumulative[i] + (cumulative[i + 1] - cumulative[i]) * (x - i)
            return math.floor(1000.0 * share) / 10.0

        return noisy
    if mode == "startup":
        return lambda t: float(math.floor(max(0.0, (t / d - 0.15) / 0.85) * 100.0))
    if mode == "jumps":
        return lambda t: float(math.floor(10.0 * t / d) * 10)
    if mode == "accelerating":
        return lambda t: float(math.floor(100.0 * (t / d) ** 2))
    if mode == "none":
        return lambda t: None
    raise ValueError(f"unknown progress mode {mode!r}; expected one of {', '.join(PROGRESS_MODES)}")


def simulate_polls(duration_s: float, progress_mode: str, settings: Settings, *, seed: int = 0) -> tuple[int, float]:
    """Follow a virtual operation that finishes `duration_s` after it starts with this schedule.

    Returns `(polls, lag_s)`: the number of `Operation.Get` calls (the first one at the first delay, the last
    one seeing `done`), and how long after the real finish the end was noticed (infinite: the ticket timed out).
    """
    polls, lag, _ = trace_polls(duration_s, progress_mode, settings, seed=seed)
    return polls, lag


def trace_polls(
    duration_s: float, progress_mode: str, settings: Settings, *, seed: int = 0
) -> tuple[int, float, list[tuple[float, float | None]]]:
    """`simulate_polls` with the checks themselves: `(seconds since start, percent read)` of each poll."""
    from backups.handoff import FollowupTicket
    from backups.models import TriggerInfo
    from backups.schedule import first_delay, next_delay, record_progress
    from backups.target import BackupTarget

    curve = progress_curve(duration_s, progress_mode, seed=seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ticket = FollowupTicket(
        operation_id="op",
        target=BackupTarget(
            trigger=TriggerInfo(source="direct", trigger_id="simulation"),
            asked="computeInstanceId=instance",
            policy_id="policy",
            compute_instance_id="instance",
        ),
        started_at=start,
        deadline=start + timedelta(seconds=settings.followup_deadline_seconds),
    )
    t = float(first_delay(settings))
    checks: list[tuple[float, float | None]] = []
    while True:
        if t >= duration_s:
            checks.append((t, 100.0))
            return len(checks), t - duration_s, checks
        now = start + timedelta(seconds=t)
        if now > ticket.deadline:
            checks.append((t, None))
            return len(checks), math.inf, checks
        percent = curve(t)
        checks.append((t, percent))
        delay = next_delay(ticket, now, percent, settings)
        ticket = ticket.model_copy(
            update={"attempt": ticket.attempt + 1, "progress": record_progress(ticket, now, percent)}
        )
        t += delay
