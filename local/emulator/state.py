"""EmulatorState: every object the emulator knows, its clock, faults and logs, behind one lock.

The state is assembled from parts by job, one module each: `auth` (IAM: subjects, tokens, keys, JWT),
`resources` (instances, policies, applications), `operations` (Execute/Apply/Revoke/Cancel, settling),
`faults` (injected faults), `monitoring` (metric writes), `rendering` (records as proto3 JSON), `seed` (the
demo folder). This module adds the lifecycle (reset, settings), the logs and the snapshot the control surface
shows.

Operations are evaluated lazily against the clock: an operation stores when it started, when it ends and how it
fails; what `GET /operations/{id}` shows is computed from `now()`. So an injected clock (or `advance_clock`)
moves every backup forward without sleeping or background threads.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from typing import Any

from local.emulator import rendering
from local.emulator.config import EmulatorConfig
from local.emulator.faults import FaultDecision, FaultRule, FaultsPart
from local.emulator.monitoring import MetricsPart
from local.emulator.operations import OperationsPart
from local.emulator.records import (
    Application,
    AuthorizedKey,
    Failure,
    Instance,
    Operation,
    Policy,
    Subject,
    TokenInfo,
    check_id,
    prune,
    resource_id,
    rfc3339,
    token_for,
)
from local.emulator.resources import ResourcesPart
from local.emulator.seed import seed_demo


class EmulatorState(OperationsPart, ResourcesPart, FaultsPart, MetricsPart):
    """All emulator data. Every public method takes the (re-entrant) lock; `lock` is exposed for the server."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.lock = threading.RLock()
        self._base_clock = self.config.clock or time.time
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
            self.subjects = {}
            self.tokens = {}
            self.keys = {}
            self.instances = {}
            self.policies = {}
            self.applications = {}
            self.operations = {}
            self._unsettled = set()
            self._running = {}
            self._idempotency = {}
            self.reset_faults(self.config.seed)
            self._id_rng = random.Random(f"ids:{self.config.seed}")
            self._execute_log = []
            self._call_log = []
            self.reset_metrics()
            if self.config.demo if demo is None else demo:
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

    # --- rendering (rendering.py) with what it needs from the state -----------------------------------------

    def render_operation(self, op: Operation) -> dict[str, Any]:
        with self.lock:
            return rendering.render_operation(op, self.now())

    def render_policy(self, p: Policy) -> dict[str, Any]:
        return rendering.render_policy(p)

    def render_application(self, a: Application) -> dict[str, Any]:
        with self.lock:
            running = self._running.get(a.compute_instance_id)
            return rendering.render_application(a, self.operations[running].policy_id if running else None)

    def render_resource(self, inst: Instance) -> dict[str, Any]:
        with self.lock:
            running = self.running_backup(inst.id)
            has_policy = any(
                a.compute_instance_id == inst.id and not a.is_processing for a in self.applications.values()
            )
            return rendering.render_resource(inst, self.now(), running, has_policy)

    def render_instance(self, inst: Instance) -> dict[str, Any]:
        return rendering.render_instance(inst)

    def filter_fields(self, inst: Instance) -> dict[str, str]:
        return rendering.filter_fields(inst)

    def instance_summary(self, inst: Instance) -> dict[str, Any]:
        return rendering.instance_summary(inst)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The Cloud Backup Resources as the API shows them now (derived from the registered instances)."""
        with self.lock:
            self.settle()
            return {i.id: self.render_resource(i) for i in self.instances.values() if i.registered}

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
                "operations": [rendering.render_operation(op, now) for op in self.operations.values()],
                "faults": self.fault_rules(),
            }


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
