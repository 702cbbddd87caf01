"""The Yandex Cloud services this project calls, as thin typed wrappers over `Transport`.

Every method returns pydantic models of `ycloud.models` and raises only `CloudError`: a body that does not fit
the model is an error of the call (UNKNOWN, with the field paths but never the values), not a ValidationError.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from ycloud.errors import CloudError
from ycloud.models import (
    ApplicationList,
    BackupResource,
    Instance,
    InstancePage,
    Operation,
    Policy,
    PolicyApplication,
    PolicyList,
    ResourceEnvelope,
    ResourcePage,
)
from ycloud.transport import Transport

M = TypeVar("M", bound=BaseModel)
INVALID_ARGUMENT, UNKNOWN = 3, 2


@dataclass(frozen=True)
class Endpoints:
    backup: str = "https://backup.api.cloud.yandex.net"
    compute: str = "https://compute.api.cloud.yandex.net"
    operation: str = "https://operation.api.cloud.yandex.net"
    iam: str = "https://iam.api.cloud.yandex.net"

    @classmethod
    def single(cls, base: str) -> Endpoints:
        """`YC_API_ENDPOINT`: one base URL for every service (the emulator)."""
        base = base.rstrip("/")
        return cls(backup=base, compute=base, operation=base, iam=base)


def parse(model: type[M], body: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        # Field paths and reasons only: the input may hold anything, secrets included.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise CloudError(UNKNOWN, f"unexpected {what} response: {problems}", http_status=200) from None


def _required(value: str | None, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CloudError(INVALID_ARGUMENT, f"{name} is required", http_status=0)
    return value.strip()


def _segment(value: str | None, name: str) -> str:
    """One path segment: required, and escaped so that an id from a request cannot change the path."""
    return quote(_required(value, name), safe="")


def _one_of(**named: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in named.items() if v]
    if len(given) != 1:
        raise CloudError(INVALID_ARGUMENT, f"exactly one of {', '.join(named)} is required", http_status=0)
    return given[0]


class _Service:
    def __init__(self, transport: Transport, base: str) -> None:
        self._t = transport
        self._base = base.rstrip("/")

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._t.request("GET", self._base + path, params=params)

    def _post(self, path: str, body: dict[str, Any] | None, idempotency_key: str | None) -> dict[str, Any]:
        return self._t.request("POST", self._base + path, json_body=body or {}, idempotency_key=idempotency_key)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a list call, following nextPageToken; a token seen twice is a server bug, not a loop."""
        seen: set[str] = set()
        token: str | None = None
        while True:
            body = self._get(path, {**params, "pageToken": token})
            yield body
            token = body.get("nextPageToken") or None
            if not token:
                return
            if token in seen:
                raise CloudError(UNKNOWN, f"the server repeated a page token listing {path}", http_status=200)
            seen.add(token)


class BackupPolicies(_Service):
    def get(self, policy_id: str) -> Policy:
        return parse(Policy, self._get(f"/backup/v1/policies/{_segment(policy_id, 'policy_id')}"), "Policy.Get")

    def list(self, folder_id: str | None = None, compute_instance_id: str | None = None) -> list[Policy]:
        """The policies of a folder, or the policies applied to an instance (ListPoliciesRequest: exactly one)."""
        key, value = _one_of(folderId=folder_id, computeInstanceId=compute_instance_id)
        # ListPoliciesRequest has no page fields (a pageToken would be an unknown query parameter): one call.
        return parse(PolicyList, self._get("/backup/v1/policies", {key: value}), "Policy.List").policies

    def list_applications(self, policy_id: str, *, show_processing: bool = False) -> builtins.list[PolicyApplication]:
        """The applications of one policy: `GET /backup/v1/policies/{policy_id}/applications`.

        The proto's `oneof id {folder_id, policy_id, compute_instance_id}` makes the folder and instance forms
        unreachable over REST (the path already sets policy_id; "-" plus a query id is two members of the
        oneof, which a gateway refuses). For "the policies of an instance", use `list(compute_instance_id=...)`.
        """
        path = f"/backup/v1/policies/{_segment(policy_id, 'policy_id')}/applications"
        params: dict[str, Any] = {"showProcessing": True} if show_processing else {}
        # ListApplicationsRequest has no page fields either: one call.
        return parse(ApplicationList, self._get(path, params), "Policy.ListApplications").applications

    def apply(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation:
        return self._action("apply", policy_id, compute_instance_id, idempotency_key)

    def execute(self, policy_id: str, compute_instance_id: str, *, idempotency_key: str | None = None) -> Operation:
        return self._action("execute", policy_id, compute_instance_id, idempotency_key)

    def _action(self, verb: str, policy_id: str, instance_id: str, key: str | None) -> Operation:
        path = f"/backup/v1/policies/{_segment(policy_id, 'policy_id')}:{verb}"
        body = {"computeInstanceId": _segment(instance_id, "compute_instance_id")}
        # No key of our own: without one the POST is not retried (a second Execute would start a second backup).
        return parse(Operation, self._post(path, body, key), f"Policy.{verb.capitalize()}")


class BackupResources(_Service):
    def get(self, compute_instance_id: str) -> BackupResource:
        path = f"/backup/v1/resources/{_segment(compute_instance_id, 'compute_instance_id')}"
        return parse(ResourceEnvelope, self._get(path), "Resource.Get").resource

    def list(self, folder_id: str, *, page_size: int | None = None) -> Iterator[BackupResource]:
        params = {"folderId": _required(folder_id, "folder_id"), "pageSize": page_size}  # checked now, not lazily
        return (
            resource
            for body in self._pages("/backup/v1/resources", params)
            for resource in parse(ResourcePage, body, "Resource.List").resources
        )


class Operations(_Service):
    def get(self, operation_id: str) -> Operation:
        return parse(Operation, self._get(f"/operations/{_segment(operation_id, 'operation_id')}"), "Operation.Get")

    def cancel(self, operation_id: str) -> Operation:
        """`GET /operations/{operation_id}:cancel`: the proto's http rule (the design guide shows POST; the proto
        is what the gateway is generated from). A GET is retried like any idempotent call."""
        path = f"/operations/{_segment(operation_id, 'operation_id')}:cancel"
        return parse(Operation, self._get(path), "Operation.Cancel")


class ComputeInstances(_Service):
    def get(self, instance_id: str) -> Instance:
        path = f"/compute/v1/instances/{_segment(instance_id, 'instance_id')}"
        return parse(Instance, self._get(path), "Instance.Get")

    def list_page(
        self,
        folder_id: str,
        *,
        filter: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> InstancePage:
        params = {
            "folderId": _required(folder_id, "folder_id"),
            "filter": filter or None,
            "pageSize": page_size,
            "pageToken": page_token or None,
        }
        return parse(InstancePage, self._get("/compute/v1/instances", params), "Instance.List")

    def list(self, folder_id: str, *, filter: str | None = None, page_size: int | None = None) -> Iterator[Instance]:
        params = {"folderId": _required(folder_id, "folder_id"), "filter": filter or None, "pageSize": page_size}
        return (
            instance
            for body in self._pages("/compute/v1/instances", params)
            for instance in parse(InstancePage, body, "Instance.List").instances
        )
