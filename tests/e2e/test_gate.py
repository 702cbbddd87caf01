"""The backup gate end to end: `python ci/backup_gate.py` against `python -m local.serve` over real HTTP on loopback.

Given the local front (the function behind an HTTP API v2 shape, the emulator, local queues, follow-ups in the
background) in one scenario, when the gate runs as a CI job would, then it exits with the documented code. The
status route's own refusals are checked with hand-signed requests. Tests that follow a backup need the status
route (`GET /backup/{operationId}`) in the function: without it they are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci.backup_gate import sign

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "ci" / "backup_gate.py"
INSTANCE = "fhmproddb00000000001"
OTHER = "fhmprodweb0000000002"
FAST = ["--poll-initial", "0.3", "--poll-max", "1", "--timeout", "60"]


class Served:
    """`python -m local.serve` in a child process; its exported variables in `env`."""

    def __init__(self, scenario: str, log: Path) -> None:
        self.log = log.open("w")
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        command = [sys.executable, "-m", "local.serve", "--port", "0", "--scenario", scenario, "--time-scale", "250"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=base, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.env: dict[str, str] = {}
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while "SLACK_SIGNING_SECRET" not in self.env:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"local.serve did not start: see {log}")
            name, _, value = line.removeprefix("export ").strip().partition("=")
            self.env[name] = value.strip("'")
        self.url = self.env["BACKUP_GATE_URL"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def executes(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.env["YC_API_ENDPOINT"] + "/_emulator/executes", timeout=10) as reply:
            executes: list[dict[str, Any]] = json.loads(reply.read())["executes"]
            return executes

    def status_route(self) -> bool:
        """Whether the function serves GET /backup/{operationId} (unsigned: 401) or not yet (404)."""
        try:
            urllib.request.urlopen(self.url + "/backup/cdgbm44jmbtlzya7ppba", timeout=10)
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        return False


def served(scenario: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(scenario, tmp_path_factory.mktemp("serve") / f"{scenario}.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ok(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from served("ok", tmp_path_factory)


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from served("fail", tmp_path_factory)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from served("slow", tmp_path_factory)


def needs_route(server: Served) -> None:
    if not server.status_route():
        pytest.skip("the status route GET /backup/{operationId} is not in the function yet (issue 12 item 1)")


def gate(server: Served, *args: str, url: str | None = None, secret: str | None = None) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BACKUP_GATE_URL": url or server.url,
        "BACKUP_GATE_SECRET": server.env["BACKUP_GATE_SECRET"] if secret is None else secret,
    }
    command = [sys.executable, str(GATE), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def started_ids(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("started")]


# --- the gate ----------------------------------------------------------------------------------------------


def test_succeeds(ok: Served) -> None:
    needs_route(ok)
    result = gate(ok, "--instance-name", "prod-db-1", "--reason", "release 1.2", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 backup(s) succeeded" in result.stdout and "%" in result.stdout


def test_fails(failing: Served) -> None:
    needs_route(failing)
    result = gate(failing, "--instance-id", INSTANCE, *FAST)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not enough space in the vault" in result.stdout


def test_hits_its_timeout_and_names_the_running_backup(slow: Served) -> None:
    needs_route(slow)
    result = gate(slow, "--instance-id", INSTANCE, "--poll-initial", "0.3", "--poll-max", "1", "--timeout", "3")
    assert result.returncode == 2, result.stdout + result.stderr
    (operation,) = started_ids(result.stdout)
    assert "passed first" in result.stdout and operation in result.stdout.splitlines()[-1]


def test_refused_with_a_bad_secret(ok: Served) -> None:
    result = gate(ok, "--instance-id", INSTANCE, *FAST, secret="not-the-secret")
    assert result.returncode == 3
    assert "HTTP 401" in result.stdout and "not-the-secret" not in result.stdout + result.stderr
    assert ok.env["BACKUP_GATE_SECRET"] not in result.stdout + result.stderr


def test_refused_with_a_bad_request(ok: Served) -> None:
    result = gate(ok, "--instance-name", "Not_A-Valid-Name", *FAST)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "HTTP 400" in result.stdout and "instanceName" in result.stdout


def test_refused_when_nothing_matches(ok: Served) -> None:
    result = gate(ok, "--labels", "env=nowhere", *FAST)
    assert result.returncode == 3, result.stdout + result.stderr


def test_dry_run_plans_and_starts_nothing(ok: Served) -> None:
    before = len(ok.executes())
    result = gate(ok, "--instance-name", "prod-web-1", "--dry-run", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"would back up {OTHER}" in result.stdout and len(ok.executes()) == before


def test_a_rerun_with_the_same_correlation_id_starts_nothing_new(ok: Served) -> None:
    needs_route(ok)
    args = ("--instance-id", OTHER, "--correlation-id", f"e2e-rerun-{time.time_ns()}", *FAST)
    first = gate(ok, *args)
    after_first = len(ok.executes())
    second = gate(ok, *args)
    assert first.returncode == second.returncode == 0, first.stdout + second.stdout
    assert started_ids(first.stdout) == started_ids(second.stdout) != []
    assert len(ok.executes()) == after_first


class Proxy:
    """A TCP relay in front of the server that can be taken down (connections refused) and brought back."""

    def __init__(self, upstream: str) -> None:
        self.upstream = ("127.0.0.1", int(upstream.rsplit(":", 1)[1]))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        assert self.listener is not None
        self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def test_survives_a_front_that_is_briefly_down(ok: Served) -> None:
    needs_route(ok)
    proxy = Proxy(ok.url)
    env = {"PATH": os.environ.get("PATH", ""), "BACKUP_GATE_SECRET": ok.env["BACKUP_GATE_SECRET"]}
    command = [sys.executable, str(GATE), "--url", proxy.url, "--instance-id", INSTANCE, *FAST]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]  # the correlation id line, then "started ..."
        assert lines[-1].startswith("started"), lines
        proxy.down()
        time.sleep(2.5)
        proxy.up()
        rest = proc.stdout.read()
        assert proc.wait(60) == 0, "".join(lines) + rest
    assert "retrying" in rest and "succeeded" in rest


def test_the_front_serves_slack_commands(ok: Served) -> None:
    import hashlib
    import hmac
    from urllib.parse import urlencode

    form = {"command": "/backup", "text": "help", "user_id": "U1", "user_name": "alice", "team_id": "T1"}
    form.update({"channel_id": "C1", "trigger_id": "1.2.abc"})
    form["response_url"] = "https://hooks.slack.com/commands/T1/1/x"
    body = urlencode(form).encode()
    ts = str(int(time.time()))
    digest = hmac.new(ok.env["SLACK_SIGNING_SECRET"].encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
    }
    request = urllib.request.Request(ok.url + "/slack", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200 and "/backup" in reply.read().decode()


# --- the status route's refusals ---------------------------------------------------------------------------


def status(server: Served, operation_id: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(server.url + "/backup/" + operation_id, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def an_operation(server: Served) -> str:
    """A backup operation of OTHER: the same one every time (one correlation id), never a second backup."""
    result = gate(server, "--instance-id", OTHER, "--correlation-id", "e2e-status", "--timeout", "0.5")
    (operation,) = started_ids(result.stdout)
    return operation


def test_status_route_answers_a_signed_request(ok: Served) -> None:
    needs_route(ok)
    operation = an_operation(ok)
    code, body = status(ok, operation, sign(ok.env["BACKUP_GATE_SECRET"], int(time.time()), operation_path(operation)))
    assert code == 200 and body["operationId"] == operation and body["status"] in ("running", "succeeded")
    assert body["computeInstanceId"] == OTHER


def operation_path(operation: str) -> bytes:
    return f"GET /backup/{operation}".encode()


@pytest.mark.parametrize("case", ["unsigned", "stale", "another path", "wrong secret"])
def test_status_route_refuses(ok: Served, case: str) -> None:
    needs_route(ok)
    operation = an_operation(ok)
    secret, now = ok.env["BACKUP_GATE_SECRET"], int(time.time())
    headers = {
        "unsigned": {},
        "stale": sign(secret, now - 301, operation_path(operation)),
        "another path": sign(secret, now, operation_path(operation[:-1] + ("b" if operation[-1] == "a" else "a"))),
        "wrong secret": sign("guess", now, operation_path(operation)),
    }[case]
    code, body = status(ok, operation, headers)
    assert code == 401 and set(body["error"]) >= {"code", "message"}


def test_status_route_answers_404_for_an_unknown_id(ok: Served) -> None:
    needs_route(ok)
    unknown = "nosuchoperation00001"
    code, body = status(ok, unknown, sign(ok.env["BACKUP_GATE_SECRET"], int(time.time()), operation_path(unknown)))
    assert code == 404 and body["error"]["code"] == "NOT_FOUND"


def test_status_route_hides_operations_that_are_not_backups(ok: Served) -> None:
    needs_route(ok)
    request = urllib.request.Request(
        ok.env["YC_API_ENDPOINT"] + "/backup/v1/policies/cbpdefaultmonthly003:apply",
        data=json.dumps({"computeInstanceId": OTHER}).encode(),
        headers={"Authorization": f"Bearer {ok.env['YC_IAM_TOKEN']}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        apply_id = json.loads(reply.read())["id"]
    code, body = status(ok, apply_id, sign(ok.env["BACKUP_GATE_SECRET"], int(time.time()), operation_path(apply_id)))
    assert code == 404 and body["error"]["code"] == "NOT_FOUND"
