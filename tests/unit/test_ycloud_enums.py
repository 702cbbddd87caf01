"""Enum fields read a name or an integer (proto3 JSON) and keep a value they do not know instead of failing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from yandex.cloud.backup.v1 import policy_pb2, resource_pb2
from yandex.cloud.compute.v1 import instance_pb2

from ycloud import models
from ycloud.errors import CloudError
from ycloud.models import BackupResource, EnumReader, Instance, PolicyApplication
from ycloud.services import parse

# Our model -> the proto message it reads, and the fields every sample needs.
MODELS: dict[type[BaseModel], tuple[Any, dict[str, Any]]] = {
    PolicyApplication: (policy_pb2.PolicyApplication.DESCRIPTOR, {"policyId": "p", "computeInstanceId": "i"}),
    BackupResource: (resource_pb2.Resource.DESCRIPTOR, {"computeInstanceId": "i"}),
    Instance: (instance_pb2.Instance.DESCRIPTOR, {"id": "i"}),
}


def enum_fields(model: type[BaseModel]) -> dict[str, EnumReader]:
    out = {}
    for name, info in model.model_fields.items():
        for meta in info.metadata:
            if isinstance(getattr(meta, "func", None), EnumReader):
                out[name] = meta.func
    return out


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
def test_every_proto_enum_field_we_read_is_an_enum_reader_with_the_protos_table(model: type[BaseModel]) -> None:
    desc, _ = MODELS[model]
    ours = enum_fields(model)
    proto_enums = {f.name: f.enum_type for f in desc.fields if f.enum_type is not None and f.name in model.model_fields}
    assert set(ours) == set(proto_enums)  # none forgotten, none invented
    for name, reader in ours.items():
        assert reader.full_name == proto_enums[name].full_name
        assert reader.values == {v.name: v.number for v in proto_enums[name].values}


CASES = [(model, field, reader) for model in MODELS for field, reader in enum_fields(model).items()]
case = st.sampled_from(CASES)


def build(model: type[BaseModel], field: str, value: Any) -> Any:
    alias = model.model_fields[field].alias or field
    return parse(model, {**MODELS[model][1], alias: value}, "test")


@given(c=case, data=st.data())
def test_a_known_value_reads_the_same_by_name_number_or_numeric_string(c: Any, data: st.DataObject) -> None:
    model, field, reader = c
    name = data.draw(st.sampled_from(sorted(reader.values)))
    number = reader.values[name]
    readings = {getattr(build(model, field, v), field) for v in (name, number, str(number))}
    assert readings == {name}


@given(c=case, number=st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_an_unknown_number_is_kept_as_the_number(c: Any, number: int) -> None:
    model, field, reader = c
    value = getattr(build(model, field, number), field)
    if number in reader.values.values():
        assert isinstance(value, str) and reader.values[value] == number
    else:
        assert value == number  # the call does not fail: one new status value is not a broken answer


@given(c=case, name=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=30))
def test_an_unknown_name_is_kept_as_the_name(c: Any, name: str) -> None:
    model, field, _ = c
    assert getattr(build(model, field, name), field) == name


def test_null_is_the_default_value() -> None:
    for model, field, reader in CASES:
        zero = next(name for name, number in reader.values.items() if number == 0)
        assert getattr(build(model, field, None), field) == zero


@given(c=case, bad=st.sampled_from([True, False, 1.5, [], {}]))
def test_what_is_not_an_enum_value_is_a_cloud_error_not_a_crash(c: Any, bad: Any) -> None:
    model, field, _ = c
    with pytest.raises(CloudError) as info:
        build(model, field, bad)
    assert info.value.name == "UNKNOWN" and repr(bad) not in info.value.message.replace(field, "")


def test_the_domain_compares_known_values_by_name() -> None:
    assert parse(Instance, {"id": "i", "status": 2}, "Instance.Get").status == "RUNNING"
    assert parse(PolicyApplication, {"policyId": "p", "computeInstanceId": "i", "status": 1}, "x").status == "OK"
    assert models.INSTANCE_STATUS["RUNNING"] == 2
