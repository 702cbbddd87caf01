"""Figure 8: the cold paths under the platform's CPU share (bench.cpu), with 30 ms of API latency.

For each memory size (128 MB, 256 MB and whatever template.yaml and deploy/yandex/deploy-yc.sh deploy) and each
CPU model ("aws": init unthrottled, the invocation under the quota; "throttled": the whole process under it),
fresh worker processes measure:

- `slack`: a signed slash command, spawn to reply (interpreter, `import app`, the first call);
- `first`: a timer trigger's first invocation (events/yc-timer.json: one instance, Execute, one ticket);
- `followup`: a follow-up's first invocation (one ticket of a finished backup: Operation.Get, the result event);
- `baseline`: the eager baseline's imports (bench.coldstart.EAGER_BASELINE), whole process under the quota.

What each model's runs configure, as each platform is deployed: "aws" as template.yaml (every secret by ARN,
read from moto's Secrets Manager in one round trip; the Yandex Cloud credentials as a service-account authorized
key, itself one of those secrets, exchanged at the emulator's `POST /iam/v1/tokens`; signed follow-up tickets);
"throttled" as deploy-yc.sh (an IAM token and the secrets' values in the environment, as Lockbox hands them over).

Runs are interleaved (every size, model and scenario once, then again) so a busy moment of the shared machine
hits them alike; the median of `runs` is reported. Where cgroups cannot be created, the reason is kept and every
scenario runs once per round unthrottled (model "unthrottled").
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import Any

from bench import coldstart
from bench.cpu import MB_PER_VCPU, MODELS, PERIOD_US, CpuQuotas, quota_us, vcpu_share

ROOT = Path(__file__).resolve().parent.parent
LATENCY_S = 0.030
BASE_SIZES = (128, 256)
SCENARIOS = ("slack", "first", "followup")
# Goals (issue 13), at the deployed memory size.
SLACK_MAX_MS = {"aws": 600.0, "throttled": 1500.0}
FIRST_INVOCATION_MAX_MS = {"aws": 1000.0}


FUNCTION_OF = {"slack": "trigger", "first": "trigger", "followup": "followup"}  # which function runs a scenario


def deployed_sizes(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """The memory each deployment file gives each function: {"template.yaml": {"trigger": MB, "followup": MB}, ...}.

    template.yaml: the function's own `MemorySize`, else the one under `Globals`. deploy-yc.sh: the defaults of
    TRIGGER_MEMORY and FOLLOWUP_MEMORY (each falls back to MEMORY), else MEMORY's.
    """
    sizes: dict[str, dict[str, int]] = {}
    template = (root / "template.yaml").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"^  (\w+):\n((?:(?: {3,}.*)?\n)+)", template, re.MULTILINE))
    globals_ = re.search(r"^Globals:\n(?:(?: .*)?\n)*?\s+MemorySize:\s*(\d+)", template, re.MULTILINE)
    default = int(globals_.group(1)) if globals_ else 128  # Lambda's own default
    found: dict[str, int] = {}
    for function, resource in (("trigger", "TriggerFunction"), ("followup", "FollowUpFunction")):
        own = re.search(r"^    \s*MemorySize:\s*(\d+)", blocks.get(resource, ""), re.MULTILINE)
        found[function] = int(own.group(1)) if own else default
    sizes["template.yaml"] = found
    script = (root / "deploy" / "yandex" / "deploy-yc.sh").read_text(encoding="utf-8")
    common = re.search(r"^MEMORY=\$\{MEMORY:-(\d+[mg])\}", script, re.MULTILINE)
    found = {}
    for function in ("trigger", "followup"):
        name = function.upper() + "_MEMORY"
        own = re.search(rf"^{name}=\$\{{{name}:-\$\{{MEMORY:-(\d+[mg])\}}\}}", script, re.MULTILINE)
        value = own.group(1) if own else common.group(1) if common else None
        if value is not None:
            found[function] = int(value[:-1]) * (1024 if value.endswith("g") else 1)
    sizes["deploy-yc.sh"] = found
    return sizes


def _deployed_for(deployed: dict[str, dict[str, int]], scenario: str) -> set[int]:
    """The sizes the function running `scenario` is deployed with (the baseline: every deployed size)."""
    function = FUNCTION_OF.get(scenario)
    return {mb for per in deployed.values() for name, mb in per.items() if function in (None, name)}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def measure(servers: Any, runs: int = 3, extra_sizes: tuple[int, ...] = ()) -> dict[str, Any]:
    """Every (size, model, scenario) `runs` times in fresh processes; medians and the raw runs."""
    from local.emulator.seed import DEMO_FOLDER_ID, INSTANCE_PROD_DB

    deployed = deployed_sizes()
    sizes = sorted({*BASE_SIZES, *_deployed_for(deployed, "baseline"), *extra_sizes})
    slack_secret = os.urandom(16).hex()
    # "throttled" (Yandex, as deploy-yc.sh deploys): a token and the secrets' values in the environment. The
    # request queue and the handoff key are set, so a backup command is answered before it runs (handlers.slack)
    # and the ack is the verification, one queue message and the reply.
    slack_env = servers.env(
        "stub",
        SLACK_SIGNING_SECRET=slack_secret,
        CHAT_ALLOWED_FOLDERS=DEMO_FOLDER_ID,
        REQUEST_QUEUE_URL=servers.queues["stub:requests"],
        HANDOFF_SECRET=os.urandom(16).hex(),
    )
    yandex = {
        "slack": slack_env,
        "first": servers.env("stub"),
        "followup": servers.env("stub", RESULT_QUEUE_URL=servers.queues["stub:results"]),
    }
    # "aws" (as template.yaml deploys): every secret by ARN (moto's Secrets Manager, one round trip) and the
    # Yandex Cloud credentials as an authorized key exchanged at the emulator's IAM (servers.aws_deployment).
    aws = servers.aws_deployment(slack_secret)
    aws_envs = {
        "slack": {
            **slack_env,
            "SLACK_SIGNING_SECRET": "",
            "HANDOFF_SECRET": "",
            "BENCH_SLACK_SECRET": slack_secret,
            **aws["trigger"],
        },
        "first": {**yandex["first"], **aws["trigger"]},
        "followup": {**yandex["followup"], **aws["followup"]},
    }
    specs: dict[str, dict[str, Any]] = {
        "slack": {"text": INSTANCE_PROD_DB, "warm_runs": 0},
        "first": {},
        "followup": {"body": servers.followup_ticket()},
        "baseline": {"code": coldstart.EAGER_BASELINE},
    }
    aws_specs = {**specs, "followup": {"body": servers.followup_ticket(servers.handoff_key)}}

    def configured(model: str, scenario: str) -> tuple[dict[str, str], dict[str, Any]]:
        """The environment and spec of one run: the deployed AWS configuration in the "aws" model."""
        if model == "aws":
            return aws_envs.get(scenario, yandex["first"]), aws_specs[scenario]
        return yandex.get(scenario, yandex["first"]), specs[scenario]

    samples: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    with CpuQuotas(sizes) as quotas:
        models = MODELS if quotas.unavailable is None else ("unthrottled",)
        plan = [
            (mb, model, scenario)
            for mb in (sizes if quotas.unavailable is None else [0])
            for model in models
            for scenario in SCENARIOS
        ]
        plan += [(mb, models[-1], "baseline") for mb in (sizes if quotas.unavailable is None else [0])]
        for model in ("aws", "throttled"):  # untimed: .pyc files, the emulator and moto warm
            for name in ("slack", "first", "followup", "baseline"):
                env, spec = configured(model, name)
                servers.spawn(name, spec, env)
        servers.set_latency(LATENCY_S)
        try:
            for _ in range(runs):
                for mb, model, scenario in plan:
                    servers.next_day()
                    env, spec = configured(model, scenario)
                    env = dict(env)
                    preexec = None
                    if model == "aws":
                        env["BENCH_CPU_JOIN"] = quotas.procs_file(mb) or ""
                    elif model == "throttled":
                        preexec = quotas.preexec(mb)
                    result = servers.spawn(scenario, spec, env, timeout=300, preexec_fn=preexec)
                    samples.setdefault((mb, model, scenario), []).append(result)
        finally:
            servers.set_latency(0.0)
        unavailable = quotas.unavailable
    cases = []
    for (mb, model, scenario), results in samples.items():
        cases.append(
            {
                "memory_mb": mb or None,
                "vcpu": round(vcpu_share(mb), 4) if mb else None,
                "quota_us": quota_us(mb) if mb else None,
                "model": model,
                "scenario": scenario,
                "deployed": mb in _deployed_for(deployed, scenario),
                "runs": results,
                "spawn_to_reply_ms": _median([r["spawn_to_reply_ms"] for r in results]),
                "import_ms": _median([r["import_ms"] for r in results]),
                "invocation_ms": _median([r["first_invocation_ms"] for r in results if "first_invocation_ms" in r]),
                "cpu_ms": _median([r.get("call_cpu_ms", r.get("import_cpu_ms", 0.0)) for r in results]),
                "warm_ms": _median([r["warm_call_ms"] for r in results if "warm_call_ms" in r]),
                "warm_cpu_ms": _median([r["warm_call_cpu_ms"] for r in results if "warm_call_cpu_ms" in r]),
                "ok": all(_ok(scenario, r) for r in results),
            }
        )
    return {
        "cgroups": unavailable is None,
        "unavailable": unavailable,
        "period_us": PERIOD_US,
        "mb_per_vcpu": MB_PER_VCPU,
        "latency_ms": LATENCY_S * 1000.0,
        "sizes": sizes,
        "deployed": deployed,
        "runs": runs,
        "cases": cases,
    }


def _ok(scenario: str, result: dict[str, Any]) -> bool:
    """The scenario did its work: the Slack reply said the backup is starting (queued) or started (inline), the
    trigger started one, the follow-up finished."""
    if scenario == "slack":
        return bool(result.get("started_replies") == 1 and result.get("status_codes") == [200])
    if scenario == "first":
        return bool(result.get("started") == [1, 1])
    if scenario == "followup":
        reply = result.get("reply")
        return isinstance(reply, dict) and not reply.get("batchItemFailures")
    return True


def goal_rows(figure: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(name, measured, goal, pass) per case, in table order; goals apply at the deployed size only."""
    rows: list[tuple[str, str, str, bool | None]] = []
    if not figure["cgroups"]:
        rows.append(("CPU quota", f"unavailable: {figure['unavailable']}", "figures below are unthrottled", None))
    order = {name: i for i, name in enumerate((*SCENARIOS, "baseline"))}
    cases = sorted(figure["cases"], key=lambda c: (c["memory_mb"] or 0, order[c["scenario"]], c["model"]))
    for c in cases:
        size = f"{c['memory_mb']} MB" if c["memory_mb"] else "full core"
        label = f"{size} {c['model']}"
        deployed = c["deployed"] and figure["cgroups"]
        if c["scenario"] == "slack":
            limit = SLACK_MAX_MS.get(c["model"])
            measured = (
                f"{c['spawn_to_reply_ms']:.0f} ms (init {c['import_ms']:.0f}, call {c['invocation_ms']:.0f}, "
                f"call CPU {c['cpu_ms']:.0f})"
            )
            judged = c["spawn_to_reply_ms"] <= limit and c["ok"] if limit and deployed else None
            goal = f"<= {limit:.0f} ms (deployed size)" if limit and deployed else "info"
            rows.append((f"Slack cold ack, {label}", measured, goal, judged))
        elif c["scenario"] in ("first", "followup"):
            limit = FIRST_INVOCATION_MAX_MS.get(c["model"])
            what = "timer first invocation" if c["scenario"] == "first" else "follow-up first invocation"
            measured = (
                f"{c['invocation_ms']:.0f} ms (init {c['import_ms']:.0f}, call CPU {c['cpu_ms']:.0f}; "
                f"spawn to reply {c['spawn_to_reply_ms']:.0f}"
                + (f"; warm {c['warm_ms']:.0f}" if c.get("warm_ms") is not None else "")
                + ")"
            )
            judged = c["invocation_ms"] <= limit and c["ok"] if limit and deployed else None
            goal = f"<= {limit:.0f} ms (deployed size)" if limit and deployed else "info"
            rows.append((f"{what}, {label}", measured, goal, judged))
        else:
            measured = f"{c['import_ms']:.0f} ms (CPU {c['cpu_ms']:.0f})"
            rows.append((f"eager baseline import, {size} {c['model']}", measured, "reference", None))
    return rows
