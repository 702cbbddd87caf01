"""API models: properties of Operation parsing, and the documented JSON samples of the reference."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ycloud.errors import CloudError
from ycloud.models import BackupResource, IamToken, Instance, Operation, ResourceEnvelope, ResourcePage, Status
from ycloud.services import parse

# --- properties ----------------------------------------------------------------------------------------

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=50)
progress = st.floats(min_value=0, max_value=100, allow_nan=False)
json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Names that are not fields of Operation or its metadata (camelCase or snake_case).
KNOWN = {"id", "description", "createdAt", "created_at", "createdBy", "created_by", "modifiedAt", "modified_at", "done",
         "metadata", "error", "response", "policyId", "policy_id", "computeInstanceId", "compute_instance_id",
         "progressPercentage", "progress_percentage"}  # fmt: skip
unknown_fields = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda k: k not in KNOWN), json_values, max_size=4
)


@given(op_id=ids, value=progress, as_string=st.booleans())
def test_progress_percentage_is_read_as_a_number_or_a_string(op_id: str, value: float, as_string: bool) -> None:
    raw: Any = repr(value) if as_string else value
    op = Operation.model_validate({"id": op_id, "metadata": {"progressPercentage": raw}})
    assert op.progress is not None and math.isclose(op.progress, value)


@given(op_id=ids, with_metadata=st.booleans())
def test_absent_done_is_false(op_id: str, with_metadata: bool) -> None:
    body: dict[str, Any] = {"id": op_id}
    if with_metadata:
        body["metadata"] = {"@type": "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata", "policyId": "p"}
    op = Operation.model_validate(body)
    assert op.done is False and not op.succeeded and not op.failed


@given(op_id=ids, done=st.booleans(), extra=unknown_fields, meta_extra=unknown_fields)
def test_unknown_fields_are_ignored(op_id: str, done: bool, extra: dict[str, Any], meta_extra: dict[str, Any]) -> None:
    body = {**extra, "id": op_id, "done": done, "metadata": {**meta_extra, "policyId": "p1"}}
    op = Operation.model_validate(body)
    assert (op.id, op.done, op.metadata.policy_id) == (op_id, done, "p1")
    assert op == Operation.model_validate({"id": op_id, "done": done, "metadata": {"policyId": "p1"}})


@given(value=st.integers(min_value=0, max_value=2**63 - 1))
def test_int64_strings_are_read_as_integers(value: int) -> None:
    resource = BackupResource.model_validate({"computeInstanceId": "i", "statusProgress": str(value)})
    assert resource.status_progress == value


@given(code=st.integers(min_value=1, max_value=16), message=st.text(max_size=40), done=st.booleans())
def test_an_error_makes_the_operation_failed_done_or_not(code: int, message: str, done: bool) -> None:
    op = Operation.model_validate({"id": "op", "done": done, "error": {"code": code, "message": message}})
    assert op.failed and not op.succeeded and op.error == Status(code=code, message=message)


@given(
    op=st.builds(
        lambda i, d, p: {"id": i, "done": d, "metadata": {"progressPercentage": p}}, ids, st.booleans(), progress
    )
)
def test_parsing_round_trips_through_the_api_shape(op: dict[str, Any]) -> None:
    parsed = Operation.model_validate(op)
    assert Operation.model_validate(parsed.to_api()) == parsed


# --- the documented samples ----------------------------------------------------------------------------

# REST Operation schema of the execute page (https://yandex.cloud/en/docs/backup/backup/api-ref/Policy/execute),
# filled with sample values; progressPercentage typed "string" as that page does.
EXECUTE_OPERATION = """
{
  "id": "abcsdngawmqv00000000",
  "description": "execute policy",
  "createdAt": "2026-05-01T10:00:00.123456789Z",
  "createdBy": "ajesa00000000000000",
  "modifiedAt": "2026-05-01T10:00:05Z",
  "done": true,
  "metadata": {
    "@type": "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata",
    "policyId": "cbq00000000000000000",
    "computeInstanceId": "epdrmd2rpo6s00000000",
    "progressPercentage": "100"
  },
  "error": {"code": 9, "message": "agent is offline", "details": []}
}
"""

# The error body sample (DOCS en/_includes/errors-handling.md), verbatim.
ERROR_BODY = (
    '{"code": 16, "message": "Token is invalid or has expired.", "details": [{"@type": '
    '"type.googleapis.com/google.rpc.RequestInfo", "requestId": "e38e71c3-adc6-4584-98a4-b0f103d55f61"}]}'
)

IAM_TOKEN_RESPONSE = '{"iamToken": "t1.9euelZqXnJWQ", "expiresAt": "2026-05-02T10:00:00.123456Z"}'

# Resource.Get answer: wrapped; the CLI sample values of a healthy VM, int64 as a string.
RESOURCE_GET = """
{"resource": {"computeInstanceId": "epdrmd2rpo6s00000000", "createdAt": "2026-04-01T00:00:00Z", "online": true,
 "enabled": true, "status": "IDLE", "statusProgress": "0", "resourceId": "68b1e3f7-a855-45c7-8daf-13c800000000",
 "isActive": true, "initStatus": "REGISTRED", "metadata": "null", "type": "COMPUTE",
 "agentInfo": {"currentVersion": "1", "latestVersion": "1", "canUpdate": false}}}
"""


def test_execute_operation_sample() -> None:
    op = Operation.model_validate(json.loads(EXECUTE_OPERATION))
    assert op.id == "abcsdngawmqv00000000" and op.done and op.failed and not op.succeeded
    assert op.metadata.policy_id == "cbq00000000000000000"
    assert op.metadata.compute_instance_id == "epdrmd2rpo6s00000000"
    assert op.progress == 100.0
    assert op.created_at is not None and op.created_at.tzinfo is not None
    assert op.error is not None and op.error.code == 9


def test_cli_execute_sample_has_no_done_and_no_progress() -> None:
    body = {
        "id": "abcsdngawmqv00000000",
        "description": "execute policy",
        "metadata": {
            "@type": "type.googleapis.com/yandex.cloud.backup.v1.ExecuteMetadata",
            "policyId": "p",
            "computeInstanceId": "i",
        },
    }
    op = Operation.model_validate(body)
    assert not op.done and op.progress is None and op.error is None


def test_error_body_sample() -> None:
    status = Status.model_validate(json.loads(ERROR_BODY))
    assert status.code == 16 and status.message == "Token is invalid or has expired."
    assert status.details[0]["requestId"] == "e38e71c3-adc6-4584-98a4-b0f103d55f61"


def test_iam_token_response_sample() -> None:
    token = IamToken.model_validate(json.loads(IAM_TOKEN_RESPONSE))
    assert token.iam_token.startswith("t1.")
    assert token.expires_at == datetime(2026, 5, 2, 10, 0, 0, 123456, tzinfo=UTC)


def test_resource_get_sample_is_wrapped() -> None:
    resource = ResourceEnvelope.model_validate(json.loads(RESOURCE_GET)).resource
    assert resource.compute_instance_id == "epdrmd2rpo6s00000000"
    assert (resource.online, resource.enabled, resource.status, resource.init_status) == (
        True,
        True,
        "IDLE",
        "REGISTRED",
    )
    assert resource.status_progress == 0 and resource.is_active


def test_resource_page_and_instance_samples() -> None:
    page = ResourcePage.model_validate({"resources": [{"computeInstanceId": "a"}], "nextPageToken": "n"})
    assert page.next_page_token == "n" and page.resources[0].compute_instance_id == "a"
    vm = Instance.model_validate(
        {"id": "fhm1515aam62bj5rmf1c", "folderId": "b1g", "labels": {"env": "prod"}, "status": "RUNNING",
         "resources": {"memory": "2147483648", "cores": "2"}, "zoneId": "ru-central1-a"}
    )  # fmt: skip
    assert vm.labels == {"env": "prod"} and vm.zone_id == "ru-central1-a"


def test_a_body_that_does_not_fit_is_a_cloud_error_without_the_values() -> None:
    with pytest.raises(CloudError) as info:
        parse(Operation, {"done": "secret-looking-value"}, "Operation.Get")
    err = info.value
    assert err.name == "UNKNOWN" and "Operation.Get" in err.message and "id" in err.message
    assert "secret-looking-value" not in str(err) and err.__suppress_context__
