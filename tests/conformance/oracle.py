"""The official protos as an oracle: the REST rule of every RPC we use, and proto-JSON parsing as a gateway does it.

`yandexcloud` (tests only, requirements-dev.txt) ships the compiled protos with their `google.api.http` rules.
`Rule.check_request` holds a recorded HTTP request against its RPC's rule (verb, path template, query names =
the request fields' json_name, body); `parse_response` / `parse_status` read an answer the way a proto gateway
writes it (`ignore_unknown_fields=False`: an unknown field, a bad enum, a wrong type or two members of a oneof
fail; Any is resolved through its @type, so the metadata and details types are imported here).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import google.protobuf.empty_pb2
import google.rpc.error_details_pb2  # noqa: F401  (Any: RequestInfo, BadRequest)
from google.api import annotations_pb2
from google.protobuf import descriptor, json_format, message, message_factory
from google.rpc import status_pb2
from yandex.cloud.backup.v1 import policy_service_pb2, resource_service_pb2
from yandex.cloud.compute.v1 import instance_service_pb2
from yandex.cloud.iam.v1 import iam_token_service_pb2
from yandex.cloud.operation import operation_service_pb2

# The services the client talks to: (module, service). Every RPC of these with an http rule is known here.
SERVICES = [
    (policy_service_pb2, "PolicyService"),
    (resource_service_pb2, "ResourceService"),
    (operation_service_pb2, "OperationService"),
    (instance_service_pb2, "InstanceService"),
    (iam_token_service_pb2, "IamTokenService"),
]


class Mismatch(AssertionError):
    pass


@dataclass(frozen=True)
class Rule:
    rpc: str  # "PolicyService.ListApplications"
    verb: str  # "GET"
    template: str  # "/backup/v1/policies/{policy_id}/applications"
    body: str  # "" (no body) | "*" (the whole request but the path fields)
    request: descriptor.Descriptor
    response: descriptor.Descriptor

    @property
    def path_fields(self) -> list[str]:
        return re.findall(r"{([a-z_0-9]+)}", self.template)

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"({[a-z_0-9]+})", self.template)
        regex = "".join(f"(?P<{p[1:-1]}>[^/:]+)" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(f"^{regex}$")

    def fields(self) -> dict[str, descriptor.FieldDescriptor]:
        return {f.json_name: f for f in self.request.fields}

    def check_request(self, verb: str, url: str, body: bytes | str | None) -> message.Message:
        """Verb, path, query names and body against the rule; returns the request message the gateway reads."""
        if verb != self.verb:
            raise Mismatch(f"{self.rpc}: sent {verb}, the rule says {self.verb}")
        split = urlsplit(url)
        m = self.pattern.match(unquote(split.path))
        if m is None:
            raise Mismatch(f"{self.rpc}: path {split.path} does not fit {self.template}")
        by_json = self.fields()
        by_name = {f.name: f for f in self.request.fields}
        values: dict[str, Any] = {by_name[k].json_name: v for k, v in m.groupdict().items()}
        query = parse_qsl(split.query, keep_blank_values=True)
        if query and self.body == "*":
            raise Mismatch(f"{self.rpc}: query {query} on a call whose body is the whole request")
        for name, raw in query:
            field = by_json.get(name)
            if field is None or field.name in self.path_fields:
                raise Mismatch(f"{self.rpc}: query parameter {name!r} is not a request field's json_name")
            if name in values:
                raise Mismatch(f"{self.rpc}: {name!r} given twice")
            values[name] = _query_value(field, raw)
        text = body.decode() if isinstance(body, bytes) else (body or "")
        if self.body == "":
            if text.strip():
                raise Mismatch(f"{self.rpc}: a body on a call whose rule has none")
        else:
            data = json.loads(text) if text.strip() else {}
            if not isinstance(data, dict):
                raise Mismatch(f"{self.rpc}: the body is not a JSON object")
            for key in data:
                if key in {by_name[p].json_name for p in self.path_fields} or key in self.path_fields:
                    raise Mismatch(f"{self.rpc}: path field {key!r} repeated in the body")
            values.update(data)
        request = message_factory.GetMessageClass(self.request)()
        try:
            json_format.ParseDict(values, request, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise Mismatch(f"{self.rpc}: the request does not parse as {self.request.full_name}: {exc}") from exc
        return request

    def parse_response(self, text: str) -> message.Message:
        return parse(text, self.response)


def _query_value(field: descriptor.FieldDescriptor, raw: str) -> Any:
    """A query string value as proto JSON would carry it. The gateway's query parser is stricter than proto JSON
    on enums: a name, or the number of a declared value (grpc-gateway: `Values().ByName`, then `ByNumber`);
    proto3 JSON alone would keep any number of an open enum."""
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        if raw not in ("true", "false"):
            raise Mismatch(f"{field.json_name}: {raw!r} is not a boolean")
        return raw == "true"
    if field.type == descriptor.FieldDescriptor.TYPE_ENUM:
        values = field.enum_type.values_by_name
        if raw not in values and not (raw.lstrip("-").isdigit() and int(raw) in field.enum_type.values_by_number):
            raise Mismatch(f"{field.json_name}: {raw!r} is not a value of {field.enum_type.full_name}")
    return raw


@cache
def rules() -> tuple[Rule, ...]:
    out: list[Rule] = []
    for module, service in SERVICES:
        svc = module.DESCRIPTOR.services_by_name[service]
        for method in svc.methods:
            http = method.GetOptions().Extensions[annotations_pb2.http]
            kind = http.WhichOneof("pattern")
            if kind is None or kind == "custom":
                continue
            out.append(
                Rule(
                    rpc=f"{service}.{method.name}",
                    verb=kind.upper(),
                    template=getattr(http, kind),
                    body=http.body,
                    request=method.input_type,
                    response=method.output_type,
                )
            )
    return tuple(out)


def rule(rpc: str) -> Rule:
    return next(r for r in rules() if r.rpc == rpc)


def rule_for(verb: str, url: str) -> Rule:
    """The RPC a request is for: the rule whose template fits the path (and the verb, when two share a path)."""
    path = unquote(urlsplit(url).path)
    fitting = [r for r in rules() if r.pattern.match(path)]
    if not fitting:
        raise Mismatch(f"{verb} {path}: no RPC's http rule has this path")
    same_verb = [r for r in fitting if r.verb == verb]
    return (same_verb or fitting)[0]


def parse(text: str, desc: descriptor.Descriptor) -> message.Message:
    msg = message_factory.GetMessageClass(desc)()
    try:
        json_format.Parse(text, msg, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise Mismatch(f"not a {desc.full_name}: {exc}") from exc
    return msg


def parse_status(text: str) -> status_pb2.Status:
    status = status_pb2.Status()
    try:
        json_format.Parse(text, status, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise Mismatch(f"not a google.rpc.Status: {exc}") from exc
    return status
