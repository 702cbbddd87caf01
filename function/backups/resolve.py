"""Request -> targets (instance + policy), with few API calls.

`build_request(body, settings)` turns a trigger's body into a `BackupRequest` with the environment
defaults merged under it; `Resolver(cloud, settings).resolve(request)` turns the request into targets.

API calls, per invocation (a `Resolver` holds the caches of one invocation, so several messages of one
batch share them):

- instances: one paged `compute.list` per folder (page size 1000), whatever the number of targets;
  `instanceName` uses the list `filter` (`name="..."`) unless the folder's listing is already cached;
  `instanceLabels` are matched on the client side (labels are not a filter field).
- `computeInstanceId(s)` given directly: the opt-out label is always honoured, so labels are always read.
  One id: `compute.get` (one call). Several ids with a known folder: the folder is listed once and ids not
  found in it (instances of other folders) are read with `compute.get`; several ids without a folder:
  `compute.get` per id.
- policy by name: `backup_policies.list(folder_id=...)` once per folder.
- applications: policy known: `list_applications(policy_id=...)` once per policy; policy not known:
  `list_applications(folder_id=...)` once per folder, falling back to `list_applications(compute_instance_id=...)`
  per instance when the folder is unknown or the service refuses the by-folder listing.

Request-level problems are exceptions (`RequestInvalid`, `NothingMatched`, `CloudUnavailable`, `CloudFailed`);
per-target problems are `Problem`s in the `Resolution`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

from pydantic import Field, ValidationError
from pydantic.alias_generators import to_camel

from backups.models import ID_PATTERN, TEXT_PATTERN, BackupRequest, CamelModel, ReplyTarget, TriggerInfo
from observability import get_logger
from settings import Settings
from ycloud.errors import CloudError
from ycloud.models import Instance, InstancePage, Operation, Policy, PolicyApplication

# --- the part of the client API (docs/ARCHITECTURE.md) the domain uses ----------------------------------


class BackupPoliciesApi(Protocol):
    def list(self, folder_id: str | None = None, compute_instance_id: str | None = None) -> list[Policy]: ...

    def list_applications(
        self,
        *,
        policy_id: str | None = None,
        folder_id: str | None = None,
        compute_instance_id: str | None = None,
        show_processing: bool = False,
    ) -> builtins.list[PolicyApplication]: ...

    def apply(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation: ...

    def execute(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation: ...


class ComputeApi(Protocol):
    def get(self, instance_id: str) -> Instance: ...

    def list(
        self, folder_id: str, *, filter: str | None = None, page_size: int | None = None
    ) -> Iterator[Instance]: ...

    def list_page(
        self, folder_id: str, *, filter: str | None = None, page_size: int | None = None, page_token: str | None = None
    ) -> InstancePage: ...


class OperationsApi(Protocol):
    def get(self, operation_id: str) -> Operation: ...


class CloudApi(Protocol):
    """What `ycloud.client.YandexCloud` offers and the trigger domain needs (tests pass `tests.fakes.FakeCloud`)."""

    @property
    def backup_policies(self) -> BackupPoliciesApi: ...

    @property
    def compute(self) -> ComputeApi: ...

    @property
    def operations(self) -> OperationsApi: ...


# --- request-level errors ---------------------------------------------------------------------------------


class StartError(Exception):
    """A problem with the whole request. `http_status` is the reply class the handler maps it to."""

    http_status = 500
    code = "INTERNAL"

    def __init__(self, message: str, *, cloud_error: CloudError | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cloud_error = cloud_error

    def to_json_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class RequestInvalid(StartError):
    """400: malformed body, empty or several selectors, policyId and policyName together, missing folder."""

    http_status = 400
    code = "INVALID_REQUEST"


class NothingMatched(StartError):
    """404: the selector matched no instance, or the policy named does not exist."""

    http_status = 404
    code = "NOTHING_MATCHED"


class CloudUnavailable(StartError):
    """503: a transient cloud error while resolving; a queue source should redeliver the message."""

    http_status = 503
    code = "CLOUD_UNAVAILABLE"


class CloudFailed(StartError):
    """502: a permanent cloud error while resolving (PERMISSION_DENIED on a listing, UNAUTHENTICATED ...)."""

    http_status = 502
    code = "CLOUD_FAILED"


class HandOffFailed(StartError):
    """503: operations started (or fan-out prepared) but a queue refused the messages. Redelivery is safe:
    the idempotency keys return the same operations. `report` holds what was done."""

    http_status = 503
    code = "HANDOFF_FAILED"

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


# --- the fan-out message ---------------------------------------------------------------------------------


class FanoutRequest(CamelModel):
    """One resolved target sent through REQUEST_QUEUE_URL by a handler that had too many targets.

    It carries the ORIGINAL trigger's identity (`triggerId`, `source`), so the idempotency key and the result
    event id are those inline execution would have produced. The parent already checked the opt-out label and
    the policy application: the child executes (applying first when `applyIfMissing`) without listing anything.
    """

    kind: Literal["fanout"] = "fanout"
    version: int = 1
    trigger_id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=64)
    compute_instance_id: str = Field(pattern=ID_PATTERN)
    policy_id: str = Field(pattern=ID_PATTERN)
    instance_name: str | None = None
    folder_id: str | None = Field(default=None, pattern=ID_PATTERN)
    target: str | None = Field(default=None, max_length=2000)
    apply_if_missing: bool = False
    reason: str | None = Field(default=None, max_length=500, pattern=TEXT_PATTERN)
    requested_by: str | None = Field(default=None, max_length=200, pattern=TEXT_PATTERN)
    correlation_id: str | None = Field(default=None, max_length=128, pattern=TEXT_PATTERN)
    reply_to: ReplyTarget | None = None

    def trigger_info(self) -> TriggerInfo:
        return TriggerInfo(
            source=self.source,
            trigger_id=self.trigger_id,
            correlation_id=self.correlation_id,
            requested_by=self.requested_by,
            reason=self.reason,
        )


# --- building the request --------------------------------------------------------------------------------

SELECTOR_KEYS = ("computeInstanceId", "computeInstanceIds", "instanceName", "instanceLabels")
POLICY_KEYS = ("policyId", "policyName")


def _camel_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    return {(to_camel(k) if "_" in k else k): v for k, v in data.items()}


def _validation_message(exc: ValidationError) -> str:
    # Never echo the input values (they may be long or hostile): location and message only.
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _body_dict(body: Mapping[str, Any] | str | bytes | None) -> dict[str, Any]:
    if body is None:
        return {}
    if isinstance(body, bytes | bytearray):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestInvalid("the request body is not UTF-8 text") from None
    if isinstance(body, str):
        if not body.strip():
            return {}
        try:
            body = json.loads(body)
        except json.JSONDecodeError as exc:
            raise RequestInvalid(f"the request body is not JSON ({exc.msg} at position {exc.pos})") from None
        except RecursionError:
            raise RequestInvalid("the request body is nested too deeply") from None
    if not isinstance(body, Mapping):
        raise RequestInvalid("the request body must be a JSON object")
    return _camel_keys(body)


def is_fanout_body(body: Mapping[str, Any] | str | bytes | None) -> bool:
    try:
        data = _body_dict(body)
    except RequestInvalid:
        return False
    return data.get("kind") == "fanout"


def build_request(
    body: Mapping[str, Any] | str | bytes | None,
    settings: Settings,
    *,
    allow_fanout: bool = False,
) -> BackupRequest | FanoutRequest:
    """The request a trigger's body asks for, with the environment defaults merged under it.

    Defaults (lowest first): DEFAULT_REQUEST, then FOLDER_ID / DEFAULT_POLICY_ID / DEFAULT_POLICY_NAME (only where
    DEFAULT_REQUEST has no value), then the body. Selector keys and policy keys are taken as groups: if the body
    names any instance selector, no default selector is used; if it names policyId or policyName, no default
    policy is used (so a body's policyName never collides with a default policyId).

    A body with `"kind": "fanout"` is a `FanoutRequest`, accepted only when `allow_fanout` (the caller knows the
    message came from REQUEST_QUEUE_URL); no defaults are merged into it.
    """
    if isinstance(body, str | bytes | bytearray):
        size = len(body) if isinstance(body, bytes | bytearray) else len(body.encode("utf-8", "surrogatepass"))
        if size > settings.max_body_bytes:  # a queue message may be larger than an HTTP body (handlers.trigger)
            raise RequestInvalid(f"the request body is over the {settings.max_body_bytes}-byte limit (MAX_BODY_BYTES)")
    data = _body_dict(body)
    if data.get("kind") == "fanout":
        if not allow_fanout:
            raise RequestInvalid("fan-out messages are only accepted from the request queue")
        try:
            return FanoutRequest.model_validate(data)
        except ValidationError as exc:
            raise RequestInvalid(f"invalid fan-out message: {_validation_message(exc)}") from None

    defaults = _camel_keys(settings.default_request)
    if settings.folder_id and not defaults.get("folderId"):
        defaults["folderId"] = settings.folder_id
    if not any(defaults.get(k) for k in POLICY_KEYS):
        if settings.default_policy_id:
            defaults["policyId"] = settings.default_policy_id
        elif settings.default_policy_name:
            defaults["policyName"] = settings.default_policy_name
    if any(k in data and data[k] not in (None, "", [], {}) for k in SELECTOR_KEYS):
        for k in SELECTOR_KEYS:
            defaults.pop(k, None)
    if any(k in data and data[k] not in (None, "") for k in POLICY_KEYS):
        for k in POLICY_KEYS:
            defaults.pop(k, None)
    merged = {**defaults, **{k: v for k, v in data.items() if v is not None}}
    try:
        request = BackupRequest.model_validate(merged)
    except ValidationError as exc:
        raise RequestInvalid(f"invalid request: {_validation_message(exc)}") from None
    check_selector(request)
    return request


def check_selector(request: BackupRequest) -> None:
    kinds = request.selector_kinds()
    if not kinds:
        raise RequestInvalid(
            "no instance selector: give computeInstanceId, computeInstanceIds, instanceName or instanceLabels "
            "(an empty selector never means every instance)"
        )
    if len(kinds) > 1:
        raise RequestInvalid(f"give one kind of instance selector, not {' and '.join(kinds)}")
    if request.policy_id and request.policy_name:
        raise RequestInvalid("give policyId or policyName, not both")


def describe_selector(request: BackupRequest) -> str:
    """The target as asked, for reports and for results when no instance is known."""
    if request.compute_instance_id:
        return f"computeInstanceId={request.compute_instance_id}"
    if request.compute_instance_ids:
        return f"computeInstanceIds={','.join(request.compute_instance_ids)}"
    if request.instance_name:
        return f"instanceName={request.instance_name}"
    if request.instance_labels:
        return "instanceLabels=" + ",".join(f"{k}={v}" for k, v in sorted(request.instance_labels.items()))
    return "none"


# --- resolution results ----------------------------------------------------------------------------------


class Target(CamelModel):
    """One instance and the policy to execute on it."""

    compute_instance_id: str
    policy_id: str
    instance_name: str | None = None
    folder_id: str | None = None
    policy_name: str | None = None
    needs_apply: bool = False  # not applied yet; the request said applyIfMissing
    target: str | None = None  # the selector as asked


class Skipped(CamelModel):
    compute_instance_id: str
    instance_name: str | None = None
    folder_id: str | None = None
    reason: str


class Problem(CamelModel):
    """A target that cannot start. `retryable` ones should be redelivered, not reported as failed."""

    code: str  # NOT_FOUND, POLICY_NOT_APPLIED, AMBIGUOUS_POLICY, AGENT_OFFLINE, FAILED_PRECONDITION, ...
    message: str
    grpc_code: int | None = None
    retryable: bool = False
    compute_instance_id: str | None = None
    instance_name: str | None = None
    folder_id: str | None = None
    policy_id: str | None = None
    target: str | None = None


class Resolution(CamelModel):
    targets: list[Target] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)


FALSE_VALUES = frozenset({"false", "no", "0", ""})


def opt_out_value(labels: Mapping[str, str], label: str) -> str | None:
    """The label's value when it opts the instance out (any value but false/no/0/empty), else None."""
    if label not in labels:
        return None
    value = labels[label]
    return None if value.strip().lower() in FALSE_VALUES else value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


APPLY_HINT = "apply it (yc backup policy apply --id {policy} --instance-ids {instance}) or send applyIfMissing: true"
PAGE_SIZE = 1000
# Refusals of the (undocumented) by-folder applications listing that make us fall back to per-instance listings.
_FALLBACK_CODES = frozenset({3, 5, 12})  # INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED


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
    """Resolves requests into targets. Holds the listing caches of one invocation: make one per invocation."""

    def __init__(self, cloud: CloudApi, settings: Settings) -> None:
        self.cloud = cloud
        self.settings = settings
        self.log = get_logger()
        self._folder_instances: dict[str, list[Instance]] = {}
        self._named: dict[tuple[str, str], list[Instance]] = {}
        self._instances: dict[str, Instance | None] = {}
        self._folder_policies: dict[str, list[Policy]] = {}
        self._policy_apps: dict[str, list[PolicyApplication]] = {}
        self._folder_apps: dict[str, list[PolicyApplication]] = {}
        self._instance_apps: dict[str, list[PolicyApplication]] = {}
        # listing key -> (the listing, its applications by instance id): matching per instance is then O(1)
        self._apps_by_instance: dict[str, tuple[list[PolicyApplication], dict[str, list[PolicyApplication]]]] = {}
        self._by_folder_refused = False

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

    def applications_of_policy(self, policy_id: str) -> list[PolicyApplication]:
        if policy_id not in self._policy_apps:
            self._policy_apps[policy_id] = self.cloud.backup_policies.list_applications(
                policy_id=policy_id, show_processing=True
            )
        return self._policy_apps[policy_id]

    def _of_instance(self, key: str, apps: list[PolicyApplication], instance_id: str) -> list[PolicyApplication]:
        """The applications of one instance in a cached listing, indexed once per listing (a scan per instance
        would make resolving n instances O(n^2): 1,000 by label is a million comparisons)."""
        cached = self._apps_by_instance.get(key)
        if cached is None or cached[0] is not apps:
            index: dict[str, list[PolicyApplication]] = {}
            for app in apps:
                index.setdefault(app.compute_instance_id, []).append(app)
            cached = (apps, index)
            self._apps_by_instance[key] = cached
        return list(cached[1].get(instance_id, ()))

    def applications_of_instance(self, instance: Instance) -> list[PolicyApplication]:
        folder = instance.folder_id
        if folder and not self._by_folder_refused:
            if folder not in self._folder_apps:
                try:
                    self._folder_apps[folder] = self.cloud.backup_policies.list_applications(folder_id=folder)
                except CloudError as exc:
                    if exc.code not in _FALLBACK_CODES:
                        raise
                    self._by_folder_refused = True
                    self.log.info(
                        "applications by folder refused, listing by instance",
                        extra={"folderId": folder, "error": exc.name},
                    )
            if folder in self._folder_apps:
                return self._of_instance(f"folder:{folder}", self._folder_apps[folder], instance.id)
        if instance.id not in self._instance_apps:
            self._instance_apps[instance.id] = self.cloud.backup_policies.list_applications(
                compute_instance_id=instance.id
            )
        return self._instance_apps[instance.id]

    # --- resolution ---

    def resolve(self, request: BackupRequest) -> Resolution:
        """Targets, skipped (opt-out) and per-target problems. Raises a StartError for request-level problems."""
        check_selector(request)
        folder = request.folder_id or self.settings.folder_id
        asked = describe_selector(request)
        out = Resolution()
        instances = self._select(request, folder, asked, out)
        kept: list[Instance] = []
        for inst in instances:
            value = opt_out_value(inst.labels, self.settings.opt_out_label)
            if value is None:
                kept.append(inst)
                continue
            out.skipped.append(
                Skipped(
                    compute_instance_id=inst.id,
                    instance_name=inst.name or None,
                    folder_id=inst.folder_id or None,
                    reason=f"opted out by label {self.settings.opt_out_label}={value}",
                )
            )
        if kept:
            self._policies(request, folder, asked, kept, out)
        return out

    def _select(self, request: BackupRequest, folder: str | None, asked: str, out: Resolution) -> list[Instance]:
        if request.compute_instance_id or request.compute_instance_ids:
            ids = (
                [request.compute_instance_id]
                if request.compute_instance_id
                else list(request.compute_instance_ids or [])
            )
            return self._by_ids([i for i in ids if i], folder, asked, out)
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

    def _by_ids(self, ids: list[str], folder: str | None, asked: str, out: Resolution) -> list[Instance]:
        listed: dict[str, Instance] = {}
        if folder and len(ids) > 1:
            try:
                listed = {i.id: i for i in self.instances_in_folder(folder)}
            except CloudError as exc:
                raise _request_error(exc, f"listing instances of folder {folder}") from None
        found: list[Instance] = []
        missing: list[Problem] = []
        for iid in ids:
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
                        Problem(
                            code=exc.name,
                            grpc_code=exc.code,
                            message=f"cannot read instance {iid}: {exc.message}{hint}",
                            compute_instance_id=iid,
                            policy_id=None,
                            target=asked,
                        )
                    )
                    continue
            if inst is None:
                missing.append(
                    Problem(
                        code="NOT_FOUND",
                        grpc_code=5,
                        message=f"instance {iid} not found (check the id)",
                        compute_instance_id=iid,
                        target=asked,
                    )
                )
                continue
            if not inst.folder_id and folder:
                inst = inst.model_copy(update={"folder_id": folder})
            found.append(inst)
        if not found and all(p.code == "NOT_FOUND" for p in missing):
            raise NothingMatched(
                "no such instance: " + ", ".join(ids[:10]) + (f" (and {len(ids) - 10} more)" if len(ids) > 10 else "")
            )
        out.problems.extend(missing)
        return found

    def _policies(
        self, request: BackupRequest, folder: str | None, asked: str, instances: list[Instance], out: Resolution
    ) -> None:
        def problem(inst: Instance, code: str, message: str, policy_id: str | None, **kw: Any) -> None:
            out.problems.append(
                Problem(
                    code=code,
                    message=message,
                    compute_instance_id=inst.id,
                    instance_name=inst.name or None,
                    folder_id=inst.folder_id or folder,
                    policy_id=policy_id,
                    target=asked,
                    **kw,
                )
            )

        # 1. which policy for which instance
        chosen: dict[str, tuple[str, str | None]] = {}  # instance id -> (policy id, policy name)
        if request.policy_id:
            for inst in instances:
                chosen[inst.id] = (request.policy_id, None)
        elif request.policy_name:
            name = request.policy_name
            folders = [folder] if folder else list(dict.fromkeys(i.folder_id for i in instances if i.folder_id))
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
            for inst in instances:
                pol = by_folder.get(folder or inst.folder_id)
                if pol is None:
                    problem(inst, "NOT_FOUND", f'no backup policy named "{name}" in folder {inst.folder_id}', None)
                else:
                    chosen[inst.id] = (pol.id, pol.name)
        else:
            for inst in instances:
                try:
                    apps = [a for a in self.applications_of_instance(inst) if not a.is_processing]
                except CloudError as exc:
                    raise _request_error(exc, f"listing backup policy applications of instance {inst.id}") from None
                ids = list(dict.fromkeys(a.policy_id for a in apps))
                if len(ids) == 1:
                    out.targets.append(
                        Target(
                            compute_instance_id=inst.id,
                            policy_id=ids[0],
                            instance_name=inst.name or None,
                            folder_id=inst.folder_id or folder,
                            target=asked,
                        )
                    )
                elif not ids:
                    problem(
                        inst,
                        "POLICY_NOT_APPLIED",
                        f"no backup policy is applied to instance {inst.id}: apply one (yc backup policy apply "
                        f"--id <policy> --instance-ids {inst.id}) or send policyId or policyName",
                        None,
                        grpc_code=9,
                    )
                else:
                    problem(
                        inst,
                        "AMBIGUOUS_POLICY",
                        f"{len(ids)} backup policies are applied to instance {inst.id} ({', '.join(ids)}): "
                        "send policyId or policyName to choose one",
                        None,
                        grpc_code=9,
                    )
            return

        # 2. the precondition: the policy is applied to the instance (one listing per policy)
        for inst in instances:
            if inst.id not in chosen:
                continue
            pid, pname = chosen[inst.id]
            try:
                apps = self.applications_of_policy(pid)
            except CloudError as exc:
                if exc.name == "NOT_FOUND":
                    raise NothingMatched(f"backup policy {pid} not found", cloud_error=exc) from None
                raise _request_error(exc, f"listing applications of backup policy {pid}") from None
            mine = self._of_instance(f"policy:{pid}", apps, inst.id)
            label = pname or pid
            if any(not a.is_processing for a in mine):
                needs_apply = False
            elif mine:
                problem(
                    inst,
                    "POLICY_APPLYING",
                    f"policy {label} is still being applied to instance {inst.id}; try again in a few minutes",
                    pid,
                    retryable=True,
                )
                continue
            elif request.apply_if_missing:
                needs_apply = True
            else:
                problem(
                    inst,
                    "POLICY_NOT_APPLIED",
                    f"policy {label} is not applied to instance {inst.id}: "
                    + APPLY_HINT.format(policy=pid, instance=inst.id),
                    pid,
                    grpc_code=9,
                )
                continue
            out.targets.append(
                Target(
                    compute_instance_id=inst.id,
                    policy_id=pid,
                    policy_name=pname,
                    instance_name=inst.name or None,
                    folder_id=inst.folder_id or folder,
                    needs_apply=needs_apply,
                    target=asked,
                )
            )
