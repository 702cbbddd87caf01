"""A dry run's plan flags what would fail (issue 12 item 5): agent offline, not registered, policy not applied;
and a dry run emits no result event to any sink."""

from __future__ import annotations

import json
from typing import Any

from backups.models import ResultEvent, TriggerInfo
from backups.run import Ports, run_request
from settings import Settings
from tests.fakes import FakeClock, FakeCloud, FakeQueue
from ycloud.errors import CloudError

FOLDER = "b1gfolder"


class Sink:
    name = "queue"

    def __init__(self) -> None:
        self.events: list[ResultEvent] = []

    def emit(self, event: ResultEvent) -> None:
        self.events.append(event)


def dry_run(cloud: FakeCloud, body: dict[str, Any]) -> tuple[dict[str, Any], Sink]:
    sink = Sink()
    ports = Ports(
        cloud=cloud,
        settings=Settings.model_validate({"FOLDER_ID": FOLDER, "FOLLOWUP_QUEUE_URL": "https://q.local/f"}),
        queue=FakeQueue(),
        sinks=lambda reply_to: [sink],
        clock=FakeClock(),
    )
    report = run_request(json.dumps(body | {"dryRun": True}), TriggerInfo(source="direct", trigger_id="t1"), ports)
    return report.to_json_dict(), sink


def fleet() -> tuple[FakeCloud, str, dict[str, str]]:
    cloud = FakeCloud()
    policy = cloud.add_policy("daily", folder_id=FOLDER)
    vms = {name: cloud.add_instance(name=name, folder_id=FOLDER, labels={"env": "prod"}).id for name in "abcd"}
    for name in "abc":
        cloud.apply_now(policy.id, vms[name])
    cloud.agent_offline.add(vms["b"])
    cloud.unregistered.add(vms["c"])
    return cloud, policy.id, vms


def test_the_plan_flags_offline_and_unregistered_agents_and_the_unapplied_policy() -> None:
    cloud, policy, vms = fleet()
    reply, sink = dry_run(cloud, {"instanceLabels": {"env": "prod"}, "policyId": policy})
    flags = {p["computeInstanceId"]: p.get("wouldFail", {}).get("code") for p in reply["plan"]}
    assert flags == {vms["a"]: None, vms["b"]: "AGENT_OFFLINE", vms["c"]: "NOT_REGISTERED"}
    assert [(f["computeInstanceId"], f["code"]) for f in reply["failed"]] == [(vms["d"], "POLICY_NOT_APPLIED")]
    assert cloud.execute_log == [] and sink.events == []  # nothing started, no result event anywhere
    assert cloud.count("resources.list") == 1  # one listing for the folder (the fake's list reads each by get)


def test_one_target_is_read_with_one_get() -> None:
    cloud, policy, vms = fleet()
    reply, _ = dry_run(cloud, {"computeInstanceId": vms["b"], "policyId": policy})
    [planned] = reply["plan"]
    assert (
        planned["wouldFail"]["code"] == "AGENT_OFFLINE" and "yc backup resource get" in planned["wouldFail"]["message"]
    )
    assert cloud.count("resources.get") == 1 and cloud.count("resources.list") == 0


def test_a_resource_that_cannot_be_read_leaves_the_plan_unflagged() -> None:
    cloud, policy, vms = fleet()
    cloud.fail("resources.get", CloudError(7, "denied"))
    reply, _ = dry_run(cloud, {"computeInstanceId": vms["c"], "policyId": policy})
    [planned] = reply["plan"]
    assert "wouldFail" not in planned
