"""The chaos checker can fail: sabotage what makes the contract hold, run a smaller round, expect the violations.

- Idempotency keys made random (a fresh uuid4 per Execute): a redelivered or duplicated request starts the backup
  again, so the execute log shows a second backup for one trigger.
- Result event ids made random: a ticket delivered twice (or a redelivered finish) yields a second, different
  event for the same target, so a consumer deduplicating by id would see two results.

Plus the checker on hand-made observations, for the violations a healthy round never shows.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from tests.chaos.harness import (
    POISON_TICKETS,
    ChaosConfig,
    Observed,
    RoundResult,
    Scenario,
    Target,
    chaos_seed,
    check,
)


def guard_config(platform: str) -> ChaosConfig:
    """Small and hostile: short backups (a redelivery comes after the first backup has finished), more duplicates
    and kills after the work (each one a second delivery), no poison (nothing to wait for)."""
    return ChaosConfig(
        platform=platform,
        seed=chaos_seed(),
        label_groups=(30,),
        id_list=0,
        singles=10,
        opt_outs_per_group=1,
        offline=1,
        failing=1,
        with_poison=False,
        duplicate_rate=0.25,
        kill_after_rate=0.15,
        backup_seconds=(0.3, 0.6),
        function_timeout=4.0,
        request_visibility=4,
        followup_visibility=2,
        budget_seconds=45.0,
    )


@pytest.mark.slow
def test_random_idempotency_keys_show_second_backups(
    chaos_round: Callable[[ChaosConfig], RoundResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    import backups.target

    monkeypatch.setattr(backups.target, "idempotency_key", lambda *_: str(uuid.uuid4()))
    outcome = chaos_round(guard_config("aws"))
    print(outcome.summary())
    assert "double-backup" in outcome.kinds(), outcome.summary()


@pytest.mark.slow
def test_random_result_event_ids_show_duplicate_results(
    chaos_round: Callable[[ChaosConfig], RoundResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    import backups.target

    monkeypatch.setattr(backups.target, "result_event_id", lambda _key: str(uuid.uuid4()))
    outcome = chaos_round(guard_config("yandex"))
    print(outcome.summary())
    assert "result-duplicate" in outcome.kinds(), outcome.summary()


# --- the checker on hand-made observations -----------------------------------------------------------------------

POLICY = "cbpchaospolicy000001"


def _scenario() -> Scenario:
    scenario = Scenario(config=ChaosConfig(platform="aws"), policy_id=POLICY)
    scenario.targets = {
        "fhmone": Target("fhmone", "single", POLICY, trigger_id="m1"),
        "fhmtwo": Target("fhmtwo", "g0", POLICY, trigger_id="m2"),
    }
    scenario.opted_out = {"fhmoptout"}
    scenario.poison_requests = {"m9": "not-json"}
    scenario.poison_tickets = {"m8": "text"}
    return scenario


def _event(eid: str, instance: str | None, trigger: str, status: str = "succeeded", op: str | None = "cdg1") -> dict:
    data = {"status": status, "computeInstanceId": instance, "policyId": POLICY if instance else None}
    data |= {"operationId": op if instance else None, "triggerId": trigger}
    return {"id": eid, "type": f"cloud.yandex.backup.execute.{status}", "subject": instance, "data": data}


def _observed(**changes: object) -> Observed:
    observed = Observed(
        results=[
            _event("e1", "fhmone", "m1"),
            _event("e1", "fhmone", "m1"),  # the same event twice: fine
            _event("e2", "fhmtwo", "m2"),
            _event("e9", None, "m9", status="failed"),
        ],
        execute_log=[
            {"policyId": POLICY, "computeInstanceId": "fhmone"},
            {"policyId": POLICY, "computeInstanceId": "fhmtwo"},
        ],
        pending={"requests": {"visible": 0, "in_flight": 0, "delayed": 0}},
        dead_letter={"requests": [], "followups": [POISON_TICKETS["text"]], "results": []},
        timed_out=False,
        seconds=1.0,
        stats=Counter(),
        platform_errors=[],
        longest={},
    )
    for name, value in changes.items():
        setattr(observed, name, value)
    return observed


def test_checker_passes_a_clean_round() -> None:
    assert check(_scenario(), _observed()) == []


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"timed_out": True}, "timeout"),
        ({"pending": {"followups": {"visible": 0, "in_flight": 1, "delayed": 0}}}, "in-flight"),
        ({"results": [_event("e1", "fhmone", "m1"), _event("e2", "fhmtwo", "m2")]}, "poison-result"),
        ({"results": [_event("e2", "fhmtwo", "m2"), _event("e9", None, "m9", "failed")]}, "result-missing"),
        (
            {
                "results": [
                    _event("e1", "fhmone", "m1"),
                    _event("e1", "fhmone", "m1", "failed", op=None),  # e.g. a start refused, then one that worked
                    _event("e2", "fhmtwo", "m2"),
                ]
            },
            "result-conflict",
        ),
        (
            {"results": [_event("e1", "fhmone", "m1"), _event("e3", "fhmone", "m1"), _event("e2", "fhmtwo", "m2")]},
            "result-duplicate",
        ),
        ({"results": [_event("e1", "fhmone", "m1"), _event("e1", "fhmtwo", "m2")]}, "result-id-shared"),
        ({"results": [_event("e1", "fhmone", "m1"), _event("e2", "fhmtwo", "m1")]}, "result-wrong"),
        (
            {"results": [_event("e1", "fhmone", "m1"), _event("e2", "fhmtwo", "m2"), _event("e4", "fhmoptout", "m2")]},
            "result-unexpected",
        ),
        (
            {"execute_log": [{"policyId": POLICY, "computeInstanceId": i} for i in ("fhmone", "fhmone", "fhmtwo")]},
            "double-backup",
        ),
        ({"execute_log": [{"policyId": POLICY, "computeInstanceId": "fhmone"}]}, "backup-missing"),
        (
            {"execute_log": [{"policyId": POLICY, "computeInstanceId": i} for i in ("fhmone", "fhmtwo", "fhmoptout")]},
            "backup-unexpected",
        ),
        ({"dead_letter": {"followups": []}}, "dlq-missing"),
        ({"dead_letter": {"followups": [POISON_TICKETS["text"], "{}"]}}, "dlq-unexpected"),
        ({"dead_letter": {"followups": [POISON_TICKETS["text"]], "requests": ["{}"]}}, "dlq-unexpected"),
        ({"stats": Counter({"kill swallowed (trigger)": 1})}, "kill-swallowed"),
    ],
)
def test_checker_reports_each_violation(changes: dict[str, object], kind: str) -> None:
    kinds = {k for k, _ in check(_scenario(), _observed(**changes))}
    assert kind in kinds
