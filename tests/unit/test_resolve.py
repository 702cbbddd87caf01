"""Request building and resolution (backups.resolve) against the in-memory fake cloud."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest

from backups.errors import CloudFailed, CloudUnavailable, NothingMatched, RequestInvalid
from backups.handoff import FanoutMessage, ForgedFanout, Freshness, read_fanout
from backups.models import TriggerInfo
from backups.request import BackupRequest, build_request
from backups.resolve import Resolver, opt_out_value
from backups.target import BackupTarget, Failed, Outcome, Planned, Retryable, Skipped
from settings import Settings
from tests.fakes import FakeCloud
from ycloud.errors import CloudError

FRESH = Freshness(now=datetime(2026, 12, 1, tzinfo=UTC), max_age=timedelta(hours=1))  # undated messages pass then

FOLDER = "b1gfolder"
OTHER = "b1gother"
TRIGGER = TriggerInfo(source="yc.timer", trigger_id="t1")
SECRET = "fanout-test-secret"


def settings(**env: Any) -> Settings:
    return Settings.model_validate(env)


def req(**fields: Any) -> BackupRequest:
    return BackupRequest.model_validate(fields)


class Problem(NamedTuple):
    """A per-target problem as the tests read it: a `Failed` or a `Retryable` outcome."""

    code: str
    message: str
    compute_instance_id: str | None
    policy_id: str | None
    retryable: bool


@dataclass
class Res:
    """The outcomes of one resolution, sorted by kind."""

    outcomes: list[Outcome]

    @property
    def planned(self) -> list[Planned]:
        return [o for o in self.outcomes if isinstance(o, Planned)]

    @property
    def targets(self) -> list[BackupTarget]:
        return [o.target for o in self.planned]

    @property
    def skipped(self) -> list[Skipped]:
        return [o for o in self.outcomes if isinstance(o, Skipped)]

    @property
    def problems(self) -> list[Problem]:
        out = []
        for o in self.outcomes:
            if isinstance(o, Failed):
                out.append(
                    Problem(o.error.code, o.error.message, o.target.compute_instance_id, o.target.policy_id, False)
                )
            elif isinstance(o, Retryable):
                out.append(Problem(o.code, o.message, o.target.compute_instance_id, o.target.policy_id, True))
        return out


def resolve(resolver: Resolver, request: BackupRequest) -> Res:
    return Res(resolver.resolve(request, TRIGGER))


@pytest.fixture()
def cloud() -> FakeCloud:
    return FakeCloud()


# --- build_request -------------------------------------------------------------------------------------


def test_simplest_request() -> None:
    r = build_request({"policyId": "cdg1", "computeInstanceId": "fhm1"}, settings())
    assert isinstance(r, BackupRequest)
    assert (r.policy_id, r.compute_instance_id, r.folder_id) == ("cdg1", "fhm1", None)


def test_raw_text_and_bytes_bodies() -> None:
    s = settings()
    assert build_request('{"policyId": "cdg1", "computeInstanceId": "fhm1"}', s).policy_id == "cdg1"
    assert build_request(b'{"policyId": "cdg1", "computeInstanceId": "fhm1"}', s).policy_id == "cdg1"


def test_defaults_from_settings() -> None:
    s = settings(
        FOLDER_ID=FOLDER,
        DEFAULT_POLICY_ID="cdgdefault",
        DEFAULT_REQUEST='{"instanceLabels": {"backup": "daily"}, "reason": "nightly"}',
    )
    r = build_request({}, s)
    assert isinstance(r, BackupRequest)
    assert r.folder_id == FOLDER
    assert r.policy_id == "cdgdefault"
    assert r.instance_labels == {"backup": "daily"}
    assert r.reason == "nightly"


def test_request_overrides_defaults_by_group() -> None:
    s = settings(
        FOLDER_ID=FOLDER,
        DEFAULT_POLICY_ID="cdgdefault",
        DEFAULT_REQUEST='{"instanceLabels": {"backup": "daily"}, "reason": "nightly"}',
    )
    # a policy name in the body replaces the default policy id (no "both" conflict)
    r = build_request({"policyName": "Default weekly", "instanceName": "web-1", "folderId": OTHER}, s)
    assert isinstance(r, BackupRequest)
    assert (r.policy_id, r.policy_name) == (None, "Default weekly")
    # a selector in the body replaces the default selector
    assert (r.instance_name, r.instance_labels) == ("web-1", None)
    assert r.folder_id == OTHER
    assert r.reason == "nightly"


def test_default_policy_name() -> None:
    r = build_request({"computeInstanceId": "fhm1"}, settings(DEFAULT_POLICY_NAME="Default daily"))
    assert isinstance(r, BackupRequest)
    assert r.policy_name == "Default daily"


@pytest.mark.parametrize(
    "body",
    [{}, {"computeInstanceIds": []}, {"instanceLabels": {}}, {"policyId": "cdg1"}, "", None],
)
def test_empty_selector_refused(body: Any) -> None:
    with pytest.raises(RequestInvalid, match="no instance selector") as info:
        build_request(body, settings(FOLDER_ID=FOLDER))
    assert info.value.http_status == 400


def test_several_selector_kinds_refused() -> None:
    with pytest.raises(RequestInvalid, match="one kind"):
        build_request({"computeInstanceId": "fhm1", "instanceName": "web"}, settings())


def test_policy_id_and_name_refused() -> None:
    with pytest.raises(RequestInvalid, match="policyId or policyName"):
        build_request({"computeInstanceId": "fhm1", "policyId": "cdg1", "policyName": "x"}, settings())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (b"\xff\xfe", "UTF-8"),
        ({"computeInstanceId": "UPPER/../x"}, "computeInstanceId"),
        ({"computeInstanceId": "fhm1", "bogus": 1}, "bogus"),
    ],
)
def test_malformed_refused(body: Any, message: str) -> None:
    with pytest.raises(RequestInvalid, match=message) as info:
        build_request(body, settings())
    assert "../x" not in info.value.message  # input values are not echoed


def test_fanout_body_only_when_allowed() -> None:
    legacy = {
        "kind": "fanout",
        "triggerId": "t1",
        "source": "yc.timer",
        "computeInstanceId": "fhm1",
        "policyId": "cdg1",
    }
    with pytest.raises(RequestInvalid, match="request queue"):
        build_request(legacy, settings())
    target = BackupTarget(trigger=TRIGGER, asked="computeInstanceId=fhm1", compute_instance_id="fhm1", policy_id="cdg1")
    body = FanoutMessage(target=target).signed(SECRET).to_json_dict()
    with pytest.raises(RequestInvalid, match="request queue"):
        build_request(body, settings())
    # read from the request queue (and signed), it is taken as written: no defaults merged under it
    r = read_fanout(body, settings(FOLDER_ID=FOLDER, DEFAULT_POLICY_ID="cdgother", HANDOFF_SECRET=SECRET), FRESH)
    assert isinstance(r, FanoutMessage)
    t = r.target
    assert (t.trigger.trigger_id, t.trigger.source, t.policy_id, t.folder_id) == ("t1", "yc.timer", "cdg1", None)


def test_unsigned_or_foreign_fanout_body_is_refused() -> None:
    target = BackupTarget(trigger=TRIGGER, asked="computeInstanceId=fhm1", compute_instance_id="fhm1", policy_id="cdg1")
    signed = FanoutMessage(target=target).signed(SECRET).to_json_dict()
    with pytest.raises(ForgedFanout, match="HANDOFF_SECRET is not set"):
        read_fanout(signed, settings(), FRESH)
    with pytest.raises(ForgedFanout, match="signature"):
        read_fanout(signed, settings(HANDOFF_SECRET="another-secret"), FRESH)
    legacy = {"kind": "fanout", "triggerId": "t1", "source": "yc.timer", "computeInstanceId": "fhm1", "policyId": "p"}
    with pytest.raises(ForgedFanout, match="invalid fan-out message"):
        read_fanout(legacy, settings(HANDOFF_SECRET=SECRET), FRESH)


# --- opt-out -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "out"), [("true", True), ("yes", True), ("1", True), ("x", True)])
def test_opt_out_values(value: str, out: bool) -> None:
    assert (opt_out_value({"backup-opt-out": value}, "backup-opt-out") is not None) is out


@pytest.mark.parametrize("value", ["false", "no", "0", "", "FALSE", " No "])
def test_opt_out_false_values(value: str) -> None:
    assert opt_out_value({"backup-opt-out": value}, "backup-opt-out") is None
    assert opt_out_value({}, "backup-opt-out") is None


def test_opted_out_instance_skipped_with_reason(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    a = cloud.add_instance(labels={"env": "prod"})
    b = cloud.add_instance(labels={"env": "prod", "backup-opt-out": "true"})
    c = cloud.add_instance(labels={"env": "prod", "backup-opt-out": "false"})
    for vm in (a, b, c):
        cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}, policyId=p.id))
    assert {t.compute_instance_id for t in res.targets} == {a.id, c.id}
    assert [s.target.compute_instance_id for s in res.skipped] == [b.id]
    assert "backup-opt-out=true" in res.skipped[0].reason


def test_custom_opt_out_label_honoured_for_direct_ids(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance(labels={"no-backup": "yes"})
    cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings(OPT_OUT_LABEL="no-backup")), req(computeInstanceId=vm.id, policyId=p.id))
    assert res.targets == []
    assert res.skipped[0].target.compute_instance_id == vm.id
    assert cloud.count("compute.get") == 1


# --- selectors -----------------------------------------------------------------------------------------


def test_compute_instance_id_uses_one_get(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance(name="web-1")
    cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(computeInstanceId=vm.id, policyId=p.id))
    assert [(t.compute_instance_id, t.policy_id, t.instance_name, t.folder_id) for t in res.targets] == [
        (vm.id, p.id, "web-1", FOLDER)
    ]
    assert cloud.count("compute.get") == 1
    assert cloud.count("compute.list") == 0
    assert cloud.count("policies.list_applications") == 1


def test_compute_instance_id_not_found(cloud: FakeCloud) -> None:
    with pytest.raises(NothingMatched, match="fhmmissing") as info:
        resolve(Resolver(cloud, settings()), req(computeInstanceId="fhmmissing", policyId="cdg1"))
    assert info.value.http_status == 404


def test_compute_instance_ids_with_folder_list_once(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vms = [cloud.add_instance() for _ in range(5)]
    elsewhere = cloud.add_instance(folder_id=OTHER)
    for vm in [*vms, elsewhere]:
        cloud.apply_now(p.id, vm.id)
    ids = [vm.id for vm in vms] + [elsewhere.id, "fhmmissing"]
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(computeInstanceIds=ids, policyId=p.id))
    assert [t.compute_instance_id for t in res.targets] == ids[:6]
    assert [(x.code, x.compute_instance_id) for x in res.problems] == [("NOT_FOUND", "fhmmissing")]
    assert cloud.count("compute.list") == 1
    assert cloud.count("compute.get") == 2  # the instance of another folder, and the missing one


def test_compute_instance_ids_without_folder_get_each(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vms = [cloud.add_instance() for _ in range(3)]
    for vm in vms:
        cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings()), req(computeInstanceIds=[v.id for v in vms], policyId=p.id))
    assert len(res.targets) == 3
    assert cloud.count("compute.get") == 3
    assert cloud.count("compute.list") == 0


def test_compute_instance_ids_all_missing(cloud: FakeCloud) -> None:
    with pytest.raises(NothingMatched):
        resolve(Resolver(cloud, settings()), req(computeInstanceIds=["fhma", "fhmb"], policyId="cdg1"))


def test_permission_denied_on_one_instance_is_per_target(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    cloud.apply_now(p.id, vm.id)
    cloud.fail("compute.get", CloudError(7, "denied"), when=lambda instance_id: instance_id == "fhmsecret")
    res = resolve(Resolver(cloud, settings()), req(computeInstanceIds=[vm.id, "fhmsecret"], policyId=p.id))
    assert [t.compute_instance_id for t in res.targets] == [vm.id]
    assert res.problems[0].code == "PERMISSION_DENIED"
    assert "compute.viewer" in res.problems[0].message


def test_instance_name_uses_filter(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance(name="web-1")
    cloud.add_instance(name="web-2")
    cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceName="web-1", policyId=p.id))
    assert [t.compute_instance_id for t in res.targets] == [vm.id]
    (call,) = [kw for m, kw in cloud.call_log if m == "compute.list"]
    assert call["filter"] == 'name="web-1"'
    assert call["folder_id"] == FOLDER


def test_instance_name_not_found(cloud: FakeCloud) -> None:
    with pytest.raises(NothingMatched, match='no instance named "ghost"'):
        resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceName="ghost", policyId="cdg1"))


@pytest.mark.parametrize("selector", [{"instanceName": "web-1"}, {"instanceLabels": {"env": "prod"}}])
def test_folder_needed(cloud: FakeCloud, selector: dict[str, Any]) -> None:
    with pytest.raises(RequestInvalid, match="needs folderId"):
        resolve(Resolver(cloud, settings()), req(**selector, policyId="cdg1"))


def test_labels_client_side_one_paged_listing(cloud: FakeCloud) -> None:
    cloud.default_page_size = 100
    p = cloud.add_policy("daily")
    prod = [cloud.add_instance(labels={"env": "prod", "role": "db"}) for _ in range(1500)]
    for _ in range(700):
        cloud.add_instance(labels={"env": "dev", "role": "db"})
    for vm in prod:
        cloud.apply_now(p.id, vm.id)
    res = resolve(
        Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod", "role": "db"}, policyId=p.id)
    )
    assert len(res.targets) == 1500
    assert cloud.count("compute.list") == 3  # 2,200 instances at 1,000 a page
    assert all(kw["filter"] is None for m, kw in cloud.call_log if m == "compute.list")


def test_labels_nothing_matched(cloud: FakeCloud) -> None:
    cloud.add_instance(labels={"env": "dev"})
    with pytest.raises(NothingMatched, match="env=prod"):
        resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}, policyId="cdg1"))


def test_request_folder_wins_over_settings(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily", folder_id=OTHER)
    vm = cloud.add_instance(folder_id=OTHER, labels={"env": "prod"})
    cloud.apply_now(p.id, vm.id)
    res = resolve(
        Resolver(cloud, settings(FOLDER_ID=FOLDER)),
        req(instanceLabels={"env": "prod"}, folderId=OTHER, policyName="daily"),
    )
    assert [(t.compute_instance_id, t.policy_id, t.folder_id) for t in res.targets] == [(vm.id, p.id, OTHER)]


def test_resolver_caches_within_invocation(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    for _ in range(3):
        vm = cloud.add_instance(labels={"env": "prod"})
        cloud.apply_now(p.id, vm.id)
    resolver = Resolver(cloud, settings(FOLDER_ID=FOLDER))
    resolve(resolver, req(instanceLabels={"env": "prod"}, policyName="daily"))
    first = cloud.calls
    resolve(resolver, req(instanceLabels={"env": "prod"}, policyName="daily"))
    assert cloud.calls == first == 3  # instances, policies, applications: once each


# --- policy --------------------------------------------------------------------------------------------


def test_policy_by_name_lists_policies_once(cloud: FakeCloud) -> None:
    daily = cloud.add_policy("Default daily")
    cloud.add_policy("Default weekly")
    vms = [cloud.add_instance(labels={"env": "prod"}) for _ in range(4)]
    for vm in vms:
        cloud.apply_now(daily.id, vm.id)
    res = resolve(
        Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}, policyName="Default daily")
    )
    assert {t.policy_id for t in res.targets} == {daily.id}
    assert {t.policy_name for t in res.targets} == {"Default daily"}
    assert cloud.count("policies.list") == 1
    assert cloud.count("policies.list_applications") == 1


def test_policy_name_unknown(cloud: FakeCloud) -> None:
    cloud.add_instance(labels={"env": "prod"})
    with pytest.raises(NothingMatched, match='no backup policy named "nope"'):
        resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}, policyName="nope"))


def test_policy_name_ambiguous(cloud: FakeCloud) -> None:
    cloud.add_policy("twin")
    cloud.add_policy("twin")
    cloud.add_instance(labels={"env": "prod"})
    with pytest.raises(RequestInvalid, match="several policies"):
        resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}, policyName="twin"))


def test_policy_name_uses_instance_folder_without_folder_id(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily", folder_id=OTHER)
    vm = cloud.add_instance(folder_id=OTHER)
    cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings()), req(computeInstanceId=vm.id, policyName="daily"))
    assert [t.policy_id for t in res.targets] == [p.id]
    assert [kw["folder_id"] for m, kw in cloud.call_log if m == "policies.list"] == [OTHER]


def test_policy_id_unknown(cloud: FakeCloud) -> None:
    vm = cloud.add_instance()
    with pytest.raises(NothingMatched, match="cdgnope"):
        resolve(Resolver(cloud, settings()), req(computeInstanceId=vm.id, policyId="cdgnope"))


def test_no_policy_exactly_one_none_several(cloud: FakeCloud) -> None:
    daily, weekly = cloud.add_policy("daily"), cloud.add_policy("weekly")
    one = cloud.add_instance(labels={"env": "prod"})
    none = cloud.add_instance(labels={"env": "prod"})
    two = cloud.add_instance(labels={"env": "prod"})
    cloud.apply_now(daily.id, one.id)
    cloud.apply_now(daily.id, two.id)
    cloud.apply_now(weekly.id, two.id)
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}))
    assert [(t.compute_instance_id, t.policy_id) for t in res.targets] == [(one.id, daily.id)]
    problems = {p.compute_instance_id: p for p in res.problems}
    assert problems[none.id].code == "POLICY_NOT_APPLIED"
    assert "no backup policy is applied" in problems[none.id].message
    assert problems[two.id].code == "AMBIGUOUS_POLICY"
    assert daily.id in problems[two.id].message and weekly.id in problems[two.id].message
    assert "policyId or policyName" in problems[two.id].message
    # several instances: the folder's policies once, then the applications of each policy (the only
    # proto-valid form of ListApplications), never a by-instance or by-folder listing of applications
    assert [kw["folder_id"] for m, kw in cloud.call_log if m == "policies.list"] == [FOLDER]
    assert [kw["policy_id"] for m, kw in cloud.call_log if m == "policies.list_applications"] == [daily.id, weekly.id]


def _policy_lookups(cloud: FakeCloud) -> list[tuple[str, dict[str, Any]]]:
    return [(m, kw) for m, kw in cloud.call_log if m.startswith("policies.")]


def test_no_policy_one_instance_lists_the_policies_applied_to_it(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    cloud.add_policy("weekly")
    vm = cloud.add_instance()
    cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(computeInstanceId=vm.id))
    assert [(t.compute_instance_id, t.policy_id) for t in res.targets] == [(vm.id, p.id)]
    assert _policy_lookups(cloud) == [("policies.list", {"folder_id": None, "compute_instance_id": vm.id})]
    assert cloud.calls == 2  # compute.get and the policies applied to the instance: one, so Execute checks the rest


def test_no_policy_by_name_one_match_lists_the_policies_applied_to_it(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance(name="db-1")
    cloud.add_instance(name="db-2")
    cloud.apply_now(p.id, vm.id)
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceName="db-1"))
    assert [(t.compute_instance_id, t.policy_id) for t in res.targets] == [(vm.id, p.id)]
    assert _policy_lookups(cloud) == [("policies.list", {"folder_id": None, "compute_instance_id": vm.id})]
    assert cloud.calls == 2  # the filtered instance listing, then as for one instance


def test_no_policy_label_selector_lists_folder_policies_once_and_each_policy_applications(cloud: FakeCloud) -> None:
    daily, weekly = cloud.add_policy("daily"), cloud.add_policy("weekly")
    cloud.add_policy("elsewhere", folder_id=OTHER)
    vms = [cloud.add_instance(labels={"env": "prod"}) for _ in range(5)]
    for vm in vms[:3]:
        cloud.apply_now(daily.id, vm.id)
    for vm in vms[3:]:
        cloud.apply_now(weekly.id, vm.id)
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}))
    assert [(t.compute_instance_id, t.policy_id) for t in res.targets] == [
        *[(vm.id, daily.id) for vm in vms[:3]],
        *[(vm.id, weekly.id) for vm in vms[3:]],
    ]
    assert _policy_lookups(cloud) == [
        ("policies.list", {"folder_id": FOLDER, "compute_instance_id": None}),
        ("policies.list_applications", {"policy_id": daily.id, "show_processing": True}),
        ("policies.list_applications", {"policy_id": weekly.id, "show_processing": True}),
    ]
    assert cloud.calls == 1 + 1 + 2  # one instance page, the folder's policies, one listing per policy


def test_policy_not_applied_message(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    res = resolve(Resolver(cloud, settings()), req(computeInstanceId=vm.id, policyId=p.id))
    assert res.targets == []
    (problem,) = res.problems
    assert problem.code == "POLICY_NOT_APPLIED"
    assert problem.message == (
        f"policy {p.id} is not applied to instance {vm.id}: apply it (yc backup policy apply --id {p.id} "
        f"--instance-ids {vm.id}) or send applyIfMissing: true"
    )
    assert (problem.policy_id, problem.compute_instance_id, problem.retryable) == (p.id, vm.id, False)


def test_apply_if_missing_marks_target(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    res = resolve(Resolver(cloud, settings()), req(computeInstanceId=vm.id, policyId=p.id, applyIfMissing=True))
    assert [(p.target.compute_instance_id, p.apply_first) for p in res.planned] == [(vm.id, True)]
    assert cloud.count("policies.apply") == 0  # resolution never changes anything


def test_application_in_progress_is_retryable(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    cloud.apply_now(p.id, vm.id, processing=True)
    res = resolve(Resolver(cloud, settings()), req(computeInstanceId=vm.id, policyId=p.id))
    assert [(x.code, x.retryable) for x in res.problems] == [("POLICY_APPLYING", True)]


# --- cloud errors while resolving ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exc", "status"), [(14, CloudUnavailable, 503), (8, CloudUnavailable, 503), (7, CloudFailed, 502)]
)
def test_listing_errors_are_request_level(cloud: FakeCloud, code: int, exc: type[Exception], status: int) -> None:
    cloud.fail("compute.list", CloudError(code, "boom"))
    with pytest.raises(exc) as info:
        resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(instanceLabels={"env": "prod"}, policyId="cdg1"))
    assert info.value.http_status == status  # type: ignore[attr-defined]


def test_transient_get_is_request_level(cloud: FakeCloud) -> None:
    cloud.fail("compute.get", CloudError(14, "down"))
    with pytest.raises(CloudUnavailable):
        resolve(Resolver(cloud, settings()), req(computeInstanceId="fhm1", policyId="cdg1"))


def test_transient_applications_listing_is_request_level(cloud: FakeCloud) -> None:
    p = cloud.add_policy("daily")
    vm = cloud.add_instance()
    cloud.fail("policies.list_applications", CloudError(8, "slow down"))
    with pytest.raises(CloudUnavailable):
        resolve(Resolver(cloud, settings()), req(computeInstanceId=vm.id, policyId=p.id))


def test_no_policy_one_instance_with_two_applied_tells_them_apart_by_their_applications(cloud: FakeCloud) -> None:
    daily, weekly = cloud.add_policy("daily"), cloud.add_policy("weekly")
    vm = cloud.add_instance()
    cloud.apply_now(daily.id, vm.id)
    cloud.apply_now(weekly.id, vm.id, processing=True)  # still being applied: not a choice yet
    res = resolve(Resolver(cloud, settings(FOLDER_ID=FOLDER)), req(computeInstanceId=vm.id))
    assert [(t.compute_instance_id, t.policy_id) for t in res.targets] == [(vm.id, daily.id)]
