"""The cheapest part of `make bench` (the simulated poll-economy table), so the bench code cannot rot.

Not a timed test: nothing here asserts on speed; `make bench` measures, docs/BENCHMARKS.md explains.
"""

from __future__ import annotations

from bench import coldpaths, cpu, polls
from bench.judge import goals, table
from bench.simulate import PROGRESS_MODES


def test_given_the_default_schedule_when_simulated_then_every_mode_and_duration_has_a_row() -> None:
    rows = polls.simulated(noisy_seeds=2)

    assert {(r["mode"], r["duration"]) for r in rows} == {(m, d) for m in PROGRESS_MODES for d in polls.DURATIONS}
    assert all(r["polls"] >= 1 and r["lag_s"] >= 0 for r in rows)
    linear_2h = next(r for r in rows if r["mode"] == "linear" and r["duration"] == "2 h")
    assert linear_2h["pass"] is True  # the schedule's own documented result (11 polls, 19 s)


def test_the_goals_judge_polls_and_lag() -> None:
    assert polls.judge(7200, 12, 700.0) is True
    assert polls.judge(7200, 13, 10.0) is False  # over the poll budget
    assert polls.judge(7200, 12, 721.0) is False  # later than 10% of 2 hours
    assert polls.judge(600, 3, 61.0) is False  # later than 10% of the duration
    assert polls.judge(60, 3, 7.0) is True  # within the 10 s minimum delay
    assert polls.judge(60, 3, 11.0) is False
    assert polls.judge(60, 3, float("inf")) is False  # timed out
    assert polls.judge(600, 40, 1.0) is True  # the poll budget is for the 2-hour backup


def test_the_table_renders_the_poll_rows() -> None:
    figures = {
        "poll_economy": {"simulated": polls.simulated(noisy_seeds=1), "emulator": []},
        "cold_start": {
            "cases": {n: {"median_ms": 10.0} for n in ("app", "trigger", "eager_baseline")},
            "app_to_baseline_ratio": 1.0,
            "trigger_to_baseline_ratio": 1.0,
        },
    }
    rows = _poll_rows(figures)

    text = table(rows)

    assert "polls, simulated: linear" in text and "PASS" in text
    assert len(text.splitlines()) == 2 + len(PROGRESS_MODES)


def _poll_rows(figures: dict[str, object]) -> list[dict[str, object]]:
    """goals() needs every figure; give it empty ones for the rest and keep the poll rows."""
    full = {
        "first_invocation": {
            "import_ms": 0.0,
            "first_invocation_ms": 0.0,
            "cold_total_ms": 0.0,
            "second_invocation_ms": 0.0,
            "started_each": True,
            "runs": [],
        },
        "warm_per_target": [],
        "throughput": [],
        "fanout": [],
        "slack": {
            "started_replies": 1,
            "replies": 1,
            "status_codes": [200],
            "spawn_to_reply_ms": 0.0,
            "interpreter_ms": 0.0,
            "runs": [],
            "import_ms": 0.0,
            "first_invocation_ms": 0.0,
            "warm_median_ms": 0.0,
            "warm_ms": [0.0],
        },
        "memory": {"bare_interpreter_mb": 0.0, "peak_rss_mb": 0.0, "peak_rss_after_import_mb": 0.0, "started": 0},
        **figures,
    }
    return [r for r in goals(full) if str(r["name"]).startswith("polls")]


# --- figure 8: the CPU model and its judging (no cgroup is touched: a directory stands in for the hierarchy) ---


def test_the_quota_is_the_memory_share_of_a_100_ms_period():
    assert cpu.quota_us(1769) == cpu.PERIOD_US
    assert cpu.quota_us(256) == 14471
    assert cpu.quota_us(128) == 7236
    assert cpu.quota_us(1) == 1000  # the kernel's minimum


def test_quota_groups_are_written_and_forgotten_on_close(tmp_path):
    (tmp_path / "cpu.cfs_quota_us").write_text("-1")
    with cpu.CpuQuotas([256, 128, 256], root=tmp_path) as quotas:
        assert quotas.unavailable is None
        assert sorted(quotas.groups) == [128, 256]
        group = quotas.groups[256]
        assert (group / "cpu.cfs_period_us").read_text() == "100000"
        assert (group / "cpu.cfs_quota_us").read_text() == "14471"
        assert quotas.procs_file(256) == str(group / "cgroup.procs")
        assert quotas.preexec(512) is None
    assert quotas.groups == {}


def test_without_a_cpu_controller_the_quota_is_unavailable_and_says_why(tmp_path):
    with cpu.CpuQuotas([256], root=tmp_path / "absent") as quotas:
        assert quotas.unavailable is not None and "cpu controller" in quotas.unavailable
        assert quotas.procs_file(256) is None and quotas.preexec(256) is None


def test_the_deployed_sizes_are_read_from_the_deployment_files(tmp_path):
    (tmp_path / "deploy" / "yandex").mkdir(parents=True)
    (tmp_path / "template.yaml").write_text(
        "Globals:\n  Function:\n    MemorySize: 512 # note\n    Timeout: 60\n\nResources:\n"
        "  TriggerFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      MemorySize: 2048\n\n"
        "  FollowUpFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: app.f\n"
    )
    script = tmp_path / "deploy" / "yandex" / "deploy-yc.sh"
    script.write_text("MEMORY=${MEMORY:-1g}\n")
    assert coldpaths.deployed_sizes(tmp_path) == {
        "template.yaml": {"trigger": 2048, "followup": 512},
        "deploy-yc.sh": {"trigger": 1024, "followup": 1024},
    }
    script.write_text("MEMORY=${MEMORY:-}\nTRIGGER_MEMORY=${TRIGGER_MEMORY:-${MEMORY:-768m}}\n")
    assert coldpaths.deployed_sizes(tmp_path)["deploy-yc.sh"] == {"trigger": 768}
    # The repository's own files: both functions of both platforms have a size.
    assert all(set(per) == {"trigger", "followup"} for per in coldpaths.deployed_sizes().values())


def _case(mb: int, model: str, scenario: str, ms: float, deployed: bool, ok: bool = True) -> dict[str, object]:
    return {
        "memory_mb": mb,
        "model": model,
        "scenario": scenario,
        "deployed": deployed,
        "spawn_to_reply_ms": ms,
        "import_ms": 1.0,
        "invocation_ms": ms,
        "cpu_ms": 1.0,
        "warm_ms": None,
        "ok": ok,
    }


def test_cold_path_goals_apply_at_the_deployed_size_and_fail_honestly():
    figure = {
        "cgroups": True,
        "unavailable": None,
        "cases": [
            _case(256, "aws", "slack", 590.0, True),
            _case(256, "throttled", "slack", 1600.0, True),
            _case(256, "aws", "first", 900.0, True, ok=False),
            _case(256, "aws", "followup", 1001.0, True),
            _case(128, "aws", "slack", 9000.0, False),
            _case(256, "throttled", "baseline", 5000.0, True),
        ],
    }
    judged = {name: ok for name, _, _, ok in coldpaths.goal_rows(figure)}

    assert judged["Slack cold ack, 256 MB aws"] is True
    assert judged["Slack cold ack, 256 MB throttled"] is False  # over 1.5 s
    assert judged["timer first invocation, 256 MB aws"] is False  # fast, but it did not start the backup
    assert judged["follow-up first invocation, 256 MB aws"] is False  # over 1.0 s
    assert judged["Slack cold ack, 128 MB aws"] is None  # not deployed: information
    assert judged["eager baseline import, 256 MB throttled"] is None


def test_without_cgroups_the_rows_say_so_and_judge_nothing():
    figure = {"cgroups": False, "unavailable": "no cgroup v1 cpu controller", "cases": []}
    figure["cases"] = [{**_case(0, "unthrottled", "slack", 100.0, True), "memory_mb": None}]
    rows = coldpaths.goal_rows(figure)
    assert rows[0][0] == "CPU quota" and "unavailable" in rows[0][1]
    assert all(ok is None for *_, ok in rows)
