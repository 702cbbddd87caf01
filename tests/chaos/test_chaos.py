"""Proof under load and faults: 210 backups through the local platform while everything misbehaves.

Per platform shape ("aws": SQS Records and batchItemFailures; "yandex": Message Queue events, a failed batch
comes back whole), one chaos round (tests/chaos/harness.py has the details):

- 210 targets in the emulator: three label-selector requests (70 and 50 instances fan out through the request
  queue, 25 execute inline), one computeInstanceIds request (12) and 53 single-instance messages; opted-out
  instances in the groups; 4 targets with the agent offline (refused: failed result, no backup) and 4 whose backup
  fails half-way (failed result); backups of 1-3 s (emulator time scale 100), FOLLOWUP_FIRST/MIN_DELAY 1 s;
- 20% of the emulator's answers are 429, 503, dropped connections or dropped responses (seeded fault rule);
- 10% of the messages delivered twice (LocalPlatform's `duplicate` hook);
- invocations killed: at start (the `kill` hook), mid-way (at the N-th API attempt: the handler wrapped with a
  dying context, so e.g. backups are started but their tickets never sent), after the work but before the batch
  is settled (every side effect happens twice), and at a 6 s function timeout;
- poison on purpose: unreadable request bodies (not JSON, an array, a bad fan-out message, a bad instance id,
  an empty body, a body over MAX_BODY_BYTES) and malformed follow-up tickets.

It passes when every target ends in exactly one distinct result event, no instance is backed up twice for one
trigger, both work queues are empty, the unreadable requests ended in one failed result each (consumed, as
handlers/trigger.py documents), and the dead-letter queues hold exactly the malformed tickets (reported failed
until the redrive policy moved them, as handlers/followup.py documents).

CHAOS_SEED=<any text> picks another seed (default 1729); CHAOS_VERBOSE=1 prints progress every 5 s.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosConfig, RoundResult, chaos_seed


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["aws", "yandex"])
def test_chaos_round_keeps_the_contract(platform: str, chaos_round: Callable[[ChaosConfig], RoundResult]) -> None:
    outcome = chaos_round(ChaosConfig(platform=platform, seed=chaos_seed()))
    print(outcome.summary())
    assert len(outcome.scenario.targets) >= 200
    # the chaos did happen
    calls = outcome.observed.api_calls
    assert 0.15 <= 1 - calls[""] / sum(calls.values()) <= 0.25, calls
    stats = outcome.observed.stats
    assert stats["duplicated"] > 0
    for kind in ("killed at start", "killed mid-way", "killed after the work"):
        assert sum(n for key, n in stats.items() if key.startswith(kind)) > 0, f"nothing {kind}"
    assert not outcome.violations, outcome.summary()
