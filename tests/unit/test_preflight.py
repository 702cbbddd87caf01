"""A dry run's plan flags what would fail (issue 12 item 5): agent offline, not registered, policy not applied;
a dry run emits no result event to any sink; and the results of targets that cannot start (run.emit_failed)."""

from __future__ import annotations

import json
from typing import Any

from backups.models import TriggerInfo
from backups.run import Ports, run_request
from settings import Settings
from tests.fakes import FakeClock, FakeCloud, FakeQueue, RecordingSink
from ycloud.errors import CloudError

FOLDER = "b1gfolder"


SINK = RecordingSink()


def dry_run(cloud: FakeCloud, body: dict[str, Any]) -> tuple[dict[str, Any], RecordingSink]:
    sink = SINK
    sink.events.clear()
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


def test_a_dry_run_that_cannot_start_emits_nothing() -> None:
    # review finding: the request-level failure result came out of a dry run too
    import pytest

    from backups.errors import NothingMatched

    cloud, policy, _ = fleet()
    with pytest.raises(NothingMatched):
        dry_run(cloud, {"instanceName": "ghost", "policyId": policy})
    assert SINK.events == []


def test_every_target_that_cannot_start_gets_its_result_tried_even_after_a_sink_failed() -> None:
    # review finding: the first sink failure used to skip the results of the remaining targets
    import pytest

    from backups.errors import RedeliveryRequested
    from backups.ports import SinkError

    class FailsOnce(RecordingSink):
        def emit(self, event: Any) -> None:
            if not self.events and not getattr(self, "failed_once", False):
                self.failed_once = True
                raise SinkError("hiccup")
            super().emit(event)

    cloud = FakeCloud()
    policy = cloud.add_policy("daily", folder_id=FOLDER)
    ids = [cloud.add_instance(folder_id=FOLDER).id for _ in range(3)]  # none has the policy applied
    sink = FailsOnce()
    ports = Ports(
        cloud=cloud,
        settings=Settings.model_validate({"FOLDER_ID": FOLDER}),
        queue=FakeQueue(),
        sinks=lambda reply_to: [sink],
        clock=FakeClock(),
    )
    body = json.dumps({"computeInstanceIds": ids, "policyId": policy.id})
    with pytest.raises(RedeliveryRequested):
        run_request(body, TriggerInfo(source="direct", trigger_id="t1"), ports)
    assert sorted(e.data.compute_instance_id for e in sink.events) == sorted(ids[1:])
