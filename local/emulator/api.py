"""The emulated REST API: Cloud Backup, Operation, Compute, IAM and Monitoring's write under one base URL.

Each route carries the `Spec` of its request message: the gateway's checks (query fields, oneofs, enums) run
before the handler and before the token is checked. Each handler gets a parsed Request and returns (HTTP status,
JSON body); failures raise ApiError, which the server renders as a google.rpc.Status. JSON follows the proto3
mapping: camelCase names, int64 as strings, fields at their default value (false, "", empty lists) left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from local.emulator.errors import UNAUTHENTICATED, UNIMPLEMENTED, ApiError, invalid, not_found
from local.emulator.filters import FilterError, compile_filter
from local.emulator.gateway import (
    INSTANCE_VIEW,
    NO_QUERY,
    PAGE,
    RESOURCE_TYPE,
    Request,
    Result,
    Spec,
    paginate,
    parse_bool,
)
from local.emulator.monitoring import parse_write
from local.emulator.records import Instance, Subject, check_id, prune, rfc3339
from local.emulator.state import EmulatorState

Handler = Callable[[EmulatorState, Request], Result]


def _subject(req: Request) -> Subject:
    if req.subject is None:  # the router authenticates first; this guards handler misuse
        raise ApiError(UNAUTHENTICATED, "Token is invalid or has expired.")
    return req.subject


def _instance(state: EmulatorState, req: Request, instance_id: str | None, field_name: str) -> Instance:
    iid = check_id(instance_id, field_name)
    inst = state.instances.get(iid)
    if inst is None:
        raise not_found(f"Instance {iid} not found")
    state.check_folder(_subject(req), inst.folder_id)
    return inst


# --- Cloud Backup: policies ----------------------------------------------------------------------------------


def get_policy(state: EmulatorState, req: Request) -> Result:
    pid = check_id(req.params["policyId"], "policyId")
    policy = state.policies.get(pid)
    if policy is None:
        raise not_found(f"Policy {pid} not found")
    state.check_folder(_subject(req), policy.folder_id)
    return 200, state.render_policy(policy)


def list_policies(state: EmulatorState, req: Request) -> Result:
    folder, iid = req.q("folderId"), req.q("computeInstanceId")
    if (folder is None) == (iid is None):
        raise invalid("Either Folder ID or Compute Cloud instance ID should be set (exactly one)", "folderId")
    if folder is not None:
        check_id(folder, "folderId")
        state.check_folder(_subject(req), folder)
        policies = [p for p in state.policies.values() if p.folder_id == folder]
    else:
        inst = _instance(state, req, iid, "computeInstanceId")
        # "the policies applied to that instance": an Apply still processing is not applied yet (ListApplications
        # hides it too, and Execute refuses it).
        applied = {
            a.policy_id for a in state.applications.values() if a.compute_instance_id == inst.id and not a.is_processing
        }
        policies = [state.policies[pid] for pid in applied if pid in state.policies]
    policies.sort(key=lambda p: (p.created_at, p.id))
    return 200, prune({"policies": [state.render_policy(p) for p in policies]})


def list_applications(state: EmulatorState, req: Request) -> Result:
    """The applications of one policy. Spec.check has refused a query id beside the path's policy id (one oneof),
    so the "-" placeholder with folderId/computeInstanceId never reaches here; "-" alone is not an id."""
    pid = check_id(req.params["policyId"], "policyId")
    show = parse_bool(req.q("showProcessing"), "showProcessing")
    policy = state.policies.get(pid)
    if policy is None:
        raise not_found(f"Policy {pid} not found")
    state.check_folder(_subject(req), policy.folder_id)
    apps = [a for a in state.applications.values() if a.policy_id == pid and (show or not a.is_processing)]
    apps.sort(key=lambda a: (a.compute_instance_id, a.created_at, a.policy_id))
    return 200, prune({"applications": [state.render_application(a) for a in apps]})


def policy_action(state: EmulatorState, req: Request) -> Result:
    """POST /backup/v1/policies/{policyId}:apply|:execute|:revoke with {"computeInstanceId"}."""
    verb = req.params["verb"]
    pid = check_id(req.params["policyId"], "policyId")
    body = req.json_body()
    unknown = set(body) - {"computeInstanceId", "compute_instance_id"}
    if unknown:
        raise invalid(f"unknown field(s) in request body: {', '.join(sorted(unknown))}", sorted(unknown)[0])
    raw = body.get("computeInstanceId", body.get("compute_instance_id"))
    if raw is None or raw == "":
        raise invalid("computeInstanceId: required", "computeInstanceId")
    iid = check_id(raw, "computeInstanceId")
    key = req.headers.get("idempotency-key", "").strip() or None
    if key is not None and len(key) > 256:
        raise invalid("Idempotency-Key: longer than 256 characters", "Idempotency-Key")
    fingerprint = f"{verb}|{pid}|{iid}"
    action = {"execute": state.execute, "apply": state.apply, "revoke": state.revoke}[verb]
    op = action(_subject(req), pid, iid, key=key, fingerprint=fingerprint)
    return 200, state.render_operation(op)


# --- Cloud Backup: resources ----------------------------------------------------------------------------------


def get_resource(state: EmulatorState, req: Request) -> Result:
    inst = _instance(state, req, req.params["computeInstanceId"], "computeInstanceId")
    parse_bool(req.q("includeTenantInfo"), "includeTenantInfo")
    if not inst.registered:
        raise not_found(f"Resource for instance {inst.id} not found (not registered in Cloud Backup)")
    return 200, {"resource": state.render_resource(inst)}


def list_resources(state: EmulatorState, req: Request) -> Result:
    folder = req.q("folderId")
    if not folder:
        raise invalid("folderId: required", "folderId")
    check_id(folder, "folderId")
    state.check_folder(_subject(req), folder)
    kind = req.q("type")
    compute = kind in (None, "RESOURCE_TYPE_UNSPECIFIED", "COMPUTE", "0", "1")  # only Compute resources exist here
    items = sorted(
        (i for i in state.instances.values() if compute and i.folder_id == folder and i.registered), key=lambda i: i.id
    )
    page, token = paginate(req, items, key=lambda i: i.id)
    return 200, prune({"resources": [state.render_resource(i) for i in page], "nextPageToken": token})


# --- Operation -------------------------------------------------------------------------------------------------


def get_operation(state: EmulatorState, req: Request) -> Result:
    oid = check_id(req.params["operationId"], "operationId")
    op = state.get_operation(oid)
    state.check_folder(_subject(req), op.folder_id)
    return 200, state.render_operation(op)


def cancel_operation(state: EmulatorState, req: Request) -> Result:
    oid = check_id(req.params["operationId"], "operationId")
    op = state.cancel(_subject(req), oid)
    return 200, state.render_operation(op)


# --- Compute ---------------------------------------------------------------------------------------------------


def get_instance(state: EmulatorState, req: Request) -> Result:
    inst = _instance(state, req, req.params["instanceId"], "instanceId")  # `view` checked by its Spec
    return 200, state.render_instance(inst)


def list_instances(state: EmulatorState, req: Request) -> Result:
    folder = req.q("folderId")
    if not folder:
        raise invalid("folderId: required", "folderId")
    check_id(folder, "folderId")
    state.check_folder(_subject(req), folder)
    try:
        match = compile_filter(req.q("filter") or "")
    except FilterError as exc:
        raise invalid(f"filter: {exc}", "filter") from exc
    items = sorted(
        (i for i in state.instances.values() if i.folder_id == folder and match(state.filter_fields(i))),
        key=lambda i: i.id,
    )
    page, token = paginate(req, items, key=lambda i: i.id)
    return 200, prune({"instances": [state.render_instance(i) for i in page], "nextPageToken": token})


# --- IAM -------------------------------------------------------------------------------------------------------


def create_iam_token(state: EmulatorState, req: Request) -> Result:
    body = req.json_body()
    has_jwt = "jwt" in body
    has_oauth = "yandexPassportOauthToken" in body or "yandex_passport_oauth_token" in body
    if has_jwt == has_oauth:
        raise invalid("exactly one of jwt, yandexPassportOauthToken must be set", "jwt")
    if has_oauth:
        raise ApiError(UNAUTHENTICATED, "OAuth token exchange is not emulated: use a JWT of an authorized key")
    token, expires_at = state.exchange_jwt(body["jwt"])
    return 200, {"iamToken": token, "expiresAt": rfc3339(expires_at)}


# --- Monitoring --------------------------------------------------------------------------------------------


def write_metrics(state: EmulatorState, req: Request) -> Result:
    """MetricsData.write: custom metrics of a folder (the writer needs write access to it: monitoring.editor)."""
    folder = req.q("folderId")
    if not folder:
        raise invalid("folderId: required", "folderId")
    check_id(folder, "folderId")
    service = req.q("service")
    if service != "custom":
        raise invalid("service: required, and only 'custom' takes written metrics", "service")
    subject = _subject(req)
    state.check_folder(subject, folder, write=True)
    points = parse_write(req.json_body(), state.now())
    state.record_metric_write(subject, folder, service, points, state.now())
    # The REST reference's name (the write guide's example says "metrics_written"); int64 as a string.
    return 200, {"writtenMetricsCount": str(len(points))}


# --- routing ---------------------------------------------------------------------------------------------------

_SEG = r"[^/:]*"
Route = tuple[tuple[str, ...], re.Pattern[str], Handler, bool, Spec]
ROUTES: list[Route] = [
    # (methods, path, handler, needs auth, the request's query as the proto defines it)
    (
        ("GET",),
        re.compile(r"^/backup/v1/policies$"),
        list_policies,
        True,
        Spec({"folderId": "string", "computeInstanceId": "string"}),
    ),
    (("GET",), re.compile(rf"^/backup/v1/policies/(?P<policyId>{_SEG})$"), get_policy, True, NO_QUERY),
    (
        ("GET",),
        re.compile(rf"^/backup/v1/policies/(?P<policyId>{_SEG})/applications$"),
        list_applications,
        True,
        Spec(
            {"folderId": "string", "computeInstanceId": "string", "showProcessing": "bool"},
            oneof=("folderId", "policyId", "computeInstanceId"),
        ),
    ),
    (
        ("POST",),
        re.compile(rf"^/backup/v1/policies/(?P<policyId>{_SEG}):(?P<verb>apply|execute|revoke)$"),
        policy_action,
        True,
        NO_QUERY,
    ),
    (
        ("GET",),
        re.compile(r"^/backup/v1/resources$"),
        list_resources,
        True,
        Spec({"folderId": "string", **PAGE, "type": RESOURCE_TYPE}),
    ),
    (
        ("GET",),
        re.compile(rf"^/backup/v1/resources/(?P<computeInstanceId>{_SEG})$"),
        get_resource,
        True,
        Spec({"includeTenantInfo": "bool"}),
    ),
    (("GET",), re.compile(rf"^/operations/(?P<operationId>{_SEG})$"), get_operation, True, NO_QUERY),
    # Cancel: the proto says GET, the design guide says POST (reference section 2, [CONFLICT]): accept both.
    (("GET", "POST"), re.compile(rf"^/operations/(?P<operationId>{_SEG}):cancel$"), cancel_operation, True, NO_QUERY),
    (
        ("GET",),
        re.compile(r"^/compute/v1/instances$"),
        list_instances,
        True,
        Spec({"folderId": "string", **PAGE, "filter": "string", "orderBy": "string"}),
    ),
    (
        ("GET",),
        re.compile(rf"^/compute/v1/instances/(?P<instanceId>{_SEG})$"),
        get_instance,
        True,
        Spec({"view": INSTANCE_VIEW}),
    ),
    (("POST",), re.compile(r"^/iam/v1/tokens$"), create_iam_token, False, NO_QUERY),
    (
        ("POST",),
        re.compile(r"^/monitoring/v2/data/write$"),
        write_metrics,
        True,
        Spec({"folderId": "string", "service": "string"}),
    ),
]


def dispatch(state: EmulatorState, req: Request) -> Result:
    path_matched = False
    for methods, pattern, handler, needs_auth, spec in ROUTES:
        m = pattern.match(req.path)
        if m is None:
            continue
        path_matched = True
        if req.method not in methods:
            continue
        req.params = {k: v for k, v in m.groupdict().items() if k != "verb"}
        # The gateway reads the request into its message before the service sees it (and checks the token).
        spec.check(req)
        req.params = m.groupdict()
        with state.lock:
            state.settle()
            if needs_auth:
                req.subject = state.authenticate(req.headers.get("authorization"))
            return handler(state, req)
    if path_matched:
        raise ApiError(UNIMPLEMENTED, f"Method {req.method} is not supported for {req.path}")
    raise not_found(f"Unknown path {req.path}")
