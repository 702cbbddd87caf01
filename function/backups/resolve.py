"""Request -> one outcome per target (planned, failed, retryable, skipped), with few, proto-valid API calls.

`Resolver(cloud, settings).resolve(request, trigger)` builds every target's record (backups.target). A `Resolver`
holds the listing caches of one invocation, so several messages of one batch share them.

API calls (every one a proto-valid form of its RPC):

- instances: one paged `compute.list` per folder (page size 1000), whatever the number of targets;
  `instanceName` uses the list `filter` (`name="..."`) unless the folder's listing is already cached;
  `instanceLabels` are matched on the client side (labels are not a filter field).
- `computeInstanceId(s)` given directly: the opt-out label is always honoured, so labels are always read.
  One id: `compute.get`. Several ids with a known folder: the folder is listed once and ids not found in it are
  read with `compute.get`; several ids without a folder: `compute.get` per id.
- policy by name: `backup_policies.list(folder_id=...)` once per folder.
- policy applied (no policy given): one instance: `backup_policies.list(compute_instance_id=...)` (the policies
  applied to it; one is taken as it is, several are told apart by their applications); several:
  `backup_policies.list(folder_id=...)` once per folder, then the applications of each policy.
  `ListApplications` takes exactly one of policy, folder or instance in a `oneof`, and only the policy form
  has a REST path, so that is the only form used.
- the precondition (the policy is applied and not still being applied): `list_applications(policy_id=...,
  showProcessing=true)` once per policy.

Request-level problems are exceptions (backups.errors); per-target problems are `Failed` / `Retryable` outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping

from backups.errors import CloudFailed, CloudUnavailable, NothingMatched, RequestInvalid, StartError
from backups.models import ResultError, TriggerInfo
from backups.ports import Clock, CloudApi, SystemClock
from backups.request import BackupRequest, check_selector, describe_selector
from backups.target import BackupTarget, Failed, Outcome, Planned, Retryable, Skipped
from settings import Settings
from ycloud.errors import CloudError
from ycloud.models import Instance, Policy, PolicyApplication

FALSE_VALUES = frozenset({"false", "no", "0", ""})
APPLY_HINT = "apply it (yc backup policy apply --id {policy} --instance-ids {instance}) or send applyIfMissing: true"
PAGE_SIZE = 1000


def opt_out_value(labels: Mapping[str, str], label: str) -> str | None:
    """The label's value when it opts the instance out (any value but false/no/0/empty), else None."""
    if label not in labels:
        return None
    value = labels[label]
    return None if value.strip().lower() in FALSE_VALUES else value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _request_error(exc: CloudError, doing: str) -> StartError:
    if exc.transient:
        return CloudUnavailable(f"{doing}: {exc.name}: {exc.message} (try again)", cloud_error=exc)
    if exc.name == "PERMISSION_DENIED":
        return CloudFailed(
            f"{doing}: PERMISSION_DENIED: {exc.message} (grant the function's service account "
            "compute.viewer and backup.editor on the folder)",
            cloud_error=exc,
        )
    if exc.name == "UNAUTHENTICATED":
        return CloudFailed(
            f"{doing}: UNAUTHENTICATED: {exc.message} (check the function's credentials)", cloud_error=exc
        )
    return CloudFailed(f"{doing}: {exc.name}: {exc.message}", cloud_error=exc)


class Resolver:
    """Resolves requests into outcomes. Holds the listing caches of one invocation: make one per invocation."""

    def __init__(self, cloud: CloudApi, settings: Settings, clock: Clock | None = None) -> None:
        self.cloud = cloud
        self.settings = settings
        self.clock = clock or SystemClock()
        self._folder_instances: dict[str, list[Instance]] = {}
        self._named: dict[tuple[str, str], list[Instance]] = {}
        self._instances: dict[str, Instance | None] = {}
        self._folder_policies: dict[str, list[Policy]] = {}
        self._instance_policies: dict[str, list[Policy]] = {}
        # policy id -> (its applications, indexed by instance id): matching per instance is then O(1)
        self._policy_apps: dict[str, dict[str, list[PolicyApplication]]] = {}

    # --- cached listings (CloudError propagates; `resolve` classifies it) ---

    def instances_in_folder(self, folder_id: str) -> list[Instance]:
        if folder_id not in self._folder_instances:
            found = list(self.cloud.compute.list(folder_id, page_size=PAGE_SIZE))
            self._folder_instances[folder_id] = found
            for inst in found:
                self._instances[inst.id] = inst
        return self._folder_instances[folder_id]

    def instances_named(self, folder_id: str, name: str) -> list[Instance]:
        if folder_id in self._folder_instances:
            return [i for i in self._folder_instances[folder_id] if i.name == name]
        key = (folder_id, name)
        if key not in self._named:
            found = list(self.cloud.compute.list(folder_id, filter=f"name={_quote(name)}", page_size=PAGE_SIZE))
            self._named[key] = [i for i in found if i.name == name]
            for inst in self._named[key]:
                self._instances[inst.id] = inst
        return self._named[key]

    def instance(self, instance_id: str) -> Instance | None:
        """`compute.get`, cached; None when NOT_FOUND. Other errors propagate."""
        if instance_id not in self._instances:
            try:
                self._instances[instance_id] = self.cloud.compute.get(instance_id)
            except CloudError as exc:
                if exc.name != "NOT_FOUND":
                    raise
                self._instances[instance_id] = None
        return self._instances[instance_id]

    def policies_in_folder(self, folder_id: str) -> list[Policy]:
        if folder_id not in self._folder_policies:
            self._folder_policies[folder_id] = self.cloud.backup_policies.list(folder_id=folder_id)
        return self._folder_policies[folder_id]

    def policies_applied_to(self, instance_id: str) -> list[Policy]:
        if instance_id not in self._instance_policies:
            self._instance_policies[instance_id] = self.cloud.backup_policies.list(compute_instance_id=instance_id)
        return self._instance_policies[instance_id]

    def applications(self, policy_id: str, instance_id: str) -> list[PolicyApplication]:
        """The applications of `policy_id` to `instance_id` (processing ones included)."""
        if policy_id not in self._policy_apps:
            index: dict[str, list[PolicyApplication]] = {}
            for app in self.cloud.backup_policies.list_applications(policy_id=policy_id, show_processing=True):
                index.setdefault(app.compute_instance_id, []).append(app)
            self._policy_apps[policy_id] = index
        return list(self._policy_apps[policy_id].get(instance_id, ()))

    # --- resolution ---

    def resolve(self, request: BackupRequest, trigger: TriggerInfo) -> list[Outcome]:
        """One outcome per target. Raises a StartError (backups.errors) for request-level problems."""
        check_selector(request)
        folder = request.folder_id or self.settings.folder_id
        asked = describe_selector(request)
        out: list[Outcome] = []
        instances = self._select(request, folder, asked, trigger, out)
        kept: list[BackupTarget] = []
        for inst in instances:
            target = BackupTarget(
                trigger=trigger,
                asked=asked,
                compute_instance_id=inst.id,
                instance_name=inst.name or None,
                folder_id=inst.folder_id or folder,
            )
            value = opt_out_value(inst.labels, self.settings.opt_out_label)
            if value is None:
                kept.append(target)
            else:
                out.append(Skipped(target=target, reason=f"opted out by label {self.settings.opt_out_label}={value}"))
        if kept:
            out.extend(self._with_policies(request, folder, kept))
        return out

    def _failed(self, target: BackupTarget, code: str, message: str, grpc_code: int | None = None) -> Failed:
        return Failed(
            target=target,
            error=ResultError(code=code, message=message, grpc_code=grpc_code),
            finished_at=self.clock.now(),
        )

    def _select(
        self, request: BackupRequest, folder: str | None, asked: str, trigger: TriggerInfo, out: list[Outcome]
    ) -> list[Instance]:
        if request.compute_instance_id or request.compute_instance_ids:
            ids = [request.compute_instance_id] if request.compute_instance_id else request.compute_instance_ids
            return self._by_ids([i for i in ids or [] if i], folder, asked, trigger, out)
        if not folder:
            raise RequestInvalid(f"{asked.split('=')[0]} needs folderId (in the request or FOLDER_ID)")
        if request.instance_name:
            try:
                found = self.instances_named(folder, request.instance_name)
            except CloudError as exc:
                raise _request_error(exc, f"listing instances of folder {folder}") from None
            if not found:
                raise NothingMatched(f'no instance named "{request.instance_name}" in folder {folder}')
            return found
        labels = request.instance_labels or {}
        try:
            listing = self.instances_in_folder(folder)
        except CloudError as exc:
            raise _request_error(exc, f"listing instances of folder {folder}") from None
        found = [i for i in listing if all(i.labels.get(k) == v for k, v in labels.items())]
        if not found:
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
            raise NothingMatched(f"no instance in folder {folder} carries the labels {wanted}")
        return found

    def _by_ids(
        self, ids: list[str], folder: str | None, asked: str, trigger: TriggerInfo, out: list[Outcome]
    ) -> list[Instance]:
        listed: dict[str, Instance] = {}
        if folder and len(ids) > 1:
            try:
                listed = {i.id: i for i in self.instances_in_folder(folder)}
            except CloudError as exc:
                raise _request_error(exc, f"listing instances of folder {folder}") from None
        found: list[Instance] = []
        missing: list[Failed] = []
        for iid in ids:
            target = BackupTarget(trigger=trigger, asked=asked, compute_instance_id=iid)
            inst = listed.get(iid)
            if inst is None:
                try:
                    inst = self.instance(iid)
                except CloudError as exc:
                    if exc.transient:
                        raise _request_error(exc, f"reading instance {iid}") from None
                    hint = (
                        " (grant the function's service account compute.viewer on the instance's folder)"
                        if exc.name == "PERMISSION_DENIED"
                        else ""
                    )
                    missing.append(
                        self._failed(target, exc.name, f"cannot read instance {iid}: {exc.message}{hint}", exc.code)
                    )
                    continue
            if inst is None:
                missing.append(self._failed(target, "NOT_FOUND", f"instance {iid} not found (check the id)", 5))
                continue
            if not inst.folder_id and folder:
                inst = inst.model_copy(update={"folder_id": folder})
            found.append(inst)
        if not found and all(f.error.code == "NOT_FOUND" for f in missing):
            raise NothingMatched(
                "no such instance: " + ", ".join(ids[:10]) + (f" (and {len(ids) - 10} more)" if len(ids) > 10 else "")
            )
        out.extend(missing)
        return found

    def _with_policies(self, request: BackupRequest, folder: str | None, targets: list[BackupTarget]) -> list[Outcome]:
        """Choose each target's policy and check that it is applied."""
        if request.policy_id:
            pid = request.policy_id
            return [
                self.check_applied(request.apply_if_missing, t.model_copy(update={"policy_id": pid})) for t in targets
            ]
        if request.policy_name:
            return self._by_policy_name(request, request.policy_name, folder, targets)
        return [self._applied_policy(t, single=len(targets) == 1) for t in targets]

    def _by_policy_name(
        self, request: BackupRequest, name: str, folder: str | None, targets: list[BackupTarget]
    ) -> list[Outcome]:
        folders = [folder] if folder else list(dict.fromkeys(t.folder_id for t in targets if t.folder_id))
        if not folders:
            raise RequestInvalid("policyName needs folderId (in the request or FOLDER_ID)")
        by_folder: dict[str, Policy] = {}
        for f in folders:
            try:
                policies = self.policies_in_folder(f)
            except CloudError as exc:
                raise _request_error(exc, f"listing backup policies of folder {f}") from None
            named = [p for p in policies if p.name == name]
            if len(named) > 1:
                raise RequestInvalid(
                    f'several policies are named "{name}" in folder {f}: send policyId '
                    f"(one of {', '.join(p.id for p in named)})"
                )
            if named:
                by_folder[f] = named[0]
        if not by_folder:
            raise NothingMatched(f'no backup policy named "{name}" in folder {", ".join(folders)}')
        out: list[Outcome] = []
        for t in targets:
            pol = by_folder.get(folder or t.folder_id or "")
            if pol is None:
                out.append(self._failed(t, "NOT_FOUND", f'no backup policy named "{name}" in folder {t.folder_id}'))
            else:
                out.append(
                    self.check_applied(
                        request.apply_if_missing, t.model_copy(update={"policy_id": pol.id, "policy_name": name})
                    )
                )
        return out

    def check_applied(self, apply_if_missing: bool, t: BackupTarget) -> Outcome:
        """The precondition of Execute: the policy is applied to the instance (one listing per policy). Raises
        the backups.errors family for a listing that fails (CloudUnavailable when transient)."""
        pid, iid = t.policy_id or "", t.compute_instance_id or ""
        try:
            mine = self.applications(pid, iid)
        except CloudError as exc:
            if exc.name == "NOT_FOUND":
                raise NothingMatched(f"backup policy {pid} not found", cloud_error=exc) from None
            raise _request_error(exc, f"listing applications of backup policy {pid}") from None
        label = t.policy_name or pid
        if any(not a.is_processing for a in mine):
            return Planned(target=t)
        if mine:
            return Retryable(
                target=t,
                code="POLICY_APPLYING",
                message=f"policy {label} is still being applied to instance {iid}; try again in a few minutes",
                recheck_applied=True,
            )
        if apply_if_missing:
            return Planned(target=t, apply_first=True)
        return self._failed(
            t,
            "POLICY_NOT_APPLIED",
            f"policy {label} is not applied to instance {iid}: " + APPLY_HINT.format(policy=pid, instance=iid),
            9,
        )

    def _applied_policy(self, t: BackupTarget, *, single: bool) -> Outcome:
        """No policy given: the one policy applied to the instance (and done being applied)."""
        iid = t.compute_instance_id or ""
        try:
            if single or not t.folder_id:
                candidates = self.policies_applied_to(iid)
                if len(candidates) == 1:
                    # The service names the one policy applied to it: Execute checks the rest (an apply still in
                    # progress then fails its precondition), and the chat ack saves a round trip.
                    return Planned(target=t.model_copy(update={"policy_id": candidates[0].id}))
            else:
                candidates = self.policies_in_folder(t.folder_id)
            applied = [p for p in candidates if any(not a.is_processing for a in self.applications(p.id, iid))]
        except CloudError as exc:
            raise _request_error(exc, f"listing backup policies applied to instance {iid}") from None
        ids = list(dict.fromkeys(p.id for p in applied))
        if len(ids) == 1:
            return Planned(target=t.model_copy(update={"policy_id": ids[0]}))
        if not ids:
            return self._failed(
                t,
                "POLICY_NOT_APPLIED",
                f"no backup policy is applied to instance {iid}: apply one (yc backup policy apply "
                f"--id <policy> --instance-ids {iid}) or send policyId or policyName",
                9,
            )
        return self._failed(
            t,
            "AMBIGUOUS_POLICY",
            f"{len(ids)} backup policies are applied to instance {iid} ({', '.join(ids)}): "
            "send policyId or policyName to choose one",
            9,
        )
