"""`make run` (python -m local.runtime) ends with the result: 0 succeeded or a dry run, 1 failed, 2 a bad event file.

Run as a child process, the way `make run` runs it, at a time scale where the nominal 10-minute backup takes one
second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make_run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    command = [sys.executable, "-m", "local.runtime", "--time-scale", "600", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("scenario", "code", "status"), [("ok", 0, "succeeded"), ("fail", 1, "failed")])
def test_the_exit_code_follows_the_result(scenario: str, code: int, status: str) -> None:
    result = make_run("--scenario", scenario)
    assert result.returncode == code, result.stdout + result.stderr
    assert f"1 result event(s): {status}" in result.stdout


def test_a_dry_run_prints_its_plan_and_exits_0(tmp_path: Path) -> None:
    event = tmp_path / "dry.json"
    event.write_text(json.dumps({"computeInstanceId": "fhmproddb00000000001", "dryRun": True}))
    result = make_run("--event", str(event))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would back up" in result.stdout and "result event" not in result.stdout


def test_an_event_file_that_is_not_json_is_a_clear_message(tmp_path: Path) -> None:
    event = tmp_path / "notes.txt"
    event.write_text("backup please\n")
    result = make_run("--event", str(event))
    assert result.returncode == 2
    assert "is not JSON" in result.stdout and "Traceback" not in result.stdout + result.stderr
