"""The CI backup gate (ci/backup_gate.py) against a fake front on loopback, with a fake clock (no real waits).

Given a front that implements the status-route contract, when the gate runs, then its exit code, its lines and its
requests are what docs say. The end-to-end version against `local.serve` is tests/e2e/test_gate.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ci import backup_gate as gate
from tests.gate_front import FAILED, SUCCEEDED, FakeFront, running

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "ci" / "backup_gate.py"
SECRET = "gate-test-secret-3f9a1c77"
INSTANCE = "fhmproddb00000000001"
KEYS = ("status", "progressPercentage", "error", "code", "message", "operationId")


class FakeTime:
    """A monotonic clock that only moves when the gate sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def front() -> Iterator[FakeFront]:
    f = FakeFront(secret=SECRET)
    yield f
    f.stop()


def run(front_url: str, *args: str, env: dict[str, str] | None = None, t: FakeTime | None = None) -> tuple:
    """(exit code, stdout, stderr, the fake time) of one gate run."""
    t = t or FakeTime()
    out, err = io.StringIO(), io.StringIO()
    environment = {"BACKUP_GATE_SECRET": SECRET, "BACKUP_GATE_URL": front_url} if env is None else env
    code = gate.main(list(args), environment, out=out, err=err, sleep=t.sleep, clock=t.clock, jitter=lambda: 1.0)
    return code, out.getvalue(), err.getvalue(), t


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- exit codes ----------------------------------------------------------------------------------------------


def test_success_follows_every_operation_and_exits_0(front: FakeFront) -> None:
    code, out, _, _ = run(front.url, "--instance-id", f"{INSTANCE},fhmprodweb0000000002", "--reason", "release 1.2")
    assert code == 0, out
    assert "2 backup(s) succeeded" in out
    assert out.count("succeeded  op") == 2
    assert re.search(r"running +op\w+ on fhmproddb00000000001 with policy \w+  30%", out)
    body = json.loads(front.requests[0].body)
    assert body["computeInstanceIds"] == [INSTANCE, "fhmprodweb0000000002"] and body["reason"] == "release 1.2"


def test_one_line_per_change_only(front: FakeFront) -> None:
    front.statuses = [running(10.0), running(10.0), running(10.0), running(55.0), SUCCEEDED]
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE)
    assert code == 0
    assert out.count("10%") == 1 and out.count("55%") == 1


def test_failed_backup_exits_1_with_the_error(front: FakeFront) -> None:
    front.statuses = [running(40.0), FAILED]
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE)
    assert code == 1
    assert "INTERNAL backup failed: not enough space in the vault" in out and "do not deploy" in out


def test_a_target_that_could_not_start_beside_a_started_one_exits_1(front: FakeFront) -> None:
    front.not_startable = {"epdnopolicy000000005"}
    code, out, _, _ = run(front.url, "--instance-id", f"{INSTANCE},epdnopolicy000000005")
    assert code == 1
    assert "not started epdnopolicy000000005: POLICY_NOT_APPLIED" in out


def test_timeout_exits_2_and_names_the_running_operations(front: FakeFront) -> None:
    front.statuses = [running(5.0)]
    code, out, _, t = run(front.url, "--instance-id", INSTANCE, "--timeout", "100")
    assert code == 2
    op = next(iter(front.operations))
    assert "passed first" in out and op in out.splitlines()[-1]
    assert t.now - 1000.0 <= 100.0 + 1e-6  # never sleeps past its own timeout
    assert front.operations[op].gets >= 2  # it looked one last time at the deadline


def test_targets_queued_by_the_function_exit_2_and_are_not_asked_again(front: FakeFront) -> None:
    # a 202 with queued[]: the function retries those itself; the gate must not send the request again (a second
    # ticket chain for the started ones) and must not call it a success (those backups have not started)
    front.queues_retryable = True
    front.transient = {"epdother000000000005": 1}
    code, out, _, _ = run(front.url, "--instance-id", f"{INSTANCE},epdother000000000005")
    assert code == 2 and "retried by the function" in out and "epdother000000000005" in out
    assert sum(1 for r in front.requests if r.method == "POST") == 1


def test_fan_out_exits_2_and_says_why(front: FakeFront) -> None:
    front.fanned_out = 120
    code, out, _, _ = run(front.url, "--labels", "env=prod")
    assert code == 2 and "120 target(s) fanned out" in out and "FANOUT_THRESHOLD" in out


@pytest.mark.parametrize(
    ("args", "env_secret", "message"),
    [
        (["--instance-id", INSTANCE], "wrong-secret", "X-Backup-Signature does not match"),
        (["--instance-name", "prod-db-1"], SECRET, "computeInstanceId: missing"),  # the fake wants ids: a 400
    ],
)
def test_refused_exits_3_with_the_servers_message(front: FakeFront, args: list, env_secret: str, message: str) -> None:
    code, out, _, _ = run(front.url, *args, env={"BACKUP_GATE_SECRET": env_secret, "BACKUP_GATE_URL": front.url})
    assert code == 3 and message in out
    assert len(front.requests) == 1  # 4xx is never retried


def test_nothing_could_start_422_exits_3_with_each_target(front: FakeFront) -> None:
    front.not_startable = {INSTANCE}
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE)
    assert code == 3
    assert "HTTP 422 NOTHING_STARTED" in out and f"{INSTANCE}: POLICY_NOT_APPLIED apply the policy" in out


def test_unreachable_front_exits_4_after_bounded_retries() -> None:
    code, out, _, t = run(closed_port_url(), "--instance-id", INSTANCE, "--retries", "3")
    assert code == 4 and "failed 4 time(s)" in out
    assert t.sleeps == [1.0, 2.0, 4.0]  # exponential backoff (jitter pinned)


def test_a_front_lost_while_following_names_the_backups_that_go_on(front: FakeFront) -> None:
    front.faults = [None] + [503] * 10  # the POST goes through, every status check fails
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE, "--retries", "2", "--json")
    outcome = json.loads(out)
    (operation,) = front.operations
    assert code == outcome["exitCode"] == 4
    assert outcome["operations"][0]["operationId"] == operation and operation in outcome["message"]


def test_5xx_every_time_exits_4(front: FakeFront) -> None:
    front.faults = [502] * 10
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE, "--retries", "2")
    assert code == 4 and len(front.requests) == 3 and "HTTP 502" in out


def test_survives_a_front_briefly_down_and_retry_after_is_honoured(front: FakeFront) -> None:
    front.faults = ["drop", 503, None, "drop", 429]  # POST: drop, 503, ok; then the first GET: drop, 429, ok
    code, out, _, t = run(front.url, "--instance-id", INSTANCE)
    assert code == 0, out
    assert executes_once(front)
    assert 1.0 in t.sleeps  # the scripted Retry-After: 1
    assert [r.method for r in front.requests] == ["POST"] * 3 + ["GET"] * 5
    assert json.loads(front.requests[0].body)["correlationId"] == json.loads(front.requests[2].body)["correlationId"]


def test_targets_with_a_transient_error_are_asked_again_without_a_second_backup(front: FakeFront) -> None:
    front.transient = {"fhmprodweb0000000002": 2}
    code, out, _, _ = run(front.url, "--instance-id", f"{INSTANCE},fhmprodweb0000000002")
    assert code == 0, out
    assert out.count("asking again") == 2 and front.executes == 2  # one backup each, none twice
    assert len({json.loads(r.body)["correlationId"] for r in front.requests if r.method == "POST"}) == 1


def test_targets_that_keep_hitting_transient_errors_exit_4(front: FakeFront) -> None:
    front.transient = {"fhmprodweb0000000002": 99}
    code, out, _, _ = run(front.url, "--instance-id", f"{INSTANCE},fhmprodweb0000000002", "--retries", "2")
    assert code == 4 and "could not start: the cloud kept failing" in out
    assert "succeeded  op" in out  # the one that started is still followed to its end


def executes_once(front: FakeFront) -> bool:
    return front.executes == 1


def test_a_non_json_reply_is_a_failing_front(front: FakeFront, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front, "_post", lambda h, headers, body: front._reply(h, 202, []))  # type: ignore[arg-type]
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE)
    assert code == 4 and "not a JSON object" in out


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
        max_leaves=10,
    )
)
def test_any_status_reply_is_read_or_refused_cleanly(reply: Any) -> None:
    g = gate.Gate(gate.build_parser().parse_args([]), "http://127.0.0.1:1", SECRET, out=io.StringIO())
    op = {"operationId": "op1", "computeInstanceId": INSTANCE, "status": "running", "progressPercentage": None}
    try:
        g.update(op, reply)
    except gate.GateError as exc:
        assert exc.code == 4
    else:
        assert op["status"] in ("running", "succeeded", "failed")


# --- schedule ------------------------------------------------------------------------------------------------


def test_polls_grow_and_are_capped(front: FakeFront) -> None:
    front.statuses = [running(float(p)) for p in range(1, 40)] + [SUCCEEDED]
    code, _, _, t = run(front.url, "--instance-id", INSTANCE, "--timeout", "100000")
    assert code == 0
    assert t.sleeps[0] == pytest.approx(10.0)
    assert all(b >= a - 1e-9 for a, b in zip(t.sleeps, t.sleeps[1:], strict=False))
    assert max(t.sleeps) == pytest.approx(120.0)


def test_retry_after_on_a_status_reply_replaces_the_schedule(front: FakeFront) -> None:
    front.retry_after = "42"
    code, _, _, t = run(front.url, "--instance-id", INSTANCE)
    assert code == 0
    assert t.sleeps[1:] == [42.0, 42.0]


@given(st.integers(0, 60), st.floats(0.1, 100), st.floats(1, 1000))
def test_poll_delay_grows_within_bounds(checks: int, initial: float, span: float) -> None:
    maximum = initial + span
    d = gate.poll_delay(checks, initial, maximum)
    assert initial - 1e-9 <= d <= maximum
    assert gate.poll_delay(checks + 1, initial, maximum) >= d


@given(st.text(max_size=30))
def test_retry_after_parser_never_raises(value: str) -> None:
    seconds = gate.retry_after_seconds(value)
    digits = re.fullmatch(r"[0-9]{1,6}", value.strip())
    assert (seconds is None) == (digits is None)
    if seconds is not None:
        assert 1.0 <= gate.poll_delay(0, 10, 20, seconds) <= 600.0


# --- arguments, body, identity, signing ----------------------------------------------------------------------


def test_body_from_options() -> None:
    args = gate.build_parser().parse_args(
        ["--labels", "env=prod,role=db", "--folder-id", "b1gdemofolder0000001", "--policy-name", "Daily", "--dry-run"]
    )
    body = gate.build_body(args, "gh:x/1/1")
    assert body == {
        "instanceLabels": {"env": "prod", "role": "db"},
        "folderId": "b1gdemofolder0000001",
        "policyName": "Daily",
        "correlationId": "gh:x/1/1",
        "dryRun": True,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--instance-id", INSTANCE, "--instance-name", "x"],
        ["--policy-id", "a", "--policy-name", "b"],
        ["--instance-id", "NOT-AN-ID"],
        ["--labels", "Env=prod"],
        ["--timeout", "0"],
        ["--correlation-id", "a\nb"],
    ],
)
def test_bad_options_exit_3_before_any_request(front: FakeFront, args: list) -> None:
    code, out, _, _ = run(front.url, *args)
    assert code == 3 and out.strip()
    assert front.requests == []


def test_no_secret_no_url_or_plain_http_elsewhere_exit_3(front: FakeFront) -> None:
    assert run(front.url, env={"BACKUP_GATE_URL": front.url})[0] == 3
    assert "BACKUP_GATE_SECRET" in run(front.url, env={"BACKUP_GATE_URL": front.url})[1]
    assert run(front.url, env={"BACKUP_GATE_SECRET": SECRET})[0] == 3
    code, out, _, _ = run(front.url, "--url", "http://example.com/", env={"BACKUP_GATE_SECRET": SECRET})
    assert code == 3 and "https" in out


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True),
        min_size=1,
        max_size=5,
    )
)
def test_labels_round_trip(labels: dict[str, str]) -> None:
    assert gate.parse_labels(",".join(f"{k}={v}" for k, v in labels.items())) == labels


@given(st.text(max_size=60))
def test_labels_parser_accepts_or_refuses_cleanly(text: str) -> None:
    try:
        labels = gate.parse_labels(text)
    except gate.GateError as exc:
        assert exc.code == 3 and not gate.CONTROL_RE.search(str(exc))
    else:
        assert all(gate.LABEL_RE.match(f"{k}={v}") for k, v in labels.items())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "77", "GITHUB_RUN_ATTEMPT": "2"}, "github:acme/shop/77/2"),
        ({"CI_PROJECT_PATH": "acme/shop", "CI_PIPELINE_ID": "9", "CI_JOB_ID": "31"}, "gitlab:acme/shop/9/31"),
        ({"BUILD_TAG": "jenkins-shop-12"}, "jenkins:jenkins-shop-12"),
        ({"GITHUB_RUN_ID": "77"}, None),  # without the attempt a re-run could not be told apart
        ({}, None),
    ],
)
def test_ci_identity(env: dict, expected: str | None) -> None:
    assert gate.ci_correlation_id(env) == expected


def test_correlation_defaults_to_the_ci_run_and_a_rerun_follows_the_same_operations(front: FakeFront) -> None:
    env = {
        "BACKUP_GATE_SECRET": SECRET,
        "BACKUP_GATE_URL": front.url,
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "77",
        "GITHUB_RUN_ATTEMPT": "1",
    }
    first = run(front.url, "--instance-id", INSTANCE, env=env)
    second = run(front.url, "--instance-id", INSTANCE, env=env)
    assert first[0] == second[0] == 0
    assert front.executes == 1
    ops = {line.split()[1] for out in (first[1], second[1]) for line in out.splitlines() if line.startswith("started")}
    assert len(ops) == 1
    assert all(json.loads(r.body)["correlationId"] == "github:acme/shop/77/1" for r in front.requests if r.body)


def test_without_ci_identity_a_correlation_id_is_made_and_printed(front: FakeFront) -> None:
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE)
    made = json.loads(front.requests[0].body)["correlationId"]
    assert code == 0 and made.startswith("local:") and made in out


def test_signatures_are_what_the_function_verifies() -> None:
    from security.hmac_v1 import status_message, verify_webhook

    body = b'{"computeInstanceId":"fhmproddb00000000001"}'
    headers = gate.sign(SECRET, 1_700_000_000, body)
    verify_webhook(headers, body, SECRET, now=1_700_000_010)  # raises on a mismatch
    get = gate.sign(SECRET, 1_700_000_000, b"GET /backup/cdgbm44jmbtlzya7ppba")
    assert get["X-Backup-Signature"] != headers["X-Backup-Signature"]
    verify_webhook(get, status_message("cdgbm44jmbtlzya7ppba"), SECRET, now=1_700_000_010)


# --- output --------------------------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_exits_0(front: FakeFront) -> None:
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE, "--dry-run")
    assert code == 0 and f"would back up {INSTANCE}" in out and "nothing started" in out
    assert front.executes == 0 and json.loads(front.requests[0].body)["dryRun"] is True


def test_json_prints_one_object_on_stdout_and_progress_on_stderr(front: FakeFront) -> None:
    front.statuses = [running(50.0), FAILED]
    code, out, err, _ = run(front.url, "--instance-id", INSTANCE, "--json")
    outcome = json.loads(out)
    assert code == outcome["exitCode"] == 1 and outcome["outcome"] == "failed"
    assert outcome["operations"][0]["error"]["code"] == "INTERNAL"
    assert "started" in err


def test_json_on_a_refusal(front: FakeFront) -> None:
    code, out, _, _ = run(
        front.url, "--instance-id", INSTANCE, "--json", env={"BACKUP_GATE_SECRET": "x", "BACKUP_GATE_URL": front.url}
    )
    assert code == 3 and json.loads(out)["outcome"] == "refused"


def test_hostile_reply_text_is_neutralised(front: FakeFront, monkeypatch: pytest.MonkeyPatch) -> None:
    evil = {"error": {"code": "X\x1b[31m", "message": "fix \x1b]0;pwned\x07 this" + "y" * 5000}}
    monkeypatch.setattr(front, "_post", lambda h, headers, body: front._reply(h, 400, evil))
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE)
    assert code == 3 and "\x1b" not in out and "\x07" not in out and len(out) < 1000


# --- the secret ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["ok", "refused", "unreachable", "failed", "unknown option", "unknown option=", "json"],
)
def test_the_secret_and_signatures_are_never_printed(front: FakeFront, case: str) -> None:
    url = closed_port_url() if case == "unreachable" else front.url
    args = ["--instance-id", INSTANCE, "--retries", "1"]
    if case == "refused":
        front.faults = [401]
    if case == "failed":
        front.statuses = [FAILED]
    if case == "unknown option":
        args += ["--secret", SECRET]
    if case == "unknown option=":
        args += ["--webhook-secret=" + SECRET[:-1]]  # not the secret itself: redaction would hide that one
    if case == "json":
        args += ["--json"]
    code, out, err, _ = run(url, *args, env={"BACKUP_GATE_SECRET": SECRET, "BACKUP_GATE_URL": url})
    assert SECRET[:-1] not in out + err
    for request in front.requests:
        assert request.headers["x-backup-signature"][3:] not in out + err
    if case.startswith("unknown option"):
        assert code == 3 and "-secret" in out


def test_an_error_message_quoting_the_secret_is_redacted(front: FakeFront, monkeypatch: pytest.MonkeyPatch) -> None:
    echo = {"error": {"code": "BAD", "message": f"your secret is {SECRET}"}}
    monkeypatch.setattr(front, "_post", lambda h, headers, body: front._reply(h, 400, echo))
    code, out, _, _ = run(front.url, "--instance-id", INSTANCE)
    assert code == 3 and SECRET not in out and "***" in out


def test_no_traceback_even_on_an_unexpected_error(front: FakeFront, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError(f"bug holding {SECRET}")

    monkeypatch.setattr(gate.Gate, "run", boom)
    code, out, err, _ = run(front.url, "--instance-id", INSTANCE)
    assert code == 4 and "gate error: RuntimeError" in out and "Traceback" not in out + err and SECRET not in out


# --- Python 3.8, standard library only -----------------------------------------------------------------------


def test_the_gate_needs_nothing_newer_than_python_3_8() -> None:
    vermin = Path(sys.executable).parent / "vermin"
    result = subprocess.run(
        [str(vermin), "--no-tips", "--eval-annotations", "--violations", "-t=3.8-", str(GATE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gate_imports_only_the_standard_library() -> None:
    import ast

    tree = ast.parse(GATE.read_text(), feature_version=(3, 8))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}


def python38() -> list[str] | None:
    exe = shutil.which("python3.8")
    if exe is None:
        return None
    env = {**os.environ, "PYENV_VERSION": os.environ.get("PYENV_VERSION", "3.8")}
    if subprocess.run([exe, "-c", "pass"], env=env, capture_output=True, check=False).returncode != 0:
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False)
        found = [v for v in versions.stdout.split() if v.startswith("3.8")]
        if not found:
            return None
        env["PYENV_VERSION"] = found[-1]
    return [exe, f"PYENV_VERSION={env['PYENV_VERSION']}"]


def test_it_runs_on_python_3_8(front: FakeFront) -> None:
    found = python38()
    if found is None:
        pytest.skip("no python3.8 on this machine (vermin checks the language level above)")
    exe, pyenv = found
    env = {"BACKUP_GATE_SECRET": SECRET, "PATH": os.environ.get("PATH", ""), "PYENV_VERSION": pyenv.split("=", 1)[1]}
    args = [exe, str(GATE), "--url", front.url, "--instance-id", INSTANCE, "--poll-initial", "0.05", "--json"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "succeeded"
