"""A dry run's preflight: what would make Execute fail for a planned target, found without starting anything.

Resolution already reports a policy that is not applied (POLICY_NOT_APPLIED, a `failed` outcome). What it cannot
see is the instance's side of Cloud Backup; the preflight reads it from the backup resource (`BackupResource`,
`GET /backup/v1/resources/{computeInstanceId}`, or one listing per folder when several targets share one):

- NOT_REGISTERED: the instance is not a Cloud Backup resource (no agent installed or registered);
- AGENT_OFFLINE: its agent is not online (the instance is stopped, or the agent is down);
- AGENT_DISABLED: Cloud Backup is disabled for it.

The preflight never fails the dry run: a resource that cannot be read leaves the target unflagged (and logged).
"""

from __future__ import annotations

from collections import defaultdict

from backups.models import ResultError
from backups.ports import CloudApi
from backups.target import Planned
from observability import get_logger
from ycloud.errors import CloudError
from ycloud.models import BackupResource

PAGE_SIZE = 1000


def _verdict(iid: str, resource: BackupResource | None) -> ResultError | None:
    if resource is None:
        return ResultError(
            code="NOT_REGISTERED",
            message=f"instance {iid} is not registered in Cloud Backup: install and register its backup agent",
        )
    if not resource.online:
        return ResultError(
            code="AGENT_OFFLINE",
            message=f"the backup agent of instance {iid} is offline: start the instance and check its agent "
            f"(yc backup resource get {iid})",
        )
    if not resource.enabled:
        return ResultError(code="AGENT_DISABLED", message=f"Cloud Backup is disabled for instance {iid}")
    return None


def _resources(cloud: CloudApi, planned: list[Planned]) -> dict[str, BackupResource | None]:
    """The backup resource of every planned instance (None: not registered); ids it could not read are absent."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for p in planned:
        by_folder[p.target.folder_id or ""].append(p.target.compute_instance_id or "")
    found: dict[str, BackupResource | None] = {}
    for folder, ids in by_folder.items():
        if folder and len(ids) > 1:
            try:
                listed = {r.compute_instance_id: r for r in cloud.backup_resources.list(folder, page_size=PAGE_SIZE)}
            except CloudError as exc:
                get_logger().warning("preflight: resources not listed", extra={"folderId": folder, "error": exc.name})
                continue
            found.update({iid: listed.get(iid) for iid in ids})
            continue
        for iid in ids:
            try:
                found[iid] = cloud.backup_resources.get(iid)
            except CloudError as exc:
                if exc.name == "NOT_FOUND":
                    found[iid] = None
                else:
                    get_logger().warning("preflight: resource not read", extra={"instanceId": iid, "error": exc.name})
    return found


def flag(planned: list[Planned], cloud: CloudApi) -> list[Planned]:
    """The plan, each target flagged with what would make it fail (or not)."""
    if not planned:
        return planned
    resources = _resources(cloud, planned)
    out = []
    for p in planned:
        iid = p.target.compute_instance_id or ""
        verdict = _verdict(iid, resources[iid]) if iid in resources else None
        out.append(p.model_copy(update={"would_fail": verdict}) if verdict else p)
    return out
