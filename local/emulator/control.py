"""The control surface over HTTP, under /_emulator/ (no auth, no faults, not in the call log).

Every endpoint maps onto an EmulatorState method, so an out-of-process run (python -m local.emulator) can be
driven like `emu.state` in tests. Bodies use camelCase keys; snake_case is accepted too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from local.emulator.errors import ApiError, invalid, not_found
from local.emulator.faults import FaultRule
from local.emulator.gateway import Request, Result
from local.emulator.records import Failure, rfc3339
from local.emulator.seed import BENCH_FOLDER_ID, DEMO_FOLDER_ID, create_large_folder, large_folder_policy_id
from local.emulator.state import EmulatorState

PREFIX = "/_emulator"


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


_FAULT_ALIASES = {"rate429": "rate_429", "rate503": "rate_503"}


def snake_keys(data: dict[str, Any], aliases: dict[str, str] | None = None) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        name = (aliases or {}).get(key.lower(), snake(key))
        out[name] = value
    return out


def _failure(value: Any) -> Failure | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("failure must be an object or null")
    return Failure(**snake_keys(value))


def _instance_attrs(body: dict[str, Any]) -> dict[str, Any]:
    attrs = snake_keys(body)
    attrs.pop("id", None)
    if "failure" in attrs:
        attrs["failure"] = _failure(attrs["failure"])
    return attrs


def put_instance(state: EmulatorState, req: Request) -> Result:
    iid = req.params["id"]
    attrs = _instance_attrs(req.json_body())
    with state.lock:
        if iid in state.instances:
            inst = state.update_instance(iid, **attrs)
        else:
            folder = attrs.pop("folder_id", None) or DEMO_FOLDER_ID
            inst = state.add_instance(iid, folder, **attrs)
        return 200, state.instance_summary(inst)


def get_instance(state: EmulatorState, req: Request) -> Result:
    with state.lock:
        inst = state.instances.get(req.params["id"])
        if inst is None:
            raise not_found(f"Instance {req.params['id']} not found")
        return 200, state.instance_summary(inst)


def delete_instance(state: EmulatorState, req: Request) -> Result:
    state.remove_instance(req.params["id"])
    return 200, {}


def put_policy(state: EmulatorState, req: Request) -> Result:
    attrs = snake_keys(req.json_body())
    folder = attrs.pop("folder_id", None)
    name = attrs.pop("name", None)
    if not folder or not name:
        raise invalid("folderId and name are required")
    policy = state.add_policy(req.params["id"], folder, name, **attrs)
    return 200, state.render_policy(policy)


def post_application(state: EmulatorState, req: Request) -> Result:
    attrs = snake_keys(req.json_body())
    try:
        app = state.add_application(attrs.pop("policy_id"), attrs.pop("compute_instance_id"), **attrs)
    except KeyError as exc:
        raise not_found(str(exc)) from exc
    with state.lock:
        return 200, state.render_application(app)


def delete_application(state: EmulatorState, req: Request) -> Result:
    pid, iid = req.q("policyId"), req.q("computeInstanceId")
    if not pid or not iid:
        raise invalid("policyId and computeInstanceId are required")
    state.remove_application(pid, iid)
    return 200, {}


def post_faults(state: EmulatorState, req: Request) -> Result:
    body = req.json_body()
    rules = body.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise invalid("rules must be a list of objects")
    state.set_faults([FaultRule(**snake_keys(r, _FAULT_ALIASES)) for r in rules], seed=body.get("seed"))
    return 200, {"rules": state.fault_rules()}


def get_faults(state: EmulatorState, req: Request) -> Result:
    return 200, {"rules": state.fault_rules()}


def delete_faults(state: EmulatorState, req: Request) -> Result:
    state.clear_faults()
    return 200, {"rules": []}


def post_reset(state: EmulatorState, req: Request) -> Result:
    body = req.json_body()
    demo = body.get("demo")
    state.reset(demo=None if demo is None else bool(demo))
    return 200, {}


def get_settings(state: EmulatorState, req: Request) -> Result:
    return 200, state.settings()


def post_settings(state: EmulatorState, req: Request) -> Result:
    state.set_settings(**snake_keys(req.json_body()))
    return 200, state.settings()


def post_clock(state: EmulatorState, req: Request) -> Result:
    seconds = req.json_body().get("advance", 0)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise invalid("advance must be a number of seconds")
    now = state.advance_clock(float(seconds))
    return 200, {"time": now, "now": rfc3339(now)}


def get_executes(state: EmulatorState, req: Request) -> Result:
    return 200, {"executes": state.execute_log}


def get_calls(state: EmulatorState, req: Request) -> Result:
    return 200, {"calls": state.call_log}


def delete_logs(state: EmulatorState, req: Request) -> Result:
    state.clear_logs()
    return 200, {}


def get_metrics(state: EmulatorState, req: Request) -> Result:
    """Every accepted Monitoring write; `?name=` keeps only the points of that metric."""
    name = req.q("name")
    writes = state.metric_writes
    return 200, {"writes": writes, "points": [p for w in writes for p in w["points"] if not name or p["name"] == name]}


def delete_metrics(state: EmulatorState, req: Request) -> Result:
    state.clear_metrics()
    return 200, {}


def get_state(state: EmulatorState, req: Request) -> Result:
    return 200, state.snapshot()


def post_subject(state: EmulatorState, req: Request) -> Result:
    """{subjectId, folders, readOnly?, token?, tokenLifetime?}: add a subject and give it a token."""
    body = snake_keys(req.json_body())
    subject_id = body.get("subject_id")
    if not subject_id:
        raise invalid("subjectId is required")
    state.add_subject(subject_id, body.get("folders", []), read_only=bool(body.get("read_only", False)))
    return 200, _token(state, subject_id, body.get("token"), body.get("token_lifetime"))


def post_token(state: EmulatorState, req: Request) -> Result:
    """{subjectId, token?, lifetime?}: a token for an existing subject (lifetime in clock seconds; none: never)."""
    body = snake_keys(req.json_body())
    subject_id = body.get("subject_id")
    if subject_id not in state.subjects:
        raise not_found(f"Subject {subject_id} not found")
    return 200, _token(state, subject_id, body.get("token"), body.get("lifetime"))


def _token(state: EmulatorState, subject_id: str, token: str | None, lifetime: float | None) -> dict[str, Any]:
    if token:
        expires = None if lifetime is None else state.now() + float(lifetime)
        state.add_token(token, subject_id, expires_at=expires)
    else:
        token, expires = state.issue_token(subject_id, None if lifetime is None else float(lifetime))
    out: dict[str, Any] = {"subjectId": subject_id, "token": token}
    if expires is not None:
        out["expiresAt"] = rfc3339(expires)
    return out


def post_key(state: EmulatorState, req: Request) -> Result:
    """{serviceAccountId, folders?}: generate and register an authorized key; returns the key JSON."""
    body = snake_keys(req.json_body())
    sa = body.get("service_account_id")
    if not sa:
        raise invalid("serviceAccountId is required")
    return 200, state.create_authorized_key(sa, body.get("folders"))


def post_large_folder(state: EmulatorState, req: Request) -> Result:
    """{folderId?, count?, labels?, idPrefix?, apply?, agentOnline?, backupDuration?, grantTo?}"""
    body = snake_keys(req.json_body())
    folder = body.pop("folder_id", BENCH_FOLDER_ID)
    if "grant_to" in body:
        body["grant_to"] = tuple(body["grant_to"])
    ids = create_large_folder(state, folder, **body)
    return 200, {"folderId": folder, "policyId": large_folder_policy_id(folder), "instanceIds": ids}


ControlHandler = Callable[[EmulatorState, Request], Result]
CONTROL_ROUTES: list[tuple[str, re.Pattern[str], ControlHandler]] = [
    ("GET", re.compile(r"^/_emulator/state$"), get_state),
    ("POST", re.compile(r"^/_emulator/reset$"), post_reset),
    ("GET", re.compile(r"^/_emulator/settings$"), get_settings),
    ("POST", re.compile(r"^/_emulator/settings$"), post_settings),
    ("POST", re.compile(r"^/_emulator/clock$"), post_clock),
    ("GET", re.compile(r"^/_emulator/executes$"), get_executes),
    ("GET", re.compile(r"^/_emulator/calls$"), get_calls),
    ("DELETE", re.compile(r"^/_emulator/logs$"), delete_logs),
    ("GET", re.compile(r"^/_emulator/metrics$"), get_metrics),
    ("DELETE", re.compile(r"^/_emulator/metrics$"), delete_metrics),
    ("GET", re.compile(r"^/_emulator/faults$"), get_faults),
    ("POST", re.compile(r"^/_emulator/faults$"), post_faults),
    ("DELETE", re.compile(r"^/_emulator/faults$"), delete_faults),
    ("GET", re.compile(r"^/_emulator/instances/(?P<id>[^/]+)$"), get_instance),
    ("POST", re.compile(r"^/_emulator/instances/(?P<id>[^/]+)$"), put_instance),
    ("DELETE", re.compile(r"^/_emulator/instances/(?P<id>[^/]+)$"), delete_instance),
    ("POST", re.compile(r"^/_emulator/policies/(?P<id>[^/]+)$"), put_policy),
    ("POST", re.compile(r"^/_emulator/applications$"), post_application),
    ("DELETE", re.compile(r"^/_emulator/applications$"), delete_application),
    ("POST", re.compile(r"^/_emulator/subjects$"), post_subject),
    ("POST", re.compile(r"^/_emulator/tokens$"), post_token),
    ("POST", re.compile(r"^/_emulator/keys$"), post_key),
    ("POST", re.compile(r"^/_emulator/large-folder$"), post_large_folder),
]


def dispatch_control(state: EmulatorState, req: Request) -> Result:
    for method, pattern, handler in CONTROL_ROUTES:
        m = pattern.match(req.path)
        if m is not None and method == req.method:
            req.params = m.groupdict()
            try:
                return handler(state, req)
            except ApiError:
                raise
            except (ValueError, TypeError) as exc:
                raise invalid(str(exc)) from exc
            except KeyError as exc:
                raise not_found(str(exc)) from exc
    raise not_found(f"Unknown control endpoint {req.method} {req.path}")
