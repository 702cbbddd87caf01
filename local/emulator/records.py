"""The emulator's records (subjects, tokens, keys, instances, policies, applications, operations) and small helpers.

Plain dataclasses with no behaviour beyond what an operation computes from the clock: an operation stores when it
started, when it ends and how it fails; whether it is done, its error and its progress are derived from `now`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.emulator.errors import CANCELLED, INTERNAL, invalid, parse_code

ID_RE = re.compile(r"^[a-z0-9]{1,50}$")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prune(obj: dict[str, Any]) -> dict[str, Any]:
    """Proto3 JSON leaves out fields at their default value (false, "", empty map/list, unset message)."""
    return {k: v for k, v in obj.items() if v is not None and v is not False and v != "" and v != {} and v != []}


def check_id(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise invalid(f"{field_name}: invalid resource id {value!r} (expected [a-z0-9]{{1,50}})", field_name)
    return value


def resource_id(instance_id: str) -> str:
    """A stable UUID-like Cloud Backup resource id for an instance."""
    h = hashlib.sha256(instance_id.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def token_for(seed: str) -> str:
    """A deterministic token in the documented `t1.<...>.<86 chars>` shape (for static seeded tokens)."""
    return f"t1.{seed}." + hashlib.sha512(seed.encode()).hexdigest()[:86]


# --- records ------------------------------------------------------------------------------------------------


@dataclass
class Subject:
    """Who a token belongs to (a user or a service account) and the folders it may use."""

    id: str
    folders: set[str] = field(default_factory=set)
    read_only: bool = False  # may read, may not Apply/Execute/Revoke/Cancel (backup.viewer)


@dataclass
class TokenInfo:
    subject_id: str
    expires_at: float | None  # None: never expires


@dataclass
class AuthorizedKey:
    id: str
    service_account_id: str
    public_key: str  # PEM


@dataclass
class Failure:
    """How the backups of an instance fail: with `code`/`message` at `at` (0..1) of the nominal duration.

    before_done=False: the operation ends (done, error) at that moment.
    before_done=True: the error appears at that moment while done stays false until the full duration has passed
    (the design guide's "error may appear before done while the service rolls back").
    once=True: only the next backup fails; the failure is then cleared.
    """

    code: int = INTERNAL
    message: str = "backup failed: the agent reported an error"
    at: float = 0.5
    before_done: bool = False
    once: bool = False

    def __post_init__(self) -> None:
        self.code = parse_code(self.code)
        if self.code == 0:
            raise ValueError("a failure needs a non-zero code")
        if not 0.0 <= float(self.at) <= 1.0:
            raise ValueError("failure 'at' must be within 0..1")
        self.at = float(self.at)


@dataclass
class Instance:
    id: str
    folder_id: str
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    zone_id: str = "ru-central1-a"
    platform_id: str = "standard-v3"
    status: str = "RUNNING"
    description: str = ""
    host_id: str = ""
    created_at: float = 0.0
    # The Cloud Backup side of the instance:
    registered: bool = True  # known to Cloud Backup: has a Resource (agent installed)
    agent_online: bool = True
    backup_duration: float | None = None  # nominal seconds; None: the state's default
    failure: Failure | None = None
    progress_mode: str | None = None  # None: the state's mode
    last_backup_time: float | None = None
    last_backup_failed: str = ""


@dataclass
class Policy:
    id: str
    folder_id: str
    name: str
    enabled: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class Application:
    policy_id: str
    compute_instance_id: str
    enabled: bool = True
    status: str = "OK"
    created_at: float = 0.0
    is_processing: bool = False


@dataclass
class Operation:
    id: str
    kind: str  # "execute" | "apply" | "revoke"
    description: str
    folder_id: str
    created_by: str
    policy_id: str
    instance_id: str
    start: float
    end: float
    progress_mode: str = "number"
    failure: Failure | None = None
    cancelled_at: float | None = None
    settled: bool = False
    idempotency_key: str = ""

    @property
    def error_at(self) -> float | None:
        if self.failure is None:
            return None
        return self.start + self.failure.at * (self.end - self.start)

    @property
    def done_at(self) -> float:
        err = self.error_at
        if self.cancelled_at is not None and (err is None or self.cancelled_at < err):
            return self.cancelled_at
        if self.failure is not None and err is not None and not self.failure.before_done:
            return err
        return self.end

    def error(self, now: float) -> tuple[int, str] | None:
        err = self.error_at
        if self.cancelled_at is not None and now >= self.cancelled_at and (err is None or self.cancelled_at < err):
            return CANCELLED, "operation cancelled"
        if self.failure is not None and err is not None and now >= err:
            return self.failure.code, self.failure.message
        return None

    def is_done(self, now: float) -> bool:
        return now >= self.done_at

    def progress(self, now: float) -> float:
        if self.is_done(now) and self.error(now) is None:
            return 100.0
        stop = min(x for x in (now, self.end, self.error_at, self.cancelled_at) if x is not None)
        span = self.end - self.start
        if span <= 0:
            return 100.0
        return max(0.0, min(100.0, (stop - self.start) / span * 100.0))
