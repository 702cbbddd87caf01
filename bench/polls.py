"""Poll economy: how many Operation.Get calls a backup costs, and how late its end is noticed.

Two measurements of the same schedule (`backups.schedule.next_delay`, default settings: first check at 30 s,
delays 10..900 s):
- `simulated()`: `bench.simulate.simulate_polls` for every progress mode it supports and three durations
  (noisy: the worst of `noisy_seeds` seeds, as the schedule's docstring reports it);
- `on_emulator()`: the real follow-up (`backups.followup.follow`) against the emulator through the real client,
  with a manual clock moved by each delay the follow-up chose, so a 2-hour backup takes well under a second.
  It counts the Operation.Get calls in the emulator's call log, not in our own loop.

Goals (issues 4 and 13): at most 12 polls for a 2-hour backup noticed within 10% of its duration; shorter backups
noticed within 10% or the minimum delay (10 s), whichever is longer.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

DURATIONS: dict[str, int] = {"1 min": 60, "10 min": 600, "2 h": 7200}
MAX_POLLS_2H = 12
MAX_LAG_SHARE = 0.10
MIN_DELAY_S = 10.0  # FOLLOWUP_MIN_DELAY_SECONDS's default
GOAL = "2 h: <= 12 polls, lag <= 10%; shorter: lag <= max(10%, 10 s)"
FOLLOWUP_QUEUE = "https://queue.local/followups"  # never contacted: the bench passes its own queue


def _settings(**env: str) -> Any:
    from settings import Settings

    return Settings.model_validate({"FOLLOWUP_QUEUE_URL": FOLLOWUP_QUEUE, **env})


def judge(duration_s: int, polls: int, lag_s: float, min_delay_s: float = MIN_DELAY_S) -> bool:
    """The goals for one backup: 2 hours, at most 12 polls and a lag within 10% (issue 13); shorter backups, a lag
    within 10% or the minimum delay, whichever is longer (no check comes sooner than FOLLOWUP_MIN_DELAY_SECONDS
    after the one before, so a 1-minute backup can be noticed up to 10 s late: issue 4's documented limit)."""
    if not math.isfinite(lag_s):
        return False
    if duration_s >= DURATIONS["2 h"]:
        return polls <= MAX_POLLS_2H and lag_s <= MAX_LAG_SHARE * duration_s
    return lag_s <= max(MAX_LAG_SHARE * duration_s, min_delay_s)


def simulated(noisy_seeds: int = 30) -> list[dict[str, Any]]:
    from bench.simulate import PROGRESS_MODES, simulate_polls

    settings = _settings()
    rows = []
    for mode in PROGRESS_MODES:
        for label, duration in DURATIONS.items():
            seeds = range(noisy_seeds) if mode == "noisy" else range(1)
            results = [simulate_polls(duration, mode, settings, seed=seed) for seed in seeds]
            polls = max(p for p, _ in results)
            lag = max(lag for _, lag in results)
            rows.append(
                {
                    "mode": mode,
                    "duration": label,
                    "duration_s": duration,
                    "polls": polls,
                    "lag_s": round(lag, 1),
                    "lag_share": round(lag / duration, 4) if math.isfinite(lag) else None,
                    "seeds": len(seeds),
                    "pass": judge(duration, polls, lag),
                }
            )
    return rows


class _EmulatorClock:
    """The function's Clock reading the emulator's manual clock (both sides agree on `now`)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


class _Queue:
    """Keeps what the follow-up sends back (the ticket is also in the outcome)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        self.sent.append((body, delay_seconds))
        return str(len(self.sent))

    def send_many(self, queue_url: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> list[str]:
        return [self.send(queue_url, body, delay_seconds=delay_seconds) for body in bodies]


class _Sink:
    name = "bench"

    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


def follow_on_emulator(duration_s: int, progress_mode: str = "number", max_polls: int = 200) -> dict[str, Any]:
    """Start one backup of `duration_s` on a fresh emulator and follow it to its end; polls, lag, status."""
    from backups.followup import follow
    from backups.handoff import FollowupTicket
    from backups.models import TriggerInfo
    from backups.schedule import first_delay
    from backups.target import BackupTarget
    from local.emulator import EmulatorConfig, ManualClock, start_emulator
    from local.emulator.seed import INSTANCE_PROD_DB, POLICY_DAILY
    from ycloud.client import YandexCloud

    clock = ManualClock()
    config = EmulatorConfig(host="127.0.0.1", port=0, clock=clock, progress_mode=progress_mode)
    with start_emulator(config) as emu:
        emu.state.set_backup_duration(INSTANCE_PROD_DB, float(duration_s))
        settings = _settings(YC_API_ENDPOINT=emu.url, YC_IAM_TOKEN=emu.token)
        cloud = YandexCloud.from_settings(settings)
        fn_clock = _EmulatorClock(clock)
        operation = cloud.backup_policies.execute(POLICY_DAILY, INSTANCE_PROD_DB, idempotency_key=str(uuid.uuid4()))
        started = clock()
        ticket = FollowupTicket(
            operation_id=operation.id,
            target=BackupTarget(
                trigger=TriggerInfo(source="bench", trigger_id=f"bench-polls-{duration_s}"),
                asked=f"computeInstanceId={INSTANCE_PROD_DB}",
                policy_id=POLICY_DAILY,
                compute_instance_id=INSTANCE_PROD_DB,
            ),
            started_at=fn_clock.now(),
            deadline=fn_clock.now() + timedelta(seconds=settings.followup_deadline_seconds),
        )
        queue, sink = _Queue(), _Sink()
        emu.state.clear_logs()
        clock.advance(first_delay(settings))
        status, loops = "not finished", 0
        for loops in range(1, max_polls + 1):  # noqa: B007  (the count is the result)
            outcome = follow(ticket, cloud=cloud, queue=queue, settings=settings, clock=fn_clock, sinks=[sink])
            if outcome.action == "finished":
                status = outcome.event.data.status if outcome.event is not None else "finished"
                break
            if outcome.action != "rescheduled" or outcome.delay_seconds is None:
                status = f"unexpected {outcome.action}: {outcome.reason}"
                break
            ticket = outcome.ticket
            clock.advance(outcome.delay_seconds)
        lag = clock() - started - duration_s
        gets = sum(1 for c in emu.state.call_log if c["path"].startswith("/operations/"))
    return {
        "progress_mode": progress_mode,
        "duration_s": duration_s,
        "polls": gets,
        "follow_calls": loops,
        "lag_s": round(lag, 1),
        "lag_share": round(lag / duration_s, 4),
        "status": status,
        "results_emitted": len(sink.events),
    }


def on_emulator(modes: Sequence[tuple[str, str]] = (("number", "linear"), ("none", "none"))) -> list[dict[str, Any]]:
    """For each (emulator progress mode, the simulator mode it corresponds to) and duration: emulator vs sim."""
    from bench.simulate import simulate_polls

    settings = _settings()
    rows = []
    for emu_mode, sim_mode in modes:
        for label, duration in DURATIONS.items():
            row = follow_on_emulator(duration, emu_mode)
            sim_polls, sim_lag = simulate_polls(duration, sim_mode, settings)
            row.update(
                {
                    "duration": label,
                    "simulator_mode": sim_mode,
                    "simulator_polls": sim_polls,
                    "simulator_lag_s": round(sim_lag, 1),
                    "pass": row["status"] == "succeeded" and judge(duration, row["polls"], row["lag_s"]),
                }
            )
            rows.append(row)
    return rows


def measure() -> dict[str, Any]:
    return {"simulated": simulated(), "emulator": on_emulator()}
