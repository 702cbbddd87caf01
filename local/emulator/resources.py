"""The resources the API serves: Compute instances (with their Cloud Backup side), policies and applications."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from local.emulator.base import StateBase
from local.emulator.config import PROGRESS_MODES
from local.emulator.errors import INTERNAL, parse_code
from local.emulator.records import Application, Failure, Instance, Policy, check_id
from local.emulator.seed import default_policy_settings


class ResourcesPart(StateBase):
    """Add, change and remove instances, policies and applications (the control surface and tests use these)."""

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
