"""EmulatorState: every object the emulator knows, its clock, faults and logs, behind one lock.

Operations are evaluated lazily against the clock: an operation stores when it started, when it ends and how it
fails; what `GET /operations/{id}` shows is computed from `now()`. Side effects of finished operations (an
application created by Apply, the last backup time of an instance) are settled at the start of every access.
So an injected clock (or `advance_clock`) moves every backup forward without sleeping or background threads.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.emulator.config import PROGRESS_MODES, EmulatorConfig
from local.emulator.errors import (
    ALREADY_EXISTS,
    CANCELLED,
    INTERNAL,
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    ApiError,
    code_name,
    invalid,
    not_found,
    parse_code,
    precondition,
)

ID_RE = re.compile(r"^[a-z0-9]{1,50}$")
IAM_AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
MAX_JWT_LIFETIME = 3600.0
CLOCK_SKEW = 300.0
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

EXECUTE_METADATA = "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata"
APPLY_METADATA = "type.googleapis.com/yandex.cloud.backup.v1.ApplyPolicyMetadata"
REVOKE_METADATA = "type.googleapis.com/yandex.cloud.backup.v1.RevokeMetadata"
EMPTY = "type.googleapis.com/google.protobuf.Empty"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prune(obj: dict[str, Any]) -> dict[str, Any]:
    """Proto3 JSON leaves out fields at their default value (false, "", empty map/list, unset message)."""
    return {k: v for k, v in obj.items() if v is not None and v is not False and v != "" and v != {} and v != []}


def check_id(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise invalid(f"{field_name}: invalid resource id {value!r} (expected [a-z0-9]{{1,50}})", field_name)
    return value


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

    def render(self, now: float) -> dict[str, Any]:
        done = self.is_done(now)
        meta: dict[str, Any]
        if self.kind == "execute":
            meta = {"@type": EXECUTE_METADATA, "policyId": self.policy_id, "computeInstanceId": self.instance_id}
            pct = round(self.progress(now), 2)
            if self.progress_mode != "none" and pct > 0:  # 0.0 is the proto3 default: left out
                meta["progressPercentage"] = pct if self.progress_mode == "number" else f"{pct:g}"
        else:
            meta_type = APPLY_METADATA if self.kind == "apply" else REVOKE_METADATA
            meta = {"@type": meta_type, "policyId": self.policy_id, "computeInstanceId": self.instance_id}
        out: dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "createdAt": rfc3339(self.start),
            "createdBy": self.created_by,
            "modifiedAt": rfc3339(min(now, self.done_at) if done else now),
        }
        if done:  # proto3: `done: false` is left out
            out["done"] = True
        out["metadata"] = meta
        err = self.error(now)
        if err is not None:
            out["error"] = {"code": err[0], "message": err[1], "details": []}
        elif done:
            out["response"] = {"@type": EMPTY}
        return out


@dataclass
class FaultRule:
    """Faults for requests whose path matches `path` (fnmatch, e.g. "/backup/v1/policies/*:execute", "*").

    One random draw per matching request picks at most one of: drop (close the connection without an answer,
    request not processed), 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, drop_response (request processed, then the
    connection is closed without an answer). `latency` (+ uniform `latency_jitter`) real seconds are added
    before answering. `times`: at most that many faults are injected by this rule, then it only adds latency.
    The first rule (in order) matching the method and path applies.
    """

    path: str = "*"
    methods: list[str] | None = None
    rate_429: float = 0.0
    rate_503: float = 0.0
    retry_after: float | None = None  # seconds, sent as Retry-After on injected 429/503
    latency: float = 0.0
    latency_jitter: float = 0.0
    drop_rate: float = 0.0
    drop_response_rate: float = 0.0
    times: int | None = None
    spent: int = field(default=0, init=False)  # faults injected so far by this rule

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_503", "drop_rate", "drop_response_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
            setattr(self, name, value)
        total = self.rate_429 + self.rate_503 + self.drop_rate + self.drop_response_rate
        if total > 1.0 + 1e-9:
            raise ValueError("the fault rates of one rule add up to more than 1")
        if self.latency < 0 or self.latency_jitter < 0:
            raise ValueError("latency must be >= 0")
        if self.methods is not None:
            self.methods = [m.upper() for m in self.methods]

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return fnmatch.fnmatchcase(path, self.path)


@dataclass
class FaultDecision:
    latency: float = 0.0
    action: str | None = None  # None | "drop" | "429" | "503" | "drop_response"
    retry_after: float | None = None
    rule: int | None = None


# --- the state ----------------------------------------------------------------------------------------------


class EmulatorState:
    """All emulator data. Every public method takes the (re-entrant) lock; `lock` is exposed for the server."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.lock = threading.RLock()
        self._base_clock: Callable[[], float] = self.config.clock or time.time
        self._clock_offset = 0.0
        self.reset()

    # --- lifecycle and settings -------------------------------------------------------------------------

    def reset(self, demo: bool | None = None) -> None:
        """Back to the initial state: data, tokens, keys, faults, logs, settings (the clock never goes back)."""
        with self.lock:
            self.time_scale = float(self.config.time_scale)
            self.token_lifetime = float(self.config.token_lifetime)
            self.default_backup_duration = float(self.config.default_backup_duration)
            self.apply_duration = float(self.config.apply_duration)
            self.progress_mode = self.config.progress_mode
            self.subjects: dict[str, Subject] = {}
            self.tokens: dict[str, TokenInfo] = {}
            self.keys: dict[str, AuthorizedKey] = {}
            self.instances: dict[str, Instance] = {}
            self.policies: dict[str, Policy] = {}
            self.applications: dict[tuple[str, str], Application] = {}
            self.operations: dict[str, Operation] = {}
            self._unsettled: set[str] = set()
            self._running: dict[str, str] = {}  # instance id -> execute operation id
            self._idempotency: dict[tuple[str, str], tuple[str, str]] = {}  # (subject, key) -> (fingerprint, op)
            self.faults: list[FaultRule] = []
            self._fault_rng = random.Random(f"faults:{self.config.seed}")
            self._id_rng = random.Random(f"ids:{self.config.seed}")
            self._execute_log: list[dict[str, Any]] = []
            self._call_log: list[dict[str, Any]] = []
            if self.config.demo if demo is None else demo:
                from local.emulator.seed import seed_demo

                seed_demo(self)

    def set_settings(
        self,
        *,
        time_scale: float | None = None,
        token_lifetime: float | None = None,
        default_backup_duration: float | None = None,
        apply_duration: float | None = None,
        progress_mode: str | None = None,
    ) -> None:
        """Change settings for what starts from now on (running operations keep their timing)."""
        with self.lock:
            if time_scale is not None:
                if time_scale <= 0:
                    raise ValueError("time_scale must be > 0")
                self.time_scale = float(time_scale)
            if token_lifetime is not None:
                self.token_lifetime = float(token_lifetime)
            if default_backup_duration is not None:
                self.default_backup_duration = float(default_backup_duration)
            if apply_duration is not None:
                self.apply_duration = float(apply_duration)
            if progress_mode is not None:
                self.set_progress_mode(progress_mode)

    def settings(self) -> dict[str, Any]:
        with self.lock:
            return {
                "timeScale": self.time_scale,
                "tokenLifetime": self.token_lifetime,
                "defaultBackupDuration": self.default_backup_duration,
                "applyDuration": self.apply_duration,
                "progressMode": self.progress_mode,
                "now": rfc3339(self.now()),
                "clockOffset": self._clock_offset,
            }

    # --- clock --------------------------------------------------------------------------------------------

    def now(self) -> float:
        return self._base_clock() + self._clock_offset

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward (on top of the injected or wall clock); returns the new now()."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self._clock_offset += float(seconds)
            return self.now()

    # --- ids ----------------------------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        with self.lock:
            while True:
                candidate = prefix + "".join(self._id_rng.choice(_ID_ALPHABET) for _ in range(20 - len(prefix)))
                if candidate not in self.operations and candidate not in self.instances:
                    return candidate

    # --- subjects, tokens, keys -----------------------------------------------------------------------------

    def add_subject(self, subject_id: str, folders: Iterable[str], *, read_only: bool = False) -> Subject:
        with self.lock:
            subject = Subject(subject_id, set(folders), read_only)
            self.subjects[subject_id] = subject
            return subject

    def grant(self, subject_id: str, *folder_ids: str) -> None:
        with self.lock:
            self.subjects[subject_id].folders.update(folder_ids)

    def add_token(self, token: str, subject_id: str, *, expires_at: float | None = None) -> str:
        with self.lock:
            if subject_id not in self.subjects:
                raise KeyError(f"unknown subject {subject_id}")
            self.tokens[token] = TokenInfo(subject_id, expires_at)
            return token

    def issue_token(self, subject_id: str, lifetime: float | None = None) -> tuple[str, float]:
        """A new `t1.` token for the subject; lifetime in clock seconds (None: the state's token_lifetime)."""
        with self.lock:
            body = "".join(self._id_rng.choice(_B64URL) for _ in range(22))
            sig = "".join(self._id_rng.choice(_B64URL) for _ in range(86))
            token = f"t1.{body}.{sig}"
            expires = self.now() + (self.token_lifetime if lifetime is None else lifetime)
            self.add_token(token, subject_id, expires_at=expires)
            return token, expires

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def register_key(self, key_id: str, service_account_id: str, public_key_pem: str) -> AuthorizedKey:
        with self.lock:
            if service_account_id not in self.subjects:
                self.add_subject(service_account_id, [])
            key = AuthorizedKey(key_id, service_account_id, public_key_pem)
            self.keys[key_id] = key
            return key

    def create_authorized_key(self, service_account_id: str, folders: Iterable[str] | None = None) -> dict[str, str]:
        """Generate an RSA-2048 key pair, register it and return the key JSON as `yc iam key create` writes it."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public_pem = (
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        with self.lock:
            if folders is not None:
                if service_account_id in self.subjects:
                    self.grant(service_account_id, *folders)
                else:
                    self.add_subject(service_account_id, folders)
            key_id = self.new_id("aje")
            self.register_key(key_id, service_account_id, public_pem)
            return {
                "id": key_id,
                "service_account_id": service_account_id,
                "created_at": rfc3339(self.now()),
                "key_algorithm": "RSA_2048",
                "public_key": public_pem,
                "private_key": private_pem,
            }

    def authenticate(self, authorization: str | None) -> Subject:
        """`Authorization: Bearer <token>` -> the subject; 401 UNAUTHENTICATED when missing/unknown/expired."""
        with self.lock:
            if not authorization:
                raise ApiError(UNAUTHENTICATED, "The token is missing: send Authorization: Bearer <IAM token>.")
            scheme, _, token = authorization.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise ApiError(UNAUTHENTICATED, "Unsupported authorization scheme: expected Bearer <IAM token>.")
            info = self.tokens.get(token)
            if info is None or (info.expires_at is not None and self.now() >= info.expires_at):
                raise ApiError(UNAUTHENTICATED, "Token is invalid or has expired.")
            subject = self.subjects.get(info.subject_id)
            if subject is None:
                raise ApiError(UNAUTHENTICATED, "Token is invalid or has expired.")
            return subject

    def exchange_jwt(self, token: Any) -> tuple[str, float]:
        """POST /iam/v1/tokens: verify a PS256 JWT signed by a registered authorized key; issue an IAM token."""
        if not isinstance(token, str) or not token:
            raise invalid("jwt: a signed JWT is required", "jwt")
        if len(token) > 8000:
            raise invalid("jwt: longer than 8000 characters", "jwt")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise invalid(f"jwt: malformed JWT ({exc})", "jwt") from exc
        if header.get("alg") != "PS256":
            raise ApiError(UNAUTHENTICATED, "JWT: the only supported algorithm is PS256")
        with self.lock:
            key = self.keys.get(str(header.get("kid", "")))
            if key is None:
                raise ApiError(UNAUTHENTICATED, "JWT: unknown key id (kid)")
            try:
                claims = jwt.decode(
                    token,
                    key.public_key,
                    algorithms=["PS256"],
                    audience=IAM_AUDIENCE,
                    options={
                        "verify_exp": False,  # checked below against the emulator's clock
                        "verify_iat": False,
                        "verify_nbf": False,
                        "require": ["iss", "aud", "iat", "exp"],
                    },
                )
            except jwt.InvalidAudienceError as exc:
                raise ApiError(UNAUTHENTICATED, f"JWT: aud must be {IAM_AUDIENCE}") from exc
            except jwt.InvalidSignatureError as exc:
                raise ApiError(UNAUTHENTICATED, "JWT: signature verification failed") from exc
            except jwt.PyJWTError as exc:
                raise ApiError(UNAUTHENTICATED, f"JWT: invalid ({exc})") from exc
            now = self.now()
            try:
                iat, exp = float(claims["iat"]), float(claims["exp"])
            except (TypeError, ValueError) as exc:
                raise ApiError(UNAUTHENTICATED, "JWT: iat and exp must be numbers") from exc
            if claims.get("iss") != key.service_account_id:
                raise ApiError(UNAUTHENTICATED, "JWT: iss is not the key's service account")
            if exp <= now:
                raise ApiError(UNAUTHENTICATED, "JWT: expired")
            if iat > now + CLOCK_SKEW:
                raise ApiError(UNAUTHENTICATED, "JWT: issued in the future")
            if exp <= iat or exp - iat > MAX_JWT_LIFETIME:
                raise ApiError(UNAUTHENTICATED, "JWT: exp must be after iat and at most one hour later")
            return self.issue_token(key.service_account_id)

    def check_folder(self, subject: Subject, folder_id: str, *, write: bool = False) -> None:
        if folder_id not in subject.folders:
            raise ApiError(PERMISSION_DENIED, f"Permission denied to folder {folder_id}")
        if write and subject.read_only:
            raise ApiError(PERMISSION_DENIED, f"Permission denied: {subject.id} may not modify folder {folder_id}")

    # --- data: instances, policies, applications -------------------------------------------------------------

    def add_instance(self, instance_id: str, folder_id: str, **attrs: Any) -> Instance:
        """Add or replace an instance. attrs: the Instance fields (name, labels, zone_id, status, agent_online,
        registered, backup_duration, failure (Failure or dict), progress_mode, ...)."""
        check_id(instance_id, "instanceId")
        check_id(folder_id, "folderId")
        with self.lock:
            attrs.setdefault("name", instance_id)
            attrs.setdefault("created_at", self.now())
            if isinstance(attrs.get("failure"), dict):
                attrs["failure"] = Failure(**attrs["failure"])
            if attrs.get("progress_mode") not in (None, *PROGRESS_MODES):
                raise ValueError(f"progress_mode must be one of {PROGRESS_MODES}")
            inst = Instance(id=instance_id, folder_id=folder_id, **attrs)
            self.instances[instance_id] = inst
            return inst

    def update_instance(self, instance_id: str, **attrs: Any) -> Instance:
        with self.lock:
            inst = self.instances.get(instance_id)
            if inst is None:
                raise KeyError(f"unknown instance {instance_id}")
            allowed = {f.name for f in fields(Instance)} - {"id"}
            unknown = set(attrs) - allowed
            if unknown:
                raise ValueError(f"unknown instance fields: {sorted(unknown)}")
            if isinstance(attrs.get("failure"), dict):
                attrs["failure"] = Failure(**attrs["failure"])
            if attrs.get("progress_mode") not in (None, *PROGRESS_MODES):
                raise ValueError(f"progress_mode must be one of {PROGRESS_MODES}")
            for key, value in attrs.items():
                setattr(inst, key, value)
            return inst

    def remove_instance(self, instance_id: str) -> None:
        with self.lock:
            self.instances.pop(instance_id, None)
            for key in [k for k in self.applications if k[1] == instance_id]:
                del self.applications[key]

    def set_agent_online(self, instance_id: str, online: bool = True) -> None:
        self.update_instance(instance_id, agent_online=online)

    def set_backup_duration(self, instance_id: str | None, seconds: float | None) -> None:
        """Nominal duration of the instance's backups (None: back to the default); instance None: the default."""
        with self.lock:
            if instance_id is None:
                if seconds is None:
                    raise ValueError("the default duration cannot be None")
                self.default_backup_duration = float(seconds)
            else:
                self.update_instance(instance_id, backup_duration=seconds)

    def set_failure(
        self,
        instance_id: str,
        code: int | str = INTERNAL,
        message: str = "backup failed: the agent reported an error",
        *,
        at: float = 0.5,
        before_done: bool = False,
        once: bool = False,
    ) -> None:
        failure = Failure(parse_code(code), message, at, before_done, once)
        self.update_instance(instance_id, failure=failure)

    def set_backup(
        self,
        instance_id: str,
        *,
        minutes: float | None = None,
        seconds: float | None = None,
        fail: bool = False,
        code: int | str = INTERNAL,
        message: str = "backup failed: the agent reported an error",
    ) -> None:
        """Convenience: the nominal duration of the instance's backups and whether they fail (at 50%)."""
        with self.lock:
            if minutes is not None or seconds is not None:
                self.set_backup_duration(instance_id, (minutes or 0.0) * 60.0 + (seconds or 0.0))
            if fail:
                self.set_failure(instance_id, code, message)
            else:
                self.clear_failure(instance_id)

    def clear_failure(self, instance_id: str) -> None:
        self.update_instance(instance_id, failure=None)

    def set_progress_mode(self, mode: str, instance_id: str | None = None) -> None:
        """ "number" | "string" | "none", for every instance (instance_id None) or one."""
        if mode not in PROGRESS_MODES:
            raise ValueError(f"progress_mode must be one of {PROGRESS_MODES}")
        with self.lock:
            if instance_id is None:
                self.progress_mode = mode
            else:
                self.update_instance(instance_id, progress_mode=mode)

    def add_policy(self, policy_id: str, folder_id: str, name: str, **attrs: Any) -> Policy:
        check_id(policy_id, "policyId")
        check_id(folder_id, "folderId")
        with self.lock:
            now = self.now()
            attrs.setdefault("created_at", now)
            attrs.setdefault("updated_at", attrs["created_at"])
            if "settings" not in attrs:
                from local.emulator.seed import default_policy_settings

                attrs["settings"] = default_policy_settings(name)
            policy = Policy(id=policy_id, folder_id=folder_id, name=name, **attrs)
            self.policies[policy_id] = policy
            return policy

    def add_application(self, policy_id: str, instance_id: str, **attrs: Any) -> Application:
        with self.lock:
            if policy_id not in self.policies:
                raise KeyError(f"unknown policy {policy_id}")
            if instance_id not in self.instances:
                raise KeyError(f"unknown instance {instance_id}")
            attrs.setdefault("created_at", self.now())
            app = Application(policy_id=policy_id, compute_instance_id=instance_id, **attrs)
            self.applications[(policy_id, instance_id)] = app
            return app

    def remove_application(self, policy_id: str, instance_id: str) -> None:
        with self.lock:
            self.applications.pop((policy_id, instance_id), None)

    # --- faults ---------------------------------------------------------------------------------------------

    def set_faults(self, rules: Iterable[FaultRule | dict[str, Any]], *, seed: str | int | None = None) -> None:
        """Replace the fault rules (first match wins); a seed restarts the fault RNG for a repeatable run."""
        parsed = [replace(r) if isinstance(r, FaultRule) else FaultRule(**r) for r in rules]  # fresh counters
        with self.lock:
            self.faults = parsed
            if seed is not None:
                self._fault_rng = random.Random(f"faults:{seed}")

    def add_fault(self, rule: FaultRule | None = None, **kwargs: Any) -> FaultRule:
        """Insert a rule in front of the others (so a per-path rule added after a global one takes precedence)."""
        new = replace(rule) if rule is not None else FaultRule(**kwargs)
        with self.lock:
            self.faults.insert(0, new)
            return new

    def clear_faults(self) -> None:
        self.set_faults([])

    def fault_rules(self) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(r) for r in self.faults]

    def draw_fault(self, method: str, path: str) -> FaultDecision:
        with self.lock:
            for index, rule in enumerate(self.faults):
                if not rule.matches(method, path):
                    continue
                decision = FaultDecision(latency=rule.latency, retry_after=rule.retry_after, rule=index)
                if rule.latency_jitter:
                    decision.latency += self._fault_rng.uniform(0.0, rule.latency_jitter)
                if rule.times is not None and rule.spent >= rule.times:
                    return decision
                r = self._fault_rng.random()
                edge = 0.0
                for action, rate in (
                    ("drop", rule.drop_rate),
                    ("429", rule.rate_429),
                    ("503", rule.rate_503),
                    ("drop_response", rule.drop_response_rate),
                ):
                    edge += rate
                    if rate > 0 and r < edge:
                        decision.action = action
                        rule.spent += 1
                        break
                return decision
            return FaultDecision()

    # --- logs -----------------------------------------------------------------------------------------------

    @property
    def execute_log(self) -> list[dict[str, Any]]:
        """Every Execute that started a backup: time, at, policyId, computeInstanceId, idempotencyKey, ..."""
        with self.lock:
            return copy.deepcopy(self._execute_log)

    @property
    def call_log(self) -> list[dict[str, Any]]:
        """Every API request (not /_emulator/): time, method, path, query, status, code, requestId, fault."""
        with self.lock:
            return copy.deepcopy(self._call_log)

    def log_call(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._call_log.append(entry)

    def clear_logs(self) -> None:
        with self.lock:
            self._execute_log.clear()
            self._call_log.clear()

    # --- operations -----------------------------------------------------------------------------------------

    def settle(self) -> None:
        """Apply the side effects of operations that have finished by now()."""
        with self.lock:
            now = self.now()
            for op_id in list(self._unsettled):
                op = self.operations[op_id]
                if not op.is_done(now):
                    continue
                self._unsettled.discard(op_id)
                op.settled = True
                failed = op.error(now) is not None
                key = (op.policy_id, op.instance_id)
                if op.kind == "apply":
                    app = self.applications.get(key)
                    if app is not None:
                        if failed:
                            del self.applications[key]
                        else:
                            app.is_processing = False
                elif op.kind == "revoke":
                    if not failed:
                        self.applications.pop(key, None)
                elif op.kind == "execute":
                    if self._running.get(op.instance_id) == op.id:
                        del self._running[op.instance_id]
                    inst = self.instances.get(op.instance_id)
                    if inst is not None:
                        if failed:
                            err = op.error(now)
                            inst.last_backup_failed = f"{code_name(err[0])}: {err[1]}" if err else "failed"
                        else:
                            inst.last_backup_time = op.done_at
                            inst.last_backup_failed = ""

    def get_operation(self, operation_id: str) -> Operation:
        with self.lock:
            self.settle()
            op = self.operations.get(operation_id)
            if op is None:
                raise not_found(f"Operation {operation_id} not found")
            return op

    def render_operation(self, op: Operation) -> dict[str, Any]:
        with self.lock:
            return op.render(self.now())

    def running_backup(self, instance_id: str) -> Operation | None:
        with self.lock:
            self.settle()
            op_id = self._running.get(instance_id)
            if op_id is None:
                return None
            op = self.operations[op_id]
            return None if op.is_done(self.now()) else op

    def idempotent_replay(self, subject: Subject, key: str | None, fingerprint: str) -> Operation | None:
        """The operation a repeated Idempotency-Key refers to, or None for a new key."""
        if not key:
            return None
        with self.lock:
            seen = self._idempotency.get((subject.id, key))
            if seen is None:
                return None
            if seen[0] != fingerprint:
                raise invalid("Idempotency-Key was already used for a different request", "Idempotency-Key")
            return self.operations[seen[1]]

    def _new_operation(
        self,
        kind: str,
        subject: Subject,
        policy: Policy,
        inst: Instance,
        nominal: float,
        *,
        key: str | None,
        fingerprint: str,
        failure: Failure | None = None,
    ) -> Operation:
        now = self.now()
        descriptions = {"execute": "execute policy", "apply": "apply policy", "revoke": "revoke policy"}
        op = Operation(
            id=self.new_id("cdg"),
            kind=kind,
            description=descriptions[kind],
            folder_id=inst.folder_id,
            created_by=subject.id,
            policy_id=policy.id,
            instance_id=inst.id,
            start=now,
            end=now + max(0.0, nominal) / self.time_scale,
            progress_mode=inst.progress_mode or self.progress_mode,
            failure=replace(failure) if failure is not None else None,
            idempotency_key=key or "",
        )
        self.operations[op.id] = op
        self._unsettled.add(op.id)
        if key:
            self._idempotency[(subject.id, key)] = (fingerprint, op.id)
        return op

    def _lookup(self, subject: Subject, policy_id: str, instance_id: str, write: bool) -> tuple[Policy, Instance]:
        policy = self.policies.get(policy_id)
        if policy is None:
            raise not_found(f"Policy {policy_id} not found")
        self.check_folder(subject, policy.folder_id, write=write)
        inst = self.instances.get(instance_id)
        if inst is None:
            raise not_found(f"Instance {instance_id} not found")
        self.check_folder(subject, inst.folder_id, write=write)
        return policy, inst

    def execute(
        self, subject: Subject, policy_id: str, instance_id: str, *, key: str | None = None, fingerprint: str = ""
    ) -> Operation:
        """Policy.Execute: start one backup of the instance with the policy, as a long-running Operation."""
        with self.lock:
            self.settle()
            replay = self.idempotent_replay(subject, key, fingerprint)
            if replay is not None:
                return replay
            policy, inst = self._lookup(subject, policy_id, instance_id, write=True)
            if policy.folder_id != inst.folder_id:
                raise precondition(f"Policy {policy_id} and instance {instance_id} are in different folders")
            if not inst.registered:
                raise precondition(f"Instance {instance_id} is not registered in Cloud Backup (no backup agent)")
            app = self.applications.get((policy_id, instance_id))
            if app is None or app.is_processing:
                raise precondition(f"Policy {policy_id} is not applied to instance {instance_id}")
            if not policy.enabled or not app.enabled:
                raise precondition(f"Policy {policy_id} is disabled")
            if inst.status != "RUNNING":
                raise precondition(f"Instance {instance_id} is not running (status {inst.status})")
            if not inst.agent_online:
                raise precondition(f"The backup agent of instance {instance_id} is offline")
            running = self.running_backup(instance_id)
            if running is not None:
                # FAILED_PRECONDITION, not ABORTED: google/rpc/code.proto says to use ABORTED when the client
                # should retry at a higher level (a failed read-modify-write), FAILED_PRECONDITION when it should
                # not retry until the system state changes. A backup already running is such a state: retrying
                # right away cannot succeed, and the running backup already does what was asked. It is also the
                # code of the other "the instance is not ready for a backup" answers here (reference section 10).
                raise precondition(
                    f"A backup of instance {instance_id} is already running (operation {running.id}, "
                    f"policy {running.policy_id})"
                )
            nominal = inst.backup_duration if inst.backup_duration is not None else self.default_backup_duration
            failure = inst.failure
            if failure is not None and failure.once:
                inst.failure = None
            op = self._new_operation(
                "execute", subject, policy, inst, nominal, key=key, fingerprint=fingerprint, failure=failure
            )
            self._running[instance_id] = op.id
            now = self.now()
            self._execute_log.append(
                {
                    "time": now,
                    "at": rfc3339(now),
                    "policyId": policy_id,
                    "computeInstanceId": instance_id,
                    "idempotencyKey": key,
                    "operationId": op.id,
                    "subject": subject.id,
                }
            )
            return op

    def apply(
        self, subject: Subject, policy_id: str, instance_id: str, *, key: str | None = None, fingerprint: str = ""
    ) -> Operation:
        """Policy.Apply: bind the policy to the instance; the application is `isProcessing` until the op is done."""
        with self.lock:
            self.settle()
            replay = self.idempotent_replay(subject, key, fingerprint)
            if replay is not None:
                return replay
            policy, inst = self._lookup(subject, policy_id, instance_id, write=True)
            if not inst.registered:
                # NOT_FOUND: what Terraform retries Apply on while a new instance registers (reference 1.1).
                raise not_found(f"Instance {instance_id} is not registered in Cloud Backup")
            if policy.folder_id != inst.folder_id:
                raise precondition(f"Policy {policy_id} and instance {instance_id} are in different folders")
            if (policy_id, instance_id) in self.applications:
                raise ApiError(ALREADY_EXISTS, f"Policy {policy_id} is already applied to instance {instance_id}")
            self.applications[(policy_id, instance_id)] = Application(
                policy_id, instance_id, created_at=self.now(), is_processing=True
            )
            return self._new_operation(
                "apply", subject, policy, inst, self.apply_duration, key=key, fingerprint=fingerprint
            )

    def revoke(
        self, subject: Subject, policy_id: str, instance_id: str, *, key: str | None = None, fingerprint: str = ""
    ) -> Operation:
        with self.lock:
            self.settle()
            replay = self.idempotent_replay(subject, key, fingerprint)
            if replay is not None:
                return replay
            policy, inst = self._lookup(subject, policy_id, instance_id, write=True)
            if (policy_id, instance_id) not in self.applications:
                raise not_found(f"Policy {policy_id} is not applied to instance {instance_id}")
            return self._new_operation(
                "revoke", subject, policy, inst, self.apply_duration, key=key, fingerprint=fingerprint
            )

    def cancel(self, subject: Subject, operation_id: str) -> Operation:
        """Best effort: a running Execute ends at once with CANCELLED; anything else is returned as it is."""
        with self.lock:
            op = self.get_operation(operation_id)
            self.check_folder(subject, op.folder_id, write=True)
            now = self.now()
            if op.kind == "execute" and not op.is_done(now) and op.error(now) is None:
                op.cancelled_at = now
                self.settle()
            return op

    # --- rendering of resources -------------------------------------------------------------------------------

    def render_policy(self, p: Policy) -> dict[str, Any]:
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

    def render_application(self, a: Application) -> dict[str, Any]:
        running = self._running.get(a.compute_instance_id)
        status = a.status
        if running is not None and self.operations[running].policy_id == a.policy_id and status == "OK":
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

    def render_resource(self, inst: Instance) -> dict[str, Any]:
        now = self.now()
        running = self.running_backup(inst.id)
        applied = [a for a in self.applications.values() if a.compute_instance_id == inst.id and not a.is_processing]
        details = ""
        progress = None
        if running is not None:
            status = "BACKUPING"
            progress = str(int(running.progress(now)))
        elif not applied:
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

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The Cloud Backup Resources as the API shows them now (derived from the registered instances)."""
        with self.lock:
            self.settle()
            return {i.id: self.render_resource(i) for i in self.instances.values() if i.registered}

    def render_instance(self, inst: Instance) -> dict[str, Any]:
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

    def filter_fields(self, inst: Instance) -> dict[str, str]:
        return {
            "id": inst.id,
            "name": inst.name,
            "created_at": rfc3339(inst.created_at),
            "status": inst.status,
            "zone_id": inst.zone_id,
            "platform_id": inst.platform_id,
            "host_id": inst.host_id,
        }

    # --- summaries for the control surface --------------------------------------------------------------------

    def instance_summary(self, inst: Instance) -> dict[str, Any]:
        out = asdict(inst)
        out["created_at"] = rfc3339(inst.created_at)
        return out

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self.settle()
            now = self.now()
            return {
                "settings": self.settings(),
                "subjects": [
                    {"id": s.id, "folders": sorted(s.folders), "readOnly": s.read_only} for s in self.subjects.values()
                ],
                "instances": [self.instance_summary(i) for i in self.instances.values()],
                "policies": [self.render_policy(p) for p in self.policies.values()],
                "applications": [self.render_application(a) for a in self.applications.values()],
                "operations": [op.render(now) for op in self.operations.values()],
                "faults": self.fault_rules(),
            }


def resource_id(instance_id: str) -> str:
    """A stable UUID-like Cloud Backup resource id for an instance."""
    h = hashlib.sha256(instance_id.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def token_for(seed: str) -> str:
    """A deterministic token in the documented `t1.<...>.<86 chars>` shape (for static seeded tokens)."""
    return f"t1.{seed}." + hashlib.sha512(seed.encode()).hexdigest()[:86]


__all__ = [
    "Application",
    "AuthorizedKey",
    "EmulatorState",
    "Failure",
    "FaultDecision",
    "FaultRule",
    "Instance",
    "Operation",
    "Policy",
    "Subject",
    "TokenInfo",
    "check_id",
    "prune",
    "resource_id",
    "rfc3339",
    "token_for",
]
