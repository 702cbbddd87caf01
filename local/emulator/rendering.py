"""Records as the API shows them: proto3 JSON (camelCase names, int64 as strings, default values left out).

Pure functions of a record and what it needs from the state (the clock, a running backup), so each answer's shape
is readable in one place and testable without a server.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from local.emulator.records import Application, Instance, Operation, Policy, prune, resource_id, rfc3339

EXECUTE_METADATA = "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata"
APPLY_METADATA = "type.googleapis.com/yandex.cloud.backup.v1.ApplyPolicyMetadata"
REVOKE_METADATA = "type.googleapis.com/yandex.cloud.backup.v1.RevokeMetadata"
EMPTY = "type.googleapis.com/google.protobuf.Empty"


def render_operation(op: Operation, now: float) -> dict[str, Any]:
    done = op.is_done(now)
    meta: dict[str, Any]
    if op.kind == "execute":
        meta = {"@type": EXECUTE_METADATA, "policyId": op.policy_id, "computeInstanceId": op.instance_id}
        pct = round(op.progress(now), 2)
        if op.progress_mode != "none" and pct > 0:  # 0.0 is the proto3 default: left out
            meta["progressPercentage"] = pct if op.progress_mode == "number" else f"{pct:g}"
    else:
        meta_type = APPLY_METADATA if op.kind == "apply" else REVOKE_METADATA
        meta = {"@type": meta_type, "policyId": op.policy_id, "computeInstanceId": op.instance_id}
    out: dict[str, Any] = {
        "id": op.id,
        "description": op.description,
        "createdAt": rfc3339(op.start),
        "createdBy": op.created_by,
        "modifiedAt": rfc3339(min(now, op.done_at) if done else now),
    }
    if done:  # proto3: `done: false` is left out
        out["done"] = True
    out["metadata"] = meta
    err = op.error(now)
    if err is not None:
        out["error"] = {"code": err[0], "message": err[1], "details": []}
    elif done:
        out["response"] = {"@type": EMPTY}
    return out


def render_policy(p: Policy) -> dict[str, Any]:
    return prune(
        {
            "id": p.id,
            "name": p.name,
            "createdAt": rfc3339(p.created_at),
            "updatedAt": rfc3339(p.updated_at),
            "enabled": p.enabled,
            "settings": p.settings,
            "folderId": p.folder_id,
        }
    )


def render_application(a: Application, running_policy_id: str | None) -> dict[str, Any]:
    """`running_policy_id`: the policy of the backup running on the instance now, if any (status RUNNING)."""
    status = a.status
    if running_policy_id is not None and running_policy_id == a.policy_id and status == "OK":
        status = "RUNNING"
    return prune(
        {
            "policyId": a.policy_id,
            "computeInstanceId": a.compute_instance_id,
            "enabled": a.enabled,
            "status": status,
            "createdAt": rfc3339(a.created_at),
            "isProcessing": a.is_processing,
        }
    )


def render_resource(inst: Instance, now: float, running: Operation | None, has_policy: bool) -> dict[str, Any]:
    """The Cloud Backup Resource of an instance; `has_policy`: a policy is applied (and not processing)."""
    details = ""
    progress = None
    if running is not None:
        status = "BACKUPING"
        progress = str(int(running.progress(now)))
    elif not has_policy:
        status, details = "OTHER", "no_policies_applied"
    elif inst.last_backup_failed:
        status, details = "FAILED", inst.last_backup_failed
    else:
        status = "IDLE"
    return prune(
        {
            "computeInstanceId": inst.id,
            "createdAt": rfc3339(inst.created_at),
            "updatedAt": rfc3339(max(inst.created_at, inst.last_backup_time or 0.0)),
            "online": inst.agent_online,
            "enabled": True,
            "status": status,
            "statusDetails": details,
            "statusProgress": progress,
            "lastBackupTime": rfc3339(inst.last_backup_time) if inst.last_backup_time else None,
            "resourceId": resource_id(inst.id),
            "isActive": True,
            "initStatus": "REGISTRED",
            "metadata": "null",
            "type": "COMPUTE",
            "agentInfo": {"currentVersion": "24.1.37802", "latestVersion": "24.1.37802"},
        }
    )


def render_instance(inst: Instance) -> dict[str, Any]:
    return prune(
        {
            "id": inst.id,
            "folderId": inst.folder_id,
            "createdAt": rfc3339(inst.created_at),
            "name": inst.name,
            "description": inst.description,
            "labels": dict(inst.labels),
            "zoneId": inst.zone_id,
            "platformId": inst.platform_id,
            "resources": {"memory": "4294967296", "cores": "2", "coreFraction": "100"},
            "status": inst.status,
            "bootDisk": {
                "mode": "READ_WRITE",
                "deviceName": "boot",
                "autoDelete": True,
                "diskId": "d" + inst.id[1:],
            },
            "networkInterfaces": [
                {"index": "0", "subnetId": "e9bdemosubnet0000001", "primaryV4Address": {"address": "10.128.0.10"}}
            ],
            "fqdn": f"{inst.id}.auto.internal",
            "schedulingPolicy": {},
            "networkSettings": {"type": "STANDARD"},
            "placementPolicy": {},
            "hostId": inst.host_id,
        }
    )


def filter_fields(inst: Instance) -> dict[str, str]:
    return {
        "id": inst.id,
        "name": inst.name,
        "created_at": rfc3339(inst.created_at),
        "status": inst.status,
        "zone_id": inst.zone_id,
        "platform_id": inst.platform_id,
        "host_id": inst.host_id,
    }


def instance_summary(inst: Instance) -> dict[str, Any]:
    out = asdict(inst)
    out["created_at"] = rfc3339(inst.created_at)
    return out
