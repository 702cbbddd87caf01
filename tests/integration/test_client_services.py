"""The service wrappers and `YandexCloud.from_settings` over real HTTP, against the throwaway server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from settings import Settings
from tests.integration.test_client_transport import FakeCloud, Reply, Seen, capture_logs, serve_fake_cloud
from ycloud import auth
from ycloud.auth import IAM_AUDIENCE
from ycloud.client import YandexCloud
from ycloud.errors import CloudError
from ycloud.transport import RetryPolicy

OP = {"id": "op1", "description": "execute policy", "metadata": {"policyId": "p1", "computeInstanceId": "i1"}}


def client(fake: FakeCloud, **env: str) -> YandexCloud:
    settings = Settings.from_env({"YC_API_ENDPOINT": fake.url, "YC_IAM_TOKEN": "t1.static", **env})
    return YandexCloud.from_settings(settings, retry=RetryPolicy(max_retries=2, backoff_base=0.01))


@pytest.fixture()
def cloud() -> Iterator[FakeCloud]:
    with serve_fake_cloud() as fake:
        yield fake


@pytest.fixture()
def caplog_yc() -> Iterator[list[logging.LogRecord]]:
    with capture_logs() as records:
        yield records


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    auth.clear_token_cache()
    yield
    auth.clear_token_cache()


# --- every service call: verb, path, parameters, parsing ------------------------------------------------


def test_policy_get_list_and_applications(cloud: FakeCloud) -> None:
    cloud.script("GET", "/backup/v1/policies/p1", Reply(200, {"id": "p1", "name": "Default daily", "enabled": True}))
    cloud.script("GET", "/backup/v1/policies", Reply(200, {"policies": [{"id": "p1"}, {"id": "p2"}]}))
    cloud.script("GET", "/backup/v1/policies", Reply(200, {"policies": [{"id": "p3"}]}))
    apps = {"applications": [{"policyId": "p1", "computeInstanceId": "i1", "status": "OK", "isProcessing": False}]}
    cloud.route("GET", "/backup/v1/policies/p1/applications", lambda s: Reply(200, apps))
    yc = client(cloud)

    assert yc.backup_policies.get("p1").name == "Default daily"
    assert [p.id for p in yc.backup_policies.list(folder_id="f1")] == ["p1", "p2"]
    assert [p.id for p in yc.backup_policies.list(compute_instance_id="i1")] == ["p3"]
    assert yc.backup_policies.list_applications(policy_id="p1")[0].status == "OK"
    yc.backup_policies.list_applications("p1", show_processing=True)

    queries = [(s.path, s.query) for s in cloud.seen]
    assert queries == [
        ("/backup/v1/policies/p1", {}),
        ("/backup/v1/policies", {"folderId": ["f1"]}),
        ("/backup/v1/policies", {"computeInstanceId": ["i1"]}),
        ("/backup/v1/policies/p1/applications", {}),
        ("/backup/v1/policies/p1/applications", {"showProcessing": ["true"]}),
    ]
    assert all(s.headers["authorization"] == "Bearer t1.static" for s in cloud.seen)
    assert yc.calls == 5 == yc.attempts


def test_apply_and_execute_post_the_instance_with_the_idempotency_key(cloud: FakeCloud) -> None:
    cloud.route("POST", "/backup/v1/policies/p1:execute", lambda s: Reply(200, OP))
    cloud.route("POST", "/backup/v1/policies/p1:apply", lambda s: Reply(200, {"id": "op2", "done": True}))
    yc = client(cloud)
    op = yc.backup_policies.execute("p1", "i1", idempotency_key="key-1")
    assert (op.id, op.done, op.metadata.compute_instance_id) == ("op1", False, "i1")
    assert yc.backup_policies.apply("p1", "i1").done
    execute, apply = cloud.seen
    assert execute.method == "POST" and execute.body == {"computeInstanceId": "i1"}
    assert execute.headers["idempotency-key"] == "key-1"
    assert apply.body == {"computeInstanceId": "i1"} and "idempotency-key" not in apply.headers


def test_resources_get_unwraps_and_list_follows_pages(cloud: FakeCloud) -> None:
    cloud.script(
        "GET", "/backup/v1/resources/i1", Reply(200, {"resource": {"computeInstanceId": "i1", "online": True}})
    )

    def pages(seen: Seen) -> Reply:
        token = seen.query.get("pageToken", [""])[0]
        nxt = {"": "a", "a": "b", "b": ""}[token]
        return Reply(200, {"resources": [{"computeInstanceId": f"vm-{token or '0'}"}], "nextPageToken": nxt})

    cloud.route("GET", "/backup/v1/resources", pages)
    yc = client(cloud)
    assert yc.backup_resources.get("i1").online
    listed = [r.compute_instance_id for r in yc.backup_resources.list("f1", page_size=1)]
    assert listed == ["vm-0", "vm-a", "vm-b"]
    assert [s.query for s in cloud.requests_to("/backup/v1/resources")] == [
        {"folderId": ["f1"], "pageSize": ["1"]},
        {"folderId": ["f1"], "pageSize": ["1"], "pageToken": ["a"]},
        {"folderId": ["f1"], "pageSize": ["1"], "pageToken": ["b"]},
    ]
    assert yc.calls == 4


def test_operations_get_and_cancel(cloud: FakeCloud) -> None:
    cloud.route("GET", "/operations/op1", lambda s: Reply(200, {**OP, "done": True, "response": {}}))
    cloud.script("GET", "/operations/op1:cancel", Reply(503, {"code": 14}), Reply(200, {**OP, "done": True}))
    yc = client(cloud)
    assert yc.operations.get("op1").succeeded
    assert yc.operations.cancel("op1").done
    cancels = cloud.requests_to("/operations/op1:cancel")
    # Cancel is a GET (the proto's rule), so the 503 was retried like any idempotent call, without a body
    assert len(cancels) == 2 and all(c.method == "GET" for c in cancels)


def test_compute_get_list_and_list_page(cloud: FakeCloud) -> None:
    cloud.script("GET", "/compute/v1/instances/vm1", Reply(200, {"id": "vm1", "labels": {"env": "prod"}}))

    def pages(seen: Seen) -> Reply:
        token = seen.query.get("pageToken", [""])[0]
        if token == "":
            return Reply(200, {"instances": [{"id": "vm1"}, {"id": "vm2"}], "nextPageToken": "next"})
        return Reply(200, {"instances": [{"id": "vm3"}]})

    cloud.route("GET", "/compute/v1/instances", pages)
    yc = client(cloud)
    assert yc.compute.get("vm1").labels == {"env": "prod"}
    assert [i.id for i in yc.compute.list("f1", filter='status="RUNNING"', page_size=2)] == ["vm1", "vm2", "vm3"]
    page = yc.compute.list_page("f1", page_size=2)
    assert [i.id for i in page.instances] == ["vm1", "vm2"] and page.next_page_token == "next"
    last = yc.compute.list_page("f1", page_token="next")
    assert last.next_page_token == "" and [i.id for i in last.instances] == ["vm3"]
    lists = cloud.requests_to("/compute/v1/instances")
    assert lists[0].query == {"folderId": ["f1"], "filter": ['status="RUNNING"'], "pageSize": ["2"]}
    assert lists[1].query["pageToken"] == ["next"] and lists[1].query["filter"] == ['status="RUNNING"']
    assert lists[3].query == {"folderId": ["f1"], "pageToken": ["next"]}


def test_a_repeated_page_token_stops_the_listing(cloud: FakeCloud) -> None:
    cloud.route("GET", "/compute/v1/instances", lambda s: Reply(200, {"instances": [], "nextPageToken": "same"}))
    with pytest.raises(CloudError):
        list(client(cloud).compute.list("f1"))
    assert len(cloud.seen) == 2


def test_ids_are_escaped_into_one_path_segment(cloud: FakeCloud) -> None:
    cloud.route("GET", "/compute/v1/instances/..%2Fpolicies", lambda s: Reply(200, {"id": "x"}))
    client(cloud).compute.get("../policies")
    assert cloud.seen[0].path == "/compute/v1/instances/..%2Fpolicies"


@pytest.mark.parametrize(
    "call",
    [
        lambda yc: yc.backup_policies.get(""),
        lambda yc: yc.backup_policies.list(),
        lambda yc: yc.backup_policies.list(folder_id="f", compute_instance_id="i"),
        lambda yc: yc.backup_policies.list_applications(""),
        lambda yc: yc.backup_policies.execute("p1", " "),
        lambda yc: yc.backup_resources.list(""),
        lambda yc: yc.compute.list(""),
    ],
)
def test_bad_arguments_are_invalid_argument_without_a_call(cloud: FakeCloud, call: Any) -> None:
    with pytest.raises(CloudError) as info:
        call(client(cloud))
    assert info.value.name == "INVALID_ARGUMENT" and info.value.http_status == 0
    assert cloud.seen == []


def test_a_response_that_does_not_fit_the_model_is_a_cloud_error(cloud: FakeCloud) -> None:
    cloud.script("GET", "/operations/op1", Reply(200, {"description": "no id"}))
    cloud.script("GET", "/backup/v1/resources/i1", Reply(200, {"computeInstanceId": "i1"}))  # not wrapped
    yc = client(cloud)
    with pytest.raises(CloudError) as info:
        yc.operations.get("op1")
    assert info.value.name == "UNKNOWN" and "id" in info.value.message
    with pytest.raises(CloudError):
        yc.backup_resources.get("i1")


def test_api_errors_come_back_as_cloud_errors(cloud: FakeCloud) -> None:
    cloud.script(
        "POST",
        "/backup/v1/policies/p1:execute",
        Reply(400, {"code": 9, "message": "policy is not applied"}, headers={"x-request-id": "r-9"}),
    )
    with pytest.raises(CloudError) as info:
        client(cloud).backup_policies.execute("p1", "i1", idempotency_key="k")
    err = info.value
    assert (err.name, err.http_status, err.request_id, err.path) == (
        "FAILED_PRECONDITION",
        400,
        "r-9",
        "/backup/v1/policies/p1:execute",
    )


# --- from_settings: endpoints, context, deadline, key exchange -------------------------------------------


def test_real_hosts_are_used_without_an_endpoint_override() -> None:
    yc = YandexCloud.from_settings(Settings.from_env({"YC_IAM_TOKEN": "x"}))
    assert yc.endpoints.backup == "https://backup.api.cloud.yandex.net"
    assert yc.endpoints.compute == "https://compute.api.cloud.yandex.net"
    assert yc.endpoints.operation == "https://operation.api.cloud.yandex.net"
    assert yc.endpoints.iam == "https://iam.api.cloud.yandex.net"


def test_the_context_token_and_remaining_time_are_used(cloud: FakeCloud) -> None:
    cloud.route("GET", "/operations/op1", lambda s: Reply(503, {"code": 14}, headers={"Retry-After": "5"}))
    context = SimpleNamespace(
        token={"access_token": "ctx-token", "expires_in": 42000, "token_type": "Bearer"},
        get_remaining_time_in_millis=lambda: 6000,  # 6 s less the 2 s margin: a 5 s Retry-After does not fit
    )
    yc = YandexCloud.from_settings(Settings.from_env({"YC_API_ENDPOINT": cloud.url}), context=context)
    with pytest.raises(CloudError):
        yc.operations.get("op1")
    assert [s.headers["authorization"] for s in cloud.seen] == ["Bearer ctx-token"]


@pytest.fixture(scope="module")
def sa_key() -> tuple[str, rsa.RSAPublicKey]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = {"id": "kid-1", "service_account_id": "sa-1", "key_algorithm": "RSA_2048", "private_key": pem}
    return json.dumps(key), private.public_key()


def _iam(public: rsa.RSAPublicKey, issued: list[str]) -> Any:
    def answer(seen: Seen) -> Reply:
        try:
            claims = jwt.decode(seen.body["jwt"], public, algorithms=["PS256"], audience=IAM_AUDIENCE)
        except jwt.PyJWTError:
            return Reply(401, {"code": 16, "message": "bad jwt"})
        assert claims["iss"] == "sa-1" and jwt.get_unverified_header(seen.body["jwt"])["kid"] == "kid-1"
        issued.append(f"t1.issued-{len(issued) + 1}")
        expires = (datetime.now(UTC) + timedelta(hours=12)).isoformat()
        return Reply(200, {"iamToken": issued[-1], "expiresAt": expires})

    return answer


def test_an_authorized_key_is_exchanged_and_a_401_refreshes_it(
    cloud: FakeCloud, sa_key: tuple[str, rsa.RSAPublicKey], caplog_yc: list[logging.LogRecord]
) -> None:
    key_json, public = sa_key
    issued: list[str] = []
    cloud.route("POST", "/iam/v1/tokens", _iam(public, issued))
    # The first token is "revoked" server-side: the call gets a 401, then succeeds with a fresh token
    cloud.route(
        "GET",
        "/operations/op1",
        lambda s: Reply(200, OP) if s.headers["authorization"] == "Bearer t1.issued-2" else Reply(401, {"code": 16}),
    )
    settings = Settings.from_env({"YC_API_ENDPOINT": cloud.url, "YC_SERVICE_ACCOUNT_KEY": key_json})
    yc = YandexCloud.from_settings(settings)
    assert yc.operations.get("op1").id == "op1"
    assert issued == ["t1.issued-1", "t1.issued-2"]
    assert (yc.calls, yc.attempts, yc.transport.auth_calls) == (1, 2, 2)
    # A second client in the same process reuses the cached token
    again = YandexCloud.from_settings(settings)
    again.operations.get("op1")
    assert len(issued) == 2

    # Nothing secret in logs, reprs or errors
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog_yc)
    private_key = json.loads(key_json)["private_key"]
    jwts = [s.body["jwt"] for s in cloud.requests_to("/iam/v1/tokens")]
    text = logged + repr(yc) + repr(yc.transport.auth) + repr(settings)
    for secret in [*issued, *jwts, private_key[30:90]]:
        assert secret not in text
    assert caplog_yc  # the calls were logged at all


def test_an_unusable_key_fails_the_call_without_quoting_it(cloud: FakeCloud) -> None:
    settings = Settings.from_env(
        {"YC_API_ENDPOINT": cloud.url, "YC_SERVICE_ACCOUNT_KEY": '{"id": "k", "x": "SECRETX"}'}
    )
    with pytest.raises(CloudError) as info:
        YandexCloud.from_settings(settings).operations.get("op1")
    assert info.value.name == "UNAUTHENTICATED" and "SECRETX" not in str(info.value)
    assert cloud.seen == []


def test_the_metadata_service_is_the_last_resort(cloud: FakeCloud) -> None:
    path = "/computeMetadata/v1/instance/service-accounts/default/token"
    cloud.route(
        "GET",
        path,
        lambda s: (
            Reply(200, {"access_token": "meta-tok", "expires_in": 3000, "token_type": "Bearer"})
            if s.headers.get("metadata-flavor") == "Google"
            else Reply(403, {})
        ),
    )
    cloud.route("GET", "/operations/op1", lambda s: Reply(200, OP))
    addr = cloud.url.removeprefix("http://")
    settings = Settings.from_env({"YC_API_ENDPOINT": cloud.url, "YC_METADATA_ADDR": addr})
    YandexCloud.from_settings(settings).operations.get("op1")
    assert cloud.requests_to("/operations/op1")[0].headers["authorization"] == "Bearer meta-tok"
