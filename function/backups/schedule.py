"""When to look at a running operation again: `next_delay` (bench/simulate.py replays it to measure it).

Goal: a 2-hour backup costs at most 12 `Operation.Get` calls, and its end is noticed within 10% of its duration.
A fixed geometric schedule cannot do both (12 polls over 2 hours need a growth ratio near 1.45, so up to ~45%
lag), so the schedule aims at the finish estimated from how `progressPercentage` moves between polls, and falls
back to a geometric schedule only while progress tells nothing (the docs don't confirm the service fills it in).

How a delay is chosen, `elapsed` being the time since the operation started (`ticket.started_at`):

1. Readings: the last `WINDOW` progress readings kept on the ticket plus the current one; the start counts as a
   0% reading while the window holds fewer than three. Whole-percent readings are taken as rounded (every
   difference may be off by one point).
2. No usable progress (absent, 0, or not moving over the window): geometric, next check at `elapsed * GROWTH`;
   after the first check (the early one that catches a backup failing at once) at `elapsed * FIRST_GROWTH`.
   Whole-percent progress reads 0 for the first 72 s of a 2-hour run: checks at 30, 60 and 87 s see the first
   percent by the third check, where 30, 44, 64 and 93 s needed four, and the fourth was the 13th poll.
3. Otherwise two times are estimated: `remaining` from the average rate over the window (the best guess) and
   `earliest`, the soonest the operation could end if its rate grew `RATE_HEADROOM` past the fastest rate the
   readings allow. The check is aimed `AIM_FACTOR` past `remaining`, but never later than `earliest` plus
   `LAG_BUDGET` of the run: if the estimate is wrong by less than the headroom, the lag stays within 5%.
4. Trust: when the newest interval's rate agrees with the older readings' rate (within `RATE_TOLERANCE`, both
   measured well enough for rounding not to matter) progress is linear-ish and a step may reach
   `TRUSTED_HORIZON` x elapsed ahead. Without that agreement (progress just started, sped up, jumped, or the
   readings are too coarse), `earliest` is also bounded by what would be left if progress were quadratic in time
   from where it began to move (the last 0% reading, or the start), and a lone first reading is followed at most
   `SINGLE_READING_HORIZON` x elapsed ahead: a start-up phase or an accelerating run cannot push a check far past
   the end.
5. Bounds: at least `max(min_delay, FLOOR_FRACTION * elapsed)` (few polls while waiting for the very end), at
   most the configured maximum and the queue's 900-second limit, and at most `DEADLINE_GRACE_SECONDS` past the
   ticket's deadline (the check after the deadline ends the ticket as timed out).

Simulated with the default settings (first check at 30 s, delays 10..900 s), worst case over 30 seeds for noisy
(`make bench`, figure 5, prints the same table):

    progress       1 minute               10 minutes             2 hours
    linear         3 polls, lag  2 s      5 polls, lag   3 s     11 polls, lag  19 s (0.3%)
    integer        3 polls, lag  2 s      5 polls, lag   5 s     12 polls, lag  34 s (0.5%)
    noisy          3 polls, lag  7 s      7 polls, lag  29 s     12 polls, lag 355 s (4.9%)
    startup        3 polls, lag  4 s      8 polls, lag   5 s     17 polls, lag  13 s (0.2%)
    jumps          3 polls, lag  6 s      6 polls, lag  15 s     17 polls, lag 343 s (4.8%)
    accelerating   2 polls, lag  0 s      4 polls, lag  11 s     17 polls, lag 280 s (3.9%)
    none           2 polls, lag  0 s      9 polls, lag 223 s     18 polls, lag 712 s (9.9%)

Every whole-percent or noisy backup from 50 minutes to 2 hours costs at most 12 polls with a lag under 10%.

Limits, on purpose: with whole-percent readings the lone reading "1%" after a few "0%" looks exactly like a
short run after a start-up phase (0, 0, 0, 1 at 30, 44, 64, 93 s fits a 2-hour linear run and a 10-minute run
that idles for 85 s), so the step after it stays short (the start-up protection of point 4). Without progress
the lag is the geometric one: a backup ending between the first and second check is seen up to one first delay
(30 s) late, later up to 45% of the elapsed time while delays are short, at most 900 s. Under a minute, the
minimum delay (10 s) dominates the lag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from backups.handoff import FollowupTicket, ProgressSample

if TYPE_CHECKING:
    from settings import Settings

QUEUE_MAX_DELAY_SECONDS = 900  # SQS / Yandex Message Queue DelaySeconds limit
GROWTH = 1.45  # no usable progress: next check at elapsed * GROWTH (lag at most 45% of the elapsed time)
FIRST_GROWTH = 2.0  # ... except after the first check: the second one comes at twice its elapsed time
FLOOR_FRACTION = 0.05  # never check again sooner than 5% of the elapsed time (bounds polls near the end)
AIM_FACTOR = 1.03  # aim 3% past the estimated remaining time ...
AIM_PAD_SECONDS = 1.0  # ... and a second more, so rounding never lands just before it
RATE_TOLERANCE = 0.25  # two rate measurements within 25% of each other agree
RATE_HEADROOM = 0.4  # the earliest finish assumes the rate may still grow by 40% over the fastest seen
LAG_BUDGET = 0.05  # a step may pass the earliest finish by 5% of the (estimated) run
SINGLE_READING_HORIZON = 1.0  # a lone first reading is followed at most 1x the elapsed time ahead
TRUSTED_HORIZON = 4.0  # even a trusted estimate is followed at most 4x the elapsed time ahead
WINDOW = 4  # progress readings kept on the ticket
DEADLINE_GRACE_SECONDS = 5  # the last check may land this much past the deadline (then the ticket times out)


@dataclass(frozen=True)
class Estimate:
    """What the progress readings say about the time left, in seconds.

    - `remaining`: from the average rate over the window; the best guess, what a check aims at.
    - `earliest`: from the fastest rate the readings allow (rounding included) grown by `RATE_HEADROOM`; a check
      may land past it by `LAG_BUDGET` of the run at most.
    - `limit`: the longest step the readings justify. Trusted (the newest interval's rate agrees with the older
      readings', both measured to within the tolerance): `TRUSTED_HORIZON` x elapsed. Otherwise what would be
      left if progress were quadratic in time from where it started moving (the last 0% reading, or the start):
      a slow start, a start-up phase or an accelerating run then cannot make a check land far too late.
    """

    remaining: float
    earliest: float
    limit: float
    trusted: bool


def first_delay(settings: Settings) -> int:
    """The delay of a new ticket's first check (the trigger side sends the ticket with it)."""
    return _clamp(settings.followup_first_delay_seconds, settings)


def record_progress(ticket: FollowupTicket, now: datetime, percent: float | None) -> list[ProgressSample]:
    """The ticket's readings with the current one appended (when there is one), trimmed to the last `WINDOW`."""
    samples = list(ticket.progress)
    if percent is not None and not (samples and samples[-1].at == now):
        samples.append(ProgressSample(at=now, percent=float(percent)))
    return samples[-WINDOW:]


def estimate_remaining(points: Sequence[tuple[float, float]]) -> Estimate | None:
    """Estimate the time left from `(seconds since start, percent)` readings, oldest first, the last one now.

    None when progress tells nothing: no reading, the last reading is 0, or nothing moved in the window.
    """
    pts = [(t, min(max(p, 0.0), 100.0)) for t, p in points if t > 0]
    if not pts or pts[-1][1] <= 0:
        return None
    t_now, p_now = pts[-1]
    left = 100.0 - p_now
    if left <= 0:
        return Estimate(0.0, 0.0, 0.0, True)
    # Whole-percent readings carry up to 1 point of rounding in every difference.
    quantum = 1.0 if all(float(p).is_integer() for _, p in pts) else 0.0
    # The operation's start counts as a 0% reading while the window holds fewer than three.
    base = [(0.0, 0.0), *pts] if len(pts) < 3 else pts
    (t_first, p_first), (t_prev, p_prev) = base[0], base[-2]
    new = _Rate(p_now - p_prev, t_now - t_prev, quantum)
    overall = _Rate(p_now - p_first, t_now - t_first, quantum)
    fastest = max(new.bounds()[1], overall.bounds()[1])
    if overall.value <= 0 or fastest <= 0:
        return None  # stalled over the whole window
    old = _Rate(p_prev - p_first, t_prev - t_first, quantum)
    trusted = len(base) >= 3 and new.precise and old.precise and new.agrees_with(old)
    earliest = left / (fastest * (1.0 + RATE_HEADROOM))
    limit = math.inf
    if trusted:
        limit = TRUSTED_HORIZON * t_now
    else:
        # What would be left if progress were quadratic in time (its rate growing steadily) from where it began
        # to move: the last 0% reading, or the start.
        moving_since = max((t for t, p in pts if p <= 0), default=0.0)
        earliest = min(earliest, (t_now - moving_since) * (1.0 / math.sqrt(p_now / 100.0) - 1.0))
        if len(pts) == 1:
            # A lone first reading: progress may have begun any time since the start.
            limit = SINGLE_READING_HORIZON * t_now
    return Estimate(remaining=left / overall.value, earliest=earliest, limit=limit, trusted=trusted)


@dataclass(frozen=True)
class _Rate:
    """Progress over an interval: `delta` percentage points in `seconds`, readings rounded to `quantum`."""

    delta: float
    seconds: float
    quantum: float

    @property
    def value(self) -> float:
        return self.delta / self.seconds if self.seconds > 0 else 0.0

    @property
    def precise(self) -> bool:
        """Moved, and rounding changes the rate by less than the tolerance."""
        return self.delta > 0 and self.quantum <= RATE_TOLERANCE * self.delta

    def bounds(self) -> tuple[float, float]:
        if self.seconds <= 0:
            return (0.0, 0.0)
        slack = self.quantum / self.seconds
        return (max(0.0, self.value - slack), self.value + slack)

    def agrees_with(self, other: _Rate) -> bool:
        lo, hi = self.bounds()
        other_lo, other_hi = other.bounds()
        return lo <= other_hi * (1 + RATE_TOLERANCE) and other_lo <= hi * (1 + RATE_TOLERANCE)


def next_delay(ticket: FollowupTicket, now: datetime, progress: float | None, settings: Settings) -> int:
    """Seconds until the next check of `ticket`'s operation, `progress` being the percentage read just now.

    `ticket.progress` holds the earlier readings (not yet the current one). The result is within
    `[min_delay, min(max_delay, 900)]` and lands at most `DEADLINE_GRACE_SECONDS` past the ticket's deadline.
    """
    elapsed = max((now - ticket.started_at).total_seconds(), 1.0)
    estimate = None
    if progress is not None:
        samples = record_progress(ticket, now, progress)
        estimate = estimate_remaining([((s.at - ticket.started_at).total_seconds(), s.percent) for s in samples])
    if estimate is None:
        delay = ((FIRST_GROWTH if ticket.attempt == 0 else GROWTH) - 1.0) * elapsed
    else:
        aim = estimate.remaining * AIM_FACTOR + AIM_PAD_SECONDS
        safe = estimate.earliest + LAG_BUDGET * (elapsed + estimate.earliest)
        # When stopping at `safe` would leave less than one minimum delay before the aimed finish, the check
        # after it could not come sooner than that anyway: aim directly.
        delay = aim if aim <= safe + settings.followup_min_delay_seconds else safe
        delay = min(delay, estimate.limit)
    delay = max(delay, FLOOR_FRACTION * elapsed)
    to_deadline = (ticket.deadline - now).total_seconds() + DEADLINE_GRACE_SECONDS
    delay = min(delay, max(to_deadline, 0.0))
    return _clamp(delay, settings)


def retry_delay(transient_errors: int, settings: Settings) -> int:
    """Delay before re-checking after `transient_errors` consecutive transient failures of `Operation.Get`.

    15 s, 30 s, 60 s ... capped at 5 minutes: short enough that the end of the backup is not noticed much later,
    long enough that an API outage does not turn every ticket into a busy loop.
    """
    n = max(1, transient_errors)
    return _clamp(min(15.0 * 2 ** (n - 1), 300.0), settings)


def _clamp(delay: float, settings: Settings) -> int:
    upper = min(settings.followup_max_delay_seconds, QUEUE_MAX_DELAY_SECONDS)
    lower = min(max(settings.followup_min_delay_seconds, 1), upper)
    return int(min(max(math.ceil(delay), lower), upper))


# --- how long a message the function wrote for itself may live ---------------------------------------------

QUEUE_DWELL_SECONDS = 3600  # a message may wait this long in a queue before it is read (a backlog, a throttle)
REDELIVERY_WAIT_SECONDS = 900  # and this long per try before it comes back (the queues' visibility timeout)


def message_max_age(settings: Settings) -> timedelta:
    """The oldest a signed fan-out, retry or redelivery message may be, and how long past its deadline a follow-up
    ticket may still be read: HANDOFF_MAX_AGE_SECONDS, else longer than the longest legitimate path,
    REDELIVERY_MAX_ATTEMPTS tries, each after the largest retry delay and a visibility timeout, plus a queue's
    dwell (defaults: 5 x (240 + 900) + 3600 = 9300 s). HANDOFF_MAX_AGE_SECONDS may only raise it: a shorter age
    would refuse legitimate retries and lose their results."""
    attempts = settings.redelivery_max_attempts
    largest = retry_delay(attempts, settings)  # retry_delay grows with the attempt
    derived = attempts * (largest + REDELIVERY_WAIT_SECONDS) + QUEUE_DWELL_SECONDS
    return timedelta(seconds=max(derived, settings.handoff_max_age_seconds or 0))
