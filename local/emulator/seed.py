"""The demo folder the emulator starts with, and a helper to build large folders for benchmarks.

Every id is 20 characters of [a-z0-9], like real ones (folders `b1g...`, instances `fhm...` in ru-central1-a and
`epd...` in ru-central1-b, users and service accounts `aje...`). Timestamps are fixed so runs are repeatable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from local.emulator.records import Failure, Policy, Subject, token_for

DEMO_FOLDER_ID = "b1gdemofolder0000001"
OTHER_FOLDER_ID = "b1gotherfolder000002"  # the demo token has no access here (403 tests)
BENCH_FOLDER_ID = "b1gbenchfolder000003"  # default folder of create_large_folder

DEMO_USER_ID = "ajedemouser000000001"  # editor of the demo folder; DEMO_TOKEN
DEMO_VIEWER_ID = "ajedemoviewer0000002"  # read-only on the demo folder; VIEWER_TOKEN
OTHER_USER_ID = "ajeotheruser00000003"  # editor of the other folder only; OTHER_TOKEN
DEMO_SA_ID = "ajedemosa00000000004"  # service account for authorized keys (editor of the demo folder)

DEMO_TOKEN = token_for("demo")
VIEWER_TOKEN = token_for("viewer")
OTHER_TOKEN = token_for("other")

POLICY_DAILY = "cbpdefaultdaily00001"
POLICY_WEEKLY = "cbpdefaultweekly0002"
POLICY_MONTHLY = "cbpdefaultmonthly003"  # applied to nothing
POLICY_OTHER = "cbpotherdaily0000004"  # in the other folder

# Demo instances: id -> what it is for.
INSTANCE_PROD_DB = "fhmproddb00000000001"  # env=prod role=db, Default daily: the happy path
INSTANCE_PROD_WEB = "fhmprodweb0000000002"  # env=prod role=web, Default daily
INSTANCE_OPT_OUT = "fhmoptout00000000003"  # env=prod role=db + backup-opt-out=true, Default daily
INSTANCE_OFFLINE = "epdoffline0000000004"  # env=prod role=app, Default daily, agent offline -> FAILED_PRECONDITION
INSTANCE_NO_POLICY = "epdnopolicy000000005"  # env=dev role=db, registered, no policy applied
INSTANCE_TWO_POLICIES = "fhmtwopolicies000006"  # env=prod role=db, Default daily AND Default weekly
INSTANCE_NO_AGENT = "fhmnoagent0000000007"  # env=dev role=web, not registered in Cloud Backup (no Resource)
INSTANCE_STOPPED = "epdstopped0000000008"  # env=staging role=app, STOPPED (agent offline), Default daily
INSTANCE_FLAKY = "fhmflaky000000000009"  # env=staging role=db, Default daily, every backup fails at 50% (INTERNAL)
INSTANCE_OTHER_FOLDER = "fhmotherfolder000010"  # in the other folder, its own daily policy
DEMO_INSTANCE_ID = INSTANCE_PROD_DB  # "the" demo instance (local.runtime's `make run` backs it up)
DEMO_POLICY_ID = POLICY_DAILY

OPT_OUT_LABEL = "backup-opt-out"
SEED_EPOCH = datetime(2026, 1, 15, 10, 0, tzinfo=UTC).timestamp()


class SeedTarget(Protocol):
    """What seeding needs of the state (a Protocol, so this module does not import the state: no cycle)."""

    subjects: dict[str, Subject]

    @property
    def lock(self) -> Any: ...
    def add_subject(self, subject_id: str, folders: Iterable[str], *, read_only: bool = False) -> Subject: ...
    def grant(self, subject_id: str, *folder_ids: str) -> None: ...
    def add_token(self, token: str, subject_id: str, *, expires_at: float | None = None) -> str: ...
    def add_policy(self, policy_id: str, folder_id: str, name: str, **attrs: Any) -> Policy: ...
    def add_instance(self, instance_id: str, folder_id: str, **attrs: Any) -> Any: ...
    def add_application(self, policy_id: str, instance_id: str, **attrs: Any) -> Any: ...


DEMO_INSTANCES: list[dict[str, Any]] = [
    {"id": INSTANCE_PROD_DB, "name": "prod-db-1", "labels": {"env": "prod", "role": "db"}, "policies": [POLICY_DAILY]},
    {
        "id": INSTANCE_PROD_WEB,
        "name": "prod-web-1",
        "labels": {"env": "prod", "role": "web"},
        "policies": [POLICY_DAILY],
    },
    {
        "id": INSTANCE_OPT_OUT,
        "name": "prod-db-legacy",
        "labels": {"env": "prod", "role": "db", OPT_OUT_LABEL: "true"},
        "policies": [POLICY_DAILY],
    },
    {
        "id": INSTANCE_OFFLINE,
        "name": "prod-app-1",
        "labels": {"env": "prod", "role": "app"},
        "zone_id": "ru-central1-b",
        "agent_online": False,
        "policies": [POLICY_DAILY],
    },
    {
        "id": INSTANCE_NO_POLICY,
        "name": "dev-db-1",
        "labels": {"env": "dev", "role": "db"},
        "zone_id": "ru-central1-b",
        "policies": [],
    },
    {
        "id": INSTANCE_TWO_POLICIES,
        "name": "prod-db-2",
        "labels": {"env": "prod", "role": "db"},
        "policies": [POLICY_DAILY, POLICY_WEEKLY],
    },
    {
        "id": INSTANCE_NO_AGENT,
        "name": "dev-web-1",
        "labels": {"env": "dev", "role": "web"},
        "registered": False,
        "agent_online": False,
        "policies": [],
    },
    {
        "id": INSTANCE_STOPPED,
        "name": "staging-app-1",
        "labels": {"env": "staging", "role": "app"},
        "zone_id": "ru-central1-b",
        "status": "STOPPED",
        "agent_online": False,
        "policies": [POLICY_DAILY],
    },
    {
        "id": INSTANCE_FLAKY,
        "name": "staging-db-1",
        "labels": {"env": "staging", "role": "db"},
        "failure": Failure(13, "backup failed: not enough space in the backup vault", 0.5),
        "policies": [POLICY_DAILY],
    },
]


def default_policy_settings(name: str) -> dict[str, Any]:
    """PolicySettings JSON of a default policy: incremental, keep the last 15 backups (int64 as strings)."""
    lowered = name.lower()
    period = "WEEKLY" if "week" in lowered else "MONTHLY" if "month" in lowered else "DAILY"
    retries = {"enabled": True, "interval": {"type": "MINUTES", "count": "5"}, "maxAttempts": "10"}
    time_spec: dict[str, Any] = {"repeatAt": [{"hour": "3", "minute": "0"}], "type": period}
    if period == "WEEKLY":
        time_spec["weekdays"] = ["MONDAY"]
    if period == "MONTHLY":
        time_spec["monthdays"] = ["1"]
    return {
        "compression": "NORMAL",
        "format": "AUTO",
        "multiVolumeSnapshottingEnabled": True,
        "reattempts": retries,
        "vmSnapshotReattempts": retries,
        "silentModeEnabled": True,
        "splitting": {"size": "1099511627776"},
        "vss": {"enabled": True, "provider": "NATIVE"},
        "archive": {"name": "[Machine Name]-[Plan ID]-[Unique ID]A"},
        "performanceWindow": {},
        "retention": {"rules": [{"maxCount": "15"}]},
        "scheduling": {
            "backupSets": [{"time": time_spec, "type": "TYPE_INCREMENTAL"}],
            "enabled": True,
            "maxParallelBackups": "2",
            "randMaxDelay": {"type": "MINUTES", "count": "30"},
            "scheme": "ALWAYS_INCREMENTAL",
            "weeklyBackupDay": "MONDAY",
        },
        "cbt": "USE_IF_ENABLED",
        "fastBackupEnabled": True,
    }


def seed_demo(state: SeedTarget) -> None:
    """Fill an (empty) state with the demo folder, the other folder, their subjects and tokens."""
    with state.lock:
        state.add_subject(DEMO_USER_ID, [DEMO_FOLDER_ID])
        state.add_subject(DEMO_VIEWER_ID, [DEMO_FOLDER_ID], read_only=True)
        state.add_subject(OTHER_USER_ID, [OTHER_FOLDER_ID])
        state.add_subject(DEMO_SA_ID, [DEMO_FOLDER_ID])
        state.add_token(DEMO_TOKEN, DEMO_USER_ID)
        state.add_token(VIEWER_TOKEN, DEMO_VIEWER_ID)
        state.add_token(OTHER_TOKEN, OTHER_USER_ID)

        for i, (pid, name) in enumerate(
            [(POLICY_DAILY, "Default daily"), (POLICY_WEEKLY, "Default weekly"), (POLICY_MONTHLY, "Default monthly")]
        ):
            state.add_policy(pid, DEMO_FOLDER_ID, name, created_at=SEED_EPOCH - 86400 + i)
        state.add_policy(POLICY_OTHER, OTHER_FOLDER_ID, "Default daily", created_at=SEED_EPOCH - 86400)

        for i, spec in enumerate(DEMO_INSTANCES):
            attrs = {k: v for k, v in spec.items() if k not in ("id", "policies")}
            created = SEED_EPOCH + 60 * i
            state.add_instance(spec["id"], DEMO_FOLDER_ID, created_at=created, **attrs)
            for pid in spec["policies"]:
                state.add_application(pid, spec["id"], created_at=created + 30)
        state.add_instance(
            INSTANCE_OTHER_FOLDER,
            OTHER_FOLDER_ID,
            name="other-db-1",
            labels={"env": "prod", "role": "db"},
            created_at=SEED_EPOCH,
        )
        state.add_application(POLICY_OTHER, INSTANCE_OTHER_FOLDER, created_at=SEED_EPOCH + 30)


def create_large_folder(
    state: SeedTarget,
    folder_id: str = BENCH_FOLDER_ID,
    count: int = 1000,
    *,
    labels: dict[str, str] | None = None,
    id_prefix: str = "fhmbench",
    policy_name: str = "Default daily",
    apply: bool = True,
    grant_to: Iterable[str] = (DEMO_USER_ID, DEMO_SA_ID),
    agent_online: bool = True,
    backup_duration: float | None = None,
) -> list[str]:
    """Add a folder with `count` running, registered instances (labels default {"backup": "daily"}), one policy
    (id returned by `large_folder_policy_id(folder_id)`) applied to all of them unless apply=False, and grant the
    given subjects access. Instance ids are `id_prefix` + a zero-padded index, 20 characters. Returns the ids."""
    labels = {"backup": "daily"} if labels is None else labels
    width = 20 - len(id_prefix)
    if width < len(str(max(count - 1, 0))):
        raise ValueError("id_prefix too long for that many instances")
    policy_id = large_folder_policy_id(folder_id)
    ids: list[str] = []
    with state.lock:
        for subject_id in grant_to:
            if subject_id in state.subjects:
                state.grant(subject_id, folder_id)
        state.add_policy(policy_id, folder_id, policy_name, created_at=SEED_EPOCH - 86400)
        for i in range(count):
            iid = f"{id_prefix}{i:0{width}d}"
            state.add_instance(
                iid,
                folder_id,
                name=f"bench-{i:05d}",
                labels=dict(labels),
                created_at=SEED_EPOCH + i,
                agent_online=agent_online,
                backup_duration=backup_duration,
            )
            if apply:
                state.add_application(policy_id, iid, created_at=SEED_EPOCH + i + 30)
            ids.append(iid)
    return ids


def large_folder_policy_id(folder_id: str) -> str:
    return "cbp" + hashlib.sha256(folder_id.encode()).hexdigest()[:17]


def demo_summary() -> dict[str, Any]:
    """What the command line prints: ids worth knowing."""
    return {
        "folderId": DEMO_FOLDER_ID,
        "otherFolderId": OTHER_FOLDER_ID,
        "token": DEMO_TOKEN,
        "viewerToken": VIEWER_TOKEN,
        "otherToken": OTHER_TOKEN,
        "serviceAccountId": DEMO_SA_ID,
        "policies": {"Default daily": POLICY_DAILY, "Default weekly": POLICY_WEEKLY, "Default monthly": POLICY_MONTHLY},
        "instances": {spec["name"]: spec["id"] for spec in DEMO_INSTANCES},
    }
