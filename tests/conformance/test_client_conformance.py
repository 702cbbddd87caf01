"""Every REST call the client makes, as really sent, against the http rule of its RPC in the official protos;
every answer the emulator gave it parsed as the RPC's response type (or google.rpc.Status)."""

from __future__ import annotations

import inspect
import json

import pytest

from local.emulator import EmulatorHandle, ManualClock
from local.emulator import seed as demo
from tests.conformance import oracle
from tests.conformance.conftest import RecordingSession, make_client
from ycloud import services
from ycloud.errors import CloudError

# Every public method of the client's services -> the RPC it calls. A new method must be added here (and driven
# below), or test_every_client_method_is_mapped fails.
CLIENT_RPCS = {
    "BackupPolicies.get": "PolicyService.Get",
    "BackupPolicies.list": "PolicyService.List",
    "BackupPolicies.list_applications": "PolicyService.ListApplications",
    "BackupPolicies.apply": "PolicyService.Apply",
    "BackupPolicies.execute": "PolicyService.Execute",
    "BackupResources.get": "ResourceService.Get",
    "BackupResources.list": "ResourceService.List",
    "Operations.get": "OperationService.Get",
    "Operations.cancel": "OperationService.Cancel",
    "ComputeInstances.get": "InstanceService.Get",
    "ComputeInstances.list": "InstanceService.List",
    "ComputeInstances.list_page": "InstanceService.List",
    "KeyTokenProvider._fetch": "IamTokenService.Create",
}


def test_every_client_method_is_mapped() -> None:
    public = {
        f"{cls.__name__}.{name}"
        for cls in (services.BackupPolicies, services.BackupResources, services.Operations, services.ComputeInstances)
        for name, _ in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == {k for k in CLIENT_RPCS if not k.startswith("KeyTokenProvider")}
    for rpc in CLIENT_RPCS.values():
        oracle.rule(rpc)  # exists, with an http rule


def drive(emu: EmulatorHandle, clock: ManualClock, session: RecordingSession) -> None:
    """Every client call, on success paths and on refusals."""
    key = emu.state.create_authorized_key(demo.DEMO_SA_ID)
    yc = make_client(emu, session, YC_IAM_TOKEN="", YC_SERVICE_ACCOUNT_KEY=json.dumps(key))
    bp = yc.backup_policies
    bp.get(demo.POLICY_DAILY)
    bp.list(folder_id=demo.DEMO_FOLDER_ID)
    assert {p.id for p in bp.list(compute_instance_id=demo.INSTANCE_TWO_POLICIES)} == {
        demo.POLICY_DAILY,
        demo.POLICY_WEEKLY,
    }
    bp.list_applications(policy_id=demo.POLICY_DAILY)
    apply = bp.apply(demo.POLICY_MONTHLY, demo.INSTANCE_NO_POLICY, idempotency_key="conformance-apply-1")
    assert bp.list_applications(policy_id=demo.POLICY_MONTHLY, show_processing=True)
    yc.operations.get(apply.id)
    run = bp.execute(demo.POLICY_DAILY, demo.INSTANCE_PROD_DB, idempotency_key="conformance-execute-1")
    clock.advance(1.0)
    yc.operations.get(run.id)  # running, with progress
    yc.operations.cancel(run.id)
    flaky = bp.execute(demo.POLICY_DAILY, demo.INSTANCE_FLAKY)
    clock.advance(3600.0)
    assert yc.operations.get(flaky.id).error is not None  # an Operation whose result is a Status
    assert yc.operations.get(apply.id).done
    yc.backup_resources.get(demo.INSTANCE_PROD_DB)
    assert len(list(yc.backup_resources.list(demo.DEMO_FOLDER_ID, page_size=2))) > 2  # paged: pageToken sent
    yc.compute.get(demo.INSTANCE_PROD_DB)
    yc.compute.list_page(demo.DEMO_FOLDER_ID, filter='status = "RUNNING"', page_size=3)
    assert len(list(yc.compute.list(demo.DEMO_FOLDER_ID, page_size=4))) > 4
    for refused in (
        lambda: bp.get("cbpunknownpolicy0001"),  # 404
        lambda: bp.get(demo.POLICY_OTHER),  # 403
        lambda: bp.execute(demo.POLICY_DAILY, demo.INSTANCE_OFFLINE),  # 400 FAILED_PRECONDITION
        lambda: yc.compute.list_page(demo.DEMO_FOLDER_ID, filter="labels.env = 'x'"),  # 400 INVALID_ARGUMENT
    ):
        with pytest.raises(CloudError):
            refused()


def test_client_requests_follow_the_proto_http_rules(
    emu: EmulatorHandle, clock: ManualClock, session: RecordingSession
) -> None:
    drive(emu, clock, session)
    seen: set[str] = set()
    for ex in session.exchanges:
        rule = oracle.rule_for(ex.method, ex.url)
        rule.check_request(ex.method, ex.url, ex.body)
        seen.add(rule.rpc)
    assert seen == set(CLIENT_RPCS.values())


def test_emulator_answers_to_the_client_parse_as_the_rpc_response(
    emu: EmulatorHandle, clock: ManualClock, session: RecordingSession
) -> None:
    drive(emu, clock, session)
    statuses = set()
    for ex in session.exchanges:
        rule = oracle.rule_for(ex.method, ex.url)
        if ex.status == 200:
            rule.parse_response(ex.text)
        else:
            status = oracle.parse_status(ex.text)
            assert status.code != 0 and status.message
            statuses.add(ex.status)
    assert statuses == {400, 403, 404}


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        (("POST", "/operations/x:cancel", None), "verb"),
        (("GET", "/backup/v1/policies/-/applications?folderId=b1g", None), "oneof"),
        (("GET", "/backup/v1/policies?folder_id=b1g", None), "json_name"),
        (("GET", "/backup/v1/policies?pageToken=abc&folderId=b1g", None), "unknown query"),
        (("POST", "/backup/v1/policies/p:execute?x=1", b'{"computeInstanceId": "i"}'), "query with body *"),
        (("POST", "/backup/v1/policies/p:execute", b'{"computeInstanceId": "i", "extra": 1}'), "unknown field"),
        (("GET", "/compute/v1/instances/i?view=SOMETHING", None), "enum"),
        (("GET", "/backup/v1/resources/i", b'{"a": 1}'), "body on GET"),
    ],
)
def test_the_oracle_catches_what_a_gateway_refuses(sent: tuple[str, str, bytes | None], why: str) -> None:
    """The checks can fail: each of these breaks one rule."""
    method, path, body = sent
    with pytest.raises(oracle.Mismatch):
        rule = oracle.rule_for(method, "http://h" + path)
        rule.check_request(method, "http://h" + path, body)


def test_policy_auto_detection_uses_only_proto_valid_calls(emu: EmulatorHandle, session: RecordingSession) -> None:
    """What resolution without a policy will call: by instance, Policy.List(computeInstanceId); over a folder,
    Policy.List(folderId) then ListApplications(policyId) per policy. Each call fits its rule, and the answers
    say which policies are applied where."""
    yc = make_client(emu, session)
    bp = yc.backup_policies
    assert [p.id for p in bp.list(compute_instance_id=demo.INSTANCE_PROD_DB)] == [demo.POLICY_DAILY]
    assert bp.list(compute_instance_id=demo.INSTANCE_NO_POLICY) == []
    applied: dict[str, set[str]] = {}
    for policy in bp.list(folder_id=demo.DEMO_FOLDER_ID):
        for app in bp.list_applications(policy.id):
            applied.setdefault(app.compute_instance_id, set()).add(policy.id)
    assert applied[demo.INSTANCE_TWO_POLICIES] == {demo.POLICY_DAILY, demo.POLICY_WEEKLY}
    assert demo.INSTANCE_NO_POLICY not in applied
    with emu.state.lock:
        truth = {(a.policy_id, a.compute_instance_id) for a in emu.state.applications.values()}
    assert {(p, i) for i, ps in applied.items() for p in ps} == {
        (p, i) for p, i in truth if emu.state.policies[p].folder_id == demo.DEMO_FOLDER_ID
    }
    for ex in session.exchanges:
        oracle.rule_for(ex.method, ex.url).check_request(ex.method, ex.url, ex.body)
        assert ex.status == 200
    assert yc.calls == 2 + 1 + 3  # two instances, the folder's policies, one ListApplications per policy
