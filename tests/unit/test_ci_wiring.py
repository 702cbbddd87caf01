"""action.yml (GitHub composite action) and ci/gitlab-backup-gate.yml (GitLab template) parse as YAML, declare one
input per gate option, and their scripts call the gate with every input. The scripts are run here with bash / sh,
the way the runners would after expanding the inputs, first against a stub that records its arguments, then
against the real gate and the fake front."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci import backup_gate as gate
from tests.gate_front import FakeFront

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ("dry-run", "json")
SAMPLE = {
    "url": "https://front.example/stage",
    "instance-id": "fhmproddb00000000001",
    "instance-name": "prod-db-1",
    "labels": "env=prod,role=db",
    "folder-id": "b1gdemofolder0000001",
    "policy-id": "cbpdefaultdaily00001",
    "policy-name": "Default daily",
    "reason": "-release 1.2; $(touch pwned) `id`",  # starts with "-", carries shell syntax: must arrive verbatim
    "correlation-id": "gh:acme/shop/77/1",
    "timeout": "600",
    "poll-initial": "5",
    "poll-max": "60",
    "retries": "3",
    "request-timeout": "20",
}
STUB = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"


def gate_options() -> set[str]:
    return {a.option_strings[0][2:] for a in gate.build_parser()._actions if a.option_strings[0] != "-h"}


def load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


def action_step() -> dict[str, Any]:
    steps = load("action.yml")["runs"]["steps"]
    assert len(steps) == 1
    step: dict[str, Any] = steps[0]
    return step


def gitlab_job() -> dict[str, Any]:
    job: dict[str, Any] = load("ci/gitlab-backup-gate.yml")[".backup-gate"]
    return job


def run_action(inputs: dict[str, str], action_path: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    """The step as the runner runs it: `${{ inputs.x }}` in `env` expanded, the script through bash."""
    step = action_step()
    defaults = {k: v.get("default", "") for k, v in load("action.yml")["inputs"].items()}
    values = {**defaults, **inputs}
    env = {"PATH": os.environ["PATH"], "GITHUB_ACTION_PATH": str(action_path), **extra_env}
    for name, template in step["env"].items():
        env[name] = re.sub(r"\$\{\{\s*inputs\.([a-z-]+)\s*\}\}", lambda m: values[m.group(1)], template)
    return subprocess.run(["bash", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=60, check=False)


def run_gitlab(variables: dict[str, str], extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    job = gitlab_job()
    env = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in job["variables"].items()}, **variables, **extra_env}
    script = "\n".join(job["script"])
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)


def gitlab_name(option: str) -> str:
    return "BACKUP_GATE_" + option.upper().replace("-", "_")


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "backup_gate.py").write_text(STUB)
    return tmp_path


@pytest.fixture
def front() -> Iterator[FakeFront]:
    f = FakeFront(secret="wiring-secret")
    yield f
    f.stop()


def expected_args(values: dict[str, str]) -> list[str]:
    return [f"--{k}={v}" for k, v in values.items()] + [f"--{f}" for f in FLAGS]


# --- GitHub -------------------------------------------------------------------------------------------------


def test_action_inputs_mirror_the_gate_options_and_no_secret_input() -> None:
    action = load("action.yml")
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == gate_options()
    assert not [name for name in action["inputs"] if "secret" in name]
    step = action_step()
    assert "${{" not in step["run"]  # inputs reach the script through env only (no script injection)
    referenced = {m for v in step["env"].values() for m in re.findall(r"inputs\.([a-z-]+)", v)}
    assert referenced == set(action["inputs"])


def test_action_calls_the_gate_with_every_input(stub: Path) -> None:
    inputs = {**SAMPLE, **dict.fromkeys(FLAGS, "true")}
    result = run_action(inputs, stub, {})
    assert result.returncode == 0, result.stderr
    args = json.loads(result.stdout)
    assert sorted(args) == sorted(expected_args(SAMPLE))
    assert not (stub / "pwned").exists()


def test_action_leaves_out_empty_inputs(stub: Path) -> None:
    result = run_action({"instance-name": "prod-db-1"}, stub, {})
    args = json.loads(result.stdout)
    assert "--instance-name=prod-db-1" in args and not any(a.startswith("--url") for a in args)
    assert "--dry-run" not in args and "--timeout=3600" in args


def test_action_runs_the_real_gate(front: FakeFront) -> None:
    inputs = {"url": front.url, "instance-id": "fhmproddb00000000001", "reason": "ship it", "poll-initial": "0.05"}
    result = run_action(inputs, ROOT, {"BACKUP_GATE_SECRET": "wiring-secret", "GITHUB_RUN_ID": "5"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(front.requests[0].body)["reason"] == "ship it"


def test_action_fails_the_step_with_the_gates_code(front: FakeFront) -> None:
    inputs = {"url": front.url, "instance-id": "fhmproddb00000000001"}
    result = run_action(inputs, ROOT, {"BACKUP_GATE_SECRET": "not-the-secret"})
    assert result.returncode == 3


# --- GitLab -------------------------------------------------------------------------------------------------


def test_gitlab_variables_mirror_the_gate_options() -> None:
    job = gitlab_job()
    names = {gitlab_name(o) for o in gate_options() if o != "url"}  # BACKUP_GATE_URL is read by the gate itself
    assert names <= set(job["variables"])
    assert "BACKUP_GATE_SECRET" not in job["variables"] and "BACKUP_GATE_URL" not in job["variables"]
    script = "\n".join(job["script"])
    assert all(f"${gitlab_name(o)}" in script for o in gate_options() if o != "url")


def test_gitlab_calls_the_gate_with_every_input(stub: Path) -> None:
    values = {k: v for k, v in SAMPLE.items() if k != "url"}
    variables = {gitlab_name(k): v for k, v in values.items()}
    variables.update({gitlab_name(f): "true" for f in FLAGS})
    variables["BACKUP_GATE_SCRIPT"] = str(stub / "ci" / "backup_gate.py")
    result = run_gitlab(variables, {})
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)) == sorted(expected_args(values))


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX sh")
def test_gitlab_runs_the_real_gate(front: FakeFront) -> None:
    variables = {
        "BACKUP_GATE_INSTANCE_ID": "fhmproddb00000000001",
        "BACKUP_GATE_POLL_INITIAL": "0.05",
        "BACKUP_GATE_SCRIPT": str(ROOT / "ci" / "backup_gate.py"),
    }
    env = {"BACKUP_GATE_URL": front.url, "BACKUP_GATE_SECRET": "wiring-secret", "CI_PIPELINE_ID": "9"}
    env.update({"CI_JOB_ID": "31", "CI_PROJECT_PATH": "acme/shop"})
    result = run_gitlab(variables, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(front.requests[0].body)["correlationId"] == "gitlab:acme/shop/9/31"
