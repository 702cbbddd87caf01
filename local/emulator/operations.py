"""Long-running operations: Execute, Apply, Revoke and Cancel, idempotency keys, and settling finished ones.

Operations are evaluated lazily against the clock (see records.Operation); the side effects of finished ones (an
application created by Apply, the last backup time of an instance) are settled at the start of every access.
"""

from __future__ import annotations

from dataclasses import replace

from local.emulator.auth import AuthPart
from local.emulator.errors import ALREADY_EXISTS, ApiError, code_name, invalid, not_found, precondition
from local.emulator.records import Application, Failure, Instance, Operation, Policy, Subject, rfc3339


class OperationsPart(AuthPart):
    """Policy.Execute/Apply/Revoke and Operation.Get/Cancel on the shared data (access checked through AuthPart)."""

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
