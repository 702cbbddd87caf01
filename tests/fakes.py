"""An in-memory Yandex Cloud implementing the client API of docs/ARCHITECTURE.md, for unit tests.

    cloud = FakeCloud()
    folder = "b1gfolder"
    vm = cloud.add_instance(name="web-1", folder_id=folder, labels={"env": "prod"})
    policy = cloud.add_policy("Default daily", folder_id=folder)
    cloud.apply_now(policy.id, vm.id)
    cloud.backup_policies.execute(policy.id, vm.id, idempotency_key="k")  # an Operation, logged in execute_log

What it offers: instances (paged `compute.list` with the `name=`/`id=` filter), policies, applications, Apply
(an operation that completes after `apply_polls` `operations.get` calls, then binds the policy), Execute (checks
the application and the agent, honours `Idempotency-Key`), operations (`complete()` / `fail_operation()` finish
one), backup resources, call counting (`calls`, `count(method)`, `call_log`), in-flight tracking of Execute
(`execute_delay`, `max_in_flight`) and error injection (`fail(method, CloudError(...), times=1, when=...)`).
Thread-safe enough for the ThreadPoolExecutor of the start code.
"""

from __future__ import annotations

import builtins
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ycloud.errors import CloudError
from ycloud.models import (
    BackupResource,
    ExecuteMetadata,
    Instance,
    InstancePage,
    Operation,
    Policy,
    PolicyApplication,
    Status,
)

NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION, INVALID_ARGUMENT = 5, 7, 9, 3
EPOCH = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
METADATA_TYPES = {  # the Any's @type of each operation's metadata, as the API prints it
    "apply policy": "type.googleapis.com/yandex.cloud.backup.v1.ApplyPolicyMetadata",
    "execute policy": "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata",
}


class FakeClock:
    """A Clock whose `sleep` advances time (pass `clock.sleep` as the sleeper)."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self.t = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.t += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@dataclass
class _Fault:
    method: str
    error: CloudError
    times: int | None  # None: every call
    when: Callable[..., bool] | None


_FILTER_COND = re.compile(r"""\s*(name|id|status|zone_id)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*""")


def _parse_filter(text: str) -> list[tuple[str, str]]:
    conds = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        m = _FILTER_COND.fullmatch(part)
        if not m:
            raise CloudError(INVALID_ARGUMENT, f"unsupported filter: {text}")
        value = m.group(2) if m.group(2) is not None else m.group(3)
        conds.append((m.group(1), value.replace('\\"', '"').replace("\\\\", "\\")))
    return conds


class FakeCloud:
    def __init__(self, *, default_page_size: int = 100, apply_polls: int = 1, execute_delay: float = 0.0) -> None:
        self.instances: dict[str, Instance] = {}
        self.policies: dict[str, Policy] = {}
        self.applications: dict[tuple[str, str], PolicyApplication] = {}  # (policy id, instance id)
        self.operation_store: dict[str, Operation] = {}
        self.resources: dict[str, BackupResource] = {}
        self.agent_offline: set[str] = set()
        self.unregistered: set[str] = set()  # instances Cloud Backup does not know: Apply fails NOT_FOUND
        self.execute_log: list[dict[str, Any]] = []
        self.apply_log: list[dict[str, Any]] = []
        self.call_log: list[tuple[str, dict[str, Any]]] = []
        self.default_page_size = default_page_size
        self.apply_polls = apply_polls  # operations.get calls before an Apply operation is done
        self.execute_delay = execute_delay  # seconds each Execute takes (to observe concurrency)
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: list[_Fault] = []
        self._keys: dict[tuple[str, str], str] = {}  # (method, idempotency key) -> operation id
        self._apply_pending: dict[str, list[Any]] = {}  # operation id -> [polls left, policy id, instance id]
        self._seq = itertools.count(1)
        self._lock = threading.RLock()
        self.backup_policies = _Policies(self)
        self.backup_resources = _Resources(self)
        self.operations = _Operations(self)
        self.compute = _Compute(self)

    # --- state helpers ---

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._seq):017d}"

    def add_instance(
        self,
        *,
        name: str | None = None,
        folder_id: str = "b1gfolder",
        labels: dict[str, str] | None = None,
        id: str | None = None,
        status: str = "RUNNING",
    ) -> Instance:
        iid = id or self.new_id("fhm")
        inst = Instance(id=iid, folder_id=folder_id, name=name or f"vm-{iid[-6:]}", labels=labels or {}, status=status)
        self.instances[iid] = inst
        return inst

    def add_policy(self, name: str, *, folder_id: str = "b1gfolder", id: str | None = None) -> Policy:
        pid = id or self.new_id("cdg")
        policy = Policy(id=pid, name=name, folder_id=folder_id, enabled=True)
        self.policies[pid] = policy
        return policy

    def apply_now(self, policy_id: str, instance_id: str, *, processing: bool = False) -> PolicyApplication:
        app = PolicyApplication(
            policy_id=policy_id,
            compute_instance_id=instance_id,
            enabled=True,
            status="OK",
            is_processing=processing,
        )
        self.applications[(policy_id, instance_id)] = app
        return app

    def complete(self, operation_id: str, *, progress: float = 100.0) -> Operation:
        with self._lock:
            op = self.operation_store[operation_id]
            op.done = True
            op.response = {}
            op.metadata.progress_percentage = progress
            return op

    def fail_operation(self, operation_id: str, code: int, message: str) -> Operation:
        with self._lock:
            op = self.operation_store[operation_id]
            op.done = True
            op.error = Status(code=code, message=message)
            return op

    def fail(
        self,
        method: str,
        error: CloudError,
        *,
        times: int | None = 1,
        when: Callable[..., bool] | None = None,
    ) -> None:
        """Make `method` (e.g. "policies.execute", "compute.list") raise `error`, `times` times (None: always),
        only for calls whose keyword arguments satisfy `when(**kwargs)` if given."""
        self._faults.append(_Fault(method, error, times, when))

    # --- call accounting ---

    @property
    def calls(self) -> int:
        return len(self.call_log)

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.call_log if m == method)

    def _call(self, method: str, **kwargs: Any) -> None:
        with self._lock:
            self.call_log.append((method, kwargs))
            for fault in self._faults:
                if fault.method != method or fault.times == 0:
                    continue
                if fault.when is not None and not fault.when(**kwargs):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                raise fault.error

    def _operation(self, description: str, policy_id: str, instance_id: str) -> Operation:
        now = datetime.now(UTC)
        op = Operation(
            id=self.new_id("op"),
            description=description,
            created_at=now,
            modified_at=now,
            done=False,
            metadata=ExecuteMetadata.model_validate(
                {
                    "@type": METADATA_TYPES[description],
                    "policyId": policy_id,
                    "computeInstanceId": instance_id,
                    "progressPercentage": 0.0,
                }
            ),
        )
        self.operation_store[op.id] = op
        return op

    def _policy(self, policy_id: str) -> Policy:
        policy = self.policies.get(policy_id)
        if policy is None:
            raise CloudError(NOT_FOUND, f"Policy {policy_id} not found")
        return policy

    def _instance(self, instance_id: str) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None:
            raise CloudError(NOT_FOUND, f"Instance {instance_id} not found")
        return inst


class _Policies:
    def __init__(self, cloud: FakeCloud) -> None:
        self._c = cloud

    def get(self, policy_id: str) -> Policy:
        self._c._call("policies.get", policy_id=policy_id)
        return self._c._policy(policy_id).model_copy()

    def list(self, folder_id: str | None = None, compute_instance_id: str | None = None) -> list[Policy]:
        self._c._call("policies.list", folder_id=folder_id, compute_instance_id=compute_instance_id)
        if folder_id:
            return [p.model_copy() for p in self._c.policies.values() if p.folder_id == folder_id]
        applied = {pid for (pid, iid) in self._c.applications if iid == compute_instance_id}
        return [p.model_copy() for p in self._c.policies.values() if p.id in applied]

    def list_applications(self, *, policy_id: str, show_processing: bool = False) -> builtins.list[PolicyApplication]:
        """The proto-valid form only: `GET /backup/v1/policies/{policyId}/applications`."""
        c = self._c
        c._call("policies.list_applications", policy_id=policy_id, show_processing=show_processing)
        with c._lock:
            apps = list(c.applications.values())
        c._policy(policy_id)
        apps = [a for a in apps if a.policy_id == policy_id]
        if not show_processing:
            apps = [a for a in apps if not a.is_processing]
        return [a.model_copy() for a in apps]

    def apply(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation:
        c = self._c
        c._call("policies.apply", policy_id=policy_id, compute_instance_id=compute_instance_id, key=idempotency_key)
        with c._lock:
            if idempotency_key and ("apply", idempotency_key) in c._keys:
                return c.operation_store[c._keys[("apply", idempotency_key)]].model_copy(deep=True)
            c._policy(policy_id)
            c._instance(compute_instance_id)
            if compute_instance_id in c.unregistered:
                raise CloudError(NOT_FOUND, f"Instance {compute_instance_id} is not registered in Cloud Backup")
            op = c._operation("apply policy", policy_id, compute_instance_id)
            c.apply_now(policy_id, compute_instance_id, processing=True)
            c._apply_pending[op.id] = [c.apply_polls, policy_id, compute_instance_id]
            if c.apply_polls <= 0:
                self._finish_apply(op.id)
            if idempotency_key:
                c._keys[("apply", idempotency_key)] = op.id
            c.apply_log.append({"policyId": policy_id, "computeInstanceId": compute_instance_id, "operationId": op.id})
            return op.model_copy(deep=True)

    def _finish_apply(self, op_id: str) -> None:
        c = self._c
        _, policy_id, instance_id = c._apply_pending.pop(op_id)
        c.apply_now(policy_id, instance_id)
        c.complete(op_id)

    def execute(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation:
        c = self._c
        c._call("policies.execute", policy_id=policy_id, compute_instance_id=compute_instance_id, key=idempotency_key)
        with c._lock:
            c.in_flight += 1
            c.max_in_flight = max(c.max_in_flight, c.in_flight)
        try:
            if c.execute_delay:
                time.sleep(c.execute_delay)
            with c._lock:
                if idempotency_key and ("execute", idempotency_key) in c._keys:
                    return c.operation_store[c._keys[("execute", idempotency_key)]].model_copy(deep=True)
                c._policy(policy_id)
                c._instance(compute_instance_id)
                app = c.applications.get((policy_id, compute_instance_id))
                if app is None or app.is_processing:
                    raise CloudError(
                        FAILED_PRECONDITION, f"Policy {policy_id} is not applied to instance {compute_instance_id}"
                    )
                if compute_instance_id in c.agent_offline:
                    raise CloudError(
                        FAILED_PRECONDITION, f"The backup agent of instance {compute_instance_id} is offline"
                    )
                op = c._operation("execute policy", policy_id, compute_instance_id)
                if idempotency_key:
                    c._keys[("execute", idempotency_key)] = op.id
                c.execute_log.append(
                    {
                        "policyId": policy_id,
                        "computeInstanceId": compute_instance_id,
                        "idempotencyKey": idempotency_key,
                        "operationId": op.id,
                    }
                )
                return op.model_copy(deep=True)
        finally:
            with c._lock:
                c.in_flight -= 1


class _Operations:
    def __init__(self, cloud: FakeCloud) -> None:
        self._c = cloud

    def get(self, operation_id: str) -> Operation:
        c = self._c
        c._call("operations.get", operation_id=operation_id)
        with c._lock:
            op = c.operation_store.get(operation_id)
            if op is None:
                raise CloudError(NOT_FOUND, f"Operation {operation_id} not found")
            pending = c._apply_pending.get(operation_id)
            if pending is not None:
                pending[0] -= 1
                if pending[0] <= 0:
                    c.backup_policies._finish_apply(operation_id)
            return op.model_copy(deep=True)

    def cancel(self, operation_id: str) -> Operation:
        c = self._c
        c._call("operations.cancel", operation_id=operation_id)
        with c._lock:
            op = c.operation_store.get(operation_id)
            if op is None:
                raise CloudError(NOT_FOUND, f"Operation {operation_id} not found")
            if not op.done:
                op.done = True
                op.error = Status(code=1, message="cancelled")
            return op.model_copy(deep=True)


class _Resources:
    def __init__(self, cloud: FakeCloud) -> None:
        self._c = cloud

    def get(self, compute_instance_id: str) -> BackupResource:
        c = self._c
        c._call("resources.get", compute_instance_id=compute_instance_id)
        if compute_instance_id in c.resources:
            return c.resources[compute_instance_id].model_copy()
        inst = c._instance(compute_instance_id)
        if inst.id in c.unregistered:
            raise CloudError(NOT_FOUND, f"Resource {compute_instance_id} not found")
        return BackupResource(
            compute_instance_id=inst.id, online=inst.id not in c.agent_offline, enabled=True, status="IDLE"
        )

    def list(self, folder_id: str, *, page_size: int | None = None) -> Iterator[BackupResource]:
        c = self._c
        c._call("resources.list", folder_id=folder_id)
        ids = [i.id for i in c.instances.values() if i.folder_id == folder_id and i.id not in c.unregistered]
        return iter([self.get(i) for i in ids])


class _Compute:
    def __init__(self, cloud: FakeCloud) -> None:
        self._c = cloud

    def get(self, instance_id: str) -> Instance:
        self._c._call("compute.get", instance_id=instance_id)
        return self._c._instance(instance_id).model_copy(deep=True)

    def list_page(
        self,
        folder_id: str,
        *,
        filter: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> InstancePage:
        c = self._c
        c._call("compute.list", folder_id=folder_id, filter=filter, page_size=page_size, page_token=page_token)
        conds = _parse_filter(filter) if filter else []
        size = min(page_size or c.default_page_size, 1000)
        with c._lock:
            matching = [
                i
                for i in sorted(c.instances.values(), key=lambda i: i.id)
                if i.folder_id == folder_id and all(getattr(i, f) == v for f, v in conds)
            ]
        start = int(page_token or 0)
        page = matching[start : start + size]
        nxt = str(start + size) if start + size < len(matching) else ""
        return InstancePage(instances=[i.model_copy(deep=True) for i in page], next_page_token=nxt)

    def list(self, folder_id: str, *, filter: str | None = None, page_size: int | None = None) -> Iterator[Instance]:
        token: str | None = None
        while True:
            page = self.list_page(folder_id, filter=filter, page_size=page_size, page_token=token)
            yield from page.instances
            if not page.next_page_token:
                return
            token = page.next_page_token


class FakeQueue:
    """An in-memory MessageQueue: records what was sent; `fail_with` makes every send raise it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []  # (queue url, body, delay seconds)
        self.fail_with: Exception | None = None
        self._lock = threading.Lock()

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        return self.send_many(queue_url, [body], delay_seconds=delay_seconds)[0]

    def send_many(self, queue_url: str, bodies: Any, *, delay_seconds: int = 0) -> list[str]:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            start = len(self.sent)
            self.sent.extend((queue_url, body, delay_seconds) for body in bodies)
            return [f"m{start + i}" for i in range(len(bodies))]

    def bodies(self, queue_url: str) -> list[str]:
        return [body for url, body, _ in self.sent if url == queue_url]
