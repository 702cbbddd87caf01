"""deploy/yandex: the API Gateway spec and deploy-yc.sh (syntax, and a run against fake `yc` and `aws` CLIs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.checks import GATEWAY_SPEC_PATH, HTTP_ROUTES, ROOT

SCRIPT = ROOT / "deploy" / "yandex" / "deploy-yc.sh"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace", "x-yc-apigateway-any-method"}
FOLDER = "b1gtestfolder"


# ------------------------------------------------------------------------------------------- API gateway spec
@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(GATEWAY_SPEC_PATH.read_text())
    return loaded


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def test_spec_is_openapi_3(spec: dict[str, Any]) -> None:
    assert str(spec["openapi"]).startswith("3.0")
    assert spec["info"]["title"] and spec["info"]["version"]
    for (method, path), operation in operations(spec).items():
        assert path.startswith("/"), path
        assert operation.get("responses"), f"{method} {path}: OpenAPI 3.0 requires responses"
        assert operation.get("operationId"), f"{method} {path}: operationId (delivered to the function in 1.0)"
    ids = [op["operationId"] for op in operations(spec).values()]
    assert len(ids) == len(set(ids))


def test_spec_routes_are_exactly_the_served_ones(spec: dict[str, Any]) -> None:
    assert sorted(operations(spec)) == sorted(HTTP_ROUTES)


def test_every_route_invokes_the_trigger_function(spec: dict[str, Any]) -> None:
    variables = spec["x-yc-apigateway"]["variables"]
    for (method, path), operation in operations(spec).items():
        integration = operation["x-yc-apigateway-integration"]
        assert integration["type"] == "cloud_functions", (method, path)
        assert integration["function_id"] == "${var.trigger_function_id}", (method, path)
        assert integration["service_account_id"] == "${var.service_account_id}", (method, path)
        assert integration["payload_format_version"] == "1.0", "1.0 gives the function `path` (0.1 does not)"
        assert integration["tag"] == "${var.function_tag}"
    for name in ("trigger_function_id", "service_account_id", "function_tag"):
        assert "default" in variables[name], f"variable {name} needs a default"
    assert variables["function_tag"]["default"] == "$latest"


def test_spec_validates_with_openapi_spec_validator_if_installed(spec: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator is not installed")
    validator.validate(spec)


# ------------------------------------------------------------------------------------------- deploy-yc.sh
FAKE_CLI = r'''#!{python} -IS
"""A stand-in for the {tool} CLI: records its arguments, answers from a small state kept in files."""
import json, os, sys
from pathlib import Path

tool = {tool!r}
state = Path(os.environ["FAKE_STATE"])
argv = sys.argv[1:]
stdin = sys.stdin.read() if "-" in argv and "--payload" in argv else None
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps({{"tool": tool, "argv": argv, "stdin": stdin}}) + "\n")

def flag(name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default

def out(obj):
    print(json.dumps(obj))
    sys.exit(0)

words = [a for a in argv if not a.startswith("-")]
if tool == "aws":
    name = flag("--queue-name") or flag("--queue-url", "").rsplit("/", 1)[-1]
    if "create-queue" in argv:
        out({{"QueueUrl": "https://message-queue.api.cloud.yandex.net/b1gcloud/dj6/" + name}})
    if "get-queue-attributes" in argv:
        out({{"Attributes": {{"QueueArn": "yrn:yc:ymq:ru-central1:{folder}:" + name}}}})
    sys.exit("fake aws: unexpected " + " ".join(argv))

if argv[:3] == ["config", "get", "folder-id"]:
    print("{folder}")
    sys.exit(0)
verbs = ("get", "create", "update", "delete", "add-access-binding", "add-version")
verb = next((w for w in words if w in verbs), None)
kind = "-".join(words[: words.index(verb)]) if verb else "?"
name = flag("--name") or flag("--function-name") or "?"
key = state / (kind + "--" + name)
resource = {{"id": kind.split("-")[-1] + "-" + name, "name": name, "current_version": {{"id": "ver-" + name}},
            "domain": "d5dtest.apigw.yandexcloud.net"}}
if kind == "lockbox-secret":  # the entry keys of the current version are kept, as Lockbox shows them
    saved = json.loads(key.read_text() or "{{}}") if key.exists() else None
    if verb == "create" or (verb == "add-version" and saved is not None):
        added = [e["key"] for e in json.loads(stdin or "[]")]
        saved = {{"keys": sorted(set((saved or {{}}).get("keys", [])) | set(added)),
                  "versions": (saved or {{}}).get("versions", 0) + 1}}
        key.write_text(json.dumps(saved))
    if saved is not None and saved.get("versions"):
        suffix = "" if saved["versions"] == 1 else "-" + str(saved["versions"])
        resource["current_version"] = {{"id": "ver-" + name + suffix, "payload_entry_keys": saved["keys"]}}
    if verb == "add-version":
        out(resource["current_version"])
if kind == "iam-access-key" and verb == "create":
    out({{"access_key": {{"id": "ajekey", "key_id": "YCAJEKEYID"}}, "secret": "YCsecret"}})
if verb == "get":
    if key.exists():
        out(resource)
    sys.stderr.write("ERROR: not found\n")
    sys.exit(1)
if verb == "create" and kind not in ("serverless-function-version",) and not key.exists():
    key.touch()
if verb in ("create", "update"):
    out(resource)
sys.exit(0)
'''


def make_fake_clis(tmp_path: Path) -> dict[str, Any]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in ("yc", "aws"):
        path = bin_dir / tool
        path.write_text(FAKE_CLI.format(python=sys.executable, tool=tool, folder=FOLDER))
        path.chmod(0o755)
    package = tmp_path / "function.zip"
    package.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "FAKE_STATE": str(state),
        "FOLDER_ID": FOLDER,
        "PY": sys.executable,
        "SLACK_SIGNING_SECRET": "slack-signing-secret",
        "DEFAULT_REQUEST": '{"policyName":"daily","instanceLabels":{"backup":"on"}}',
    }
    return {"env": env, "state": state, "package": package, "bin": bin_dir}


@pytest.fixture()
def fake_clis(tmp_path: Path) -> dict[str, Any]:
    return make_fake_clis(tmp_path)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of deploy-yc.sh against fresh fakes, shared by the tests that only read what it did."""
    fake = make_fake_clis(tmp_path_factory.mktemp("deploy"))
    result = run_deploy(fake)
    assert result.returncode == 0, result.stderr
    return {**fake, "result": result, "calls": calls(fake)}


def run_deploy(fake: dict[str, Any], **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(fake["package"])],
        env={**fake["env"], **extra_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def calls(fake: dict[str, Any]) -> list[dict[str, Any]]:
    lines = (fake["state"] / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def command(call: dict[str, Any]) -> str:
    """'yc iam service-account create' / 'aws sqs create-queue <name>': the verb path and the resource's name."""
    argv = call["argv"]
    words = []
    for arg in argv:
        if arg.startswith("-"):
            break
        words.append(arg)
    name = next(
        (argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--name", "--queue-name", "--function-name")), ""
    )
    return " ".join([call["tool"], *words, name]).strip()


def flags(call: dict[str, Any]) -> dict[str, list[str]]:
    argv: list[str] = call["argv"]
    out: dict[str, list[str]] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else ""
            out.setdefault(arg, []).append(value)
    return out


def test_script_syntax() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True).returncode == 0


def test_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_refuses_to_run_without_yc(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    bash = shutil.which("bash") or "/bin/bash"
    result = subprocess.run(
        [bash, str(SCRIPT)],
        env={"PATH": str(empty_bin), "YC": "yc-not-installed", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "the yc CLI is not installed" in result.stderr
    assert "Nothing was changed" in result.stderr


def test_refuses_to_run_without_package(fake_clis: dict[str, Any], tmp_path: Path) -> None:
    fake_clis["package"] = tmp_path / "missing.zip"
    result = run_deploy(fake_clis)
    assert result.returncode != 0 and "make package" in result.stderr
    assert not (fake_clis["state"] / "calls.jsonl").exists()


def test_deploy_runs_the_steps_in_order(deployed: dict[str, Any]) -> None:
    result = deployed["result"]
    sequence = [command(c) for c in deployed["calls"]]
    mutating = [c for c in sequence if " get" not in c and "get-queue-attributes" not in c]
    assert mutating == [
        "yc iam service-account create backup-runner",
        *["yc resource-manager folder add-access-binding b1gtestfolder"] * 6,
        "yc iam service-account create backup-runner-queue-admin",
        "yc resource-manager folder add-access-binding b1gtestfolder",
        "yc iam access-key create",
        "yc lockbox secret create backup-runner-secrets",
        "yc lockbox secret add-access-binding",
        "yc iam access-key create",
        "aws sqs create-queue backup-requests-dlq",
        "aws sqs create-queue backup-followups-dlq",
        "aws sqs create-queue backup-results-dlq",
        "aws sqs create-queue backup-schedule-dlq",
        "aws sqs create-queue backup-requests",
        "aws sqs create-queue backup-followups",
        "aws sqs create-queue backup-results",
        "yc serverless function create backup-trigger",
        "yc serverless function create backup-followup",
        "yc serverless function version create backup-trigger",
        "yc serverless function version create backup-followup",
        "yc serverless trigger create timer backup-schedule",
        "yc serverless trigger create message-queue backup-requests",
        "yc serverless trigger create message-queue backup-followups",
        "yc serverless api-gateway create backup-runner",
        "yc iam access-key delete ajekey",
    ]
    assert "POST https://d5dtest.apigw.yandexcloud.net/backup" in result.stdout


def test_roles_and_secret(deployed: dict[str, Any]) -> None:
    recorded = deployed["calls"]
    roles = [flags(c)["--role"][0] for c in recorded if "add-access-binding" in c["argv"]]
    assert roles == [
        "backup.editor",
        "compute.viewer",
        "ymq.reader",
        "ymq.writer",
        "functions.functionInvoker",
        "monitoring.editor",  # the functions write their metrics with their own IAM token
        "ymq.admin",
        "lockbox.payloadViewer",
    ]
    binding = next(c for c in recorded if c["argv"][:2] == ["lockbox", "secret"] and "add-access-binding" in c["argv"])
    assert flags(binding)["--service-account-id"] == ["account-backup-runner"]
    create = next(c for c in recorded if c["argv"][:3] == ["lockbox", "secret", "create"])
    payload = {e["key"]: e["text_value"] for e in json.loads(create["stdin"])}
    assert payload["AWS_ACCESS_KEY_ID"] == "YCAJEKEYID" and payload["AWS_SECRET_ACCESS_KEY"] == "YCsecret"
    assert payload["SLACK_SIGNING_SECRET"] == "slack-signing-secret"
    assert len(payload["WEBHOOK_SECRET"]) >= 32  # generated
    assert len(payload["HANDOFF_SECRET"]) >= 64 and payload["HANDOFF_SECRET"] != payload["WEBHOOK_SECRET"]
    assert all("YCsecret" not in arg for c in recorded for arg in c["argv"]), "a secret leaked into argv"


def test_queues_get_redrive_policies_to_their_dlqs(deployed: dict[str, Any]) -> None:
    created = {
        flags(c)["--queue-name"][0]: json.loads(flags(c)["--attributes"][0])
        for c in deployed["calls"]
        if "create-queue" in c["argv"]
    }
    for queue in ("backup-requests", "backup-followups", "backup-results"):
        redrive = json.loads(created[queue]["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == f"yrn:yc:ymq:ru-central1:{FOLDER}:{queue}-dlq"
        assert int(redrive["maxReceiveCount"]) == 5
        assert "RedrivePolicy" not in created[f"{queue}-dlq"]
    assert int(created["backup-requests"]["VisibilityTimeout"]) >= 6 * 120
    assert int(created["backup-followups"]["VisibilityTimeout"]) >= 6 * 60
    for call in deployed["calls"]:
        if call["tool"] == "aws":
            assert flags(call)["--endpoint-url"] == ["https://message-queue.api.cloud.yandex.net"]
            assert flags(call)["--region"] == ["ru-central1"]


def test_function_versions(deployed: dict[str, Any]) -> None:
    versions = {
        flags(c)["--function-name"][0]: flags(c)
        for c in deployed["calls"]
        if c["argv"][:3] == ["serverless", "function", "version"]
    }
    trigger, followup = versions["backup-trigger"], versions["backup-followup"]
    assert trigger["--entrypoint"] == ["app.trigger_handler"]
    assert followup["--entrypoint"] == ["app.followup_handler"]
    assert trigger["--execution-timeout"] == ["120s"] and followup["--execution-timeout"] == ["60s"]
    assert trigger["--memory"] == ["1024m"] and followup["--memory"] == ["256m"]  # docs/DEPLOY.md: memory and cost
    for version in (trigger, followup):
        assert version["--runtime"] == ["python312"]
        assert version["--service-account-id"] == ["account-backup-runner"]
        assert version["--source-path"] == [str(deployed["package"])]
        environment = dict(e.strip('"').replace('""', '"').split("=", 1) for e in version["--environment"])
        assert environment["FOLDER_ID"] == FOLDER
        assert json.loads(environment["DEFAULT_REQUEST"]) == {"policyName": "daily", "instanceLabels": {"backup": "on"}}
        assert environment["FOLLOWUP_QUEUE_URL"].endswith("/backup-followups")
        assert environment["REQUEST_QUEUE_URL"].endswith("/backup-requests")
        assert environment["RESULT_QUEUE_URL"].endswith("/backup-results")
        assert environment["AWS_ENDPOINT_URL_SQS"] == "https://message-queue.api.cloud.yandex.net"
        assert environment["METRICS_ENABLED"] == "true"
        assert environment["METRICS_NAMESPACE"] == "yc-backup-runner"
        # each function copies what it gives up on to its own DLQ (Yandex batches settle per message)
        own, other = ("REQUEST", "FOLLOWUP") if version is trigger else ("FOLLOWUP", "REQUEST")
        queue = "backup-requests" if version is trigger else "backup-followups"
        assert environment[f"{own}_DLQ_URL"] == f"https://message-queue.api.cloud.yandex.net/b1gcloud/dj6/{queue}-dlq"
        assert f"{other}_DLQ_URL" not in environment
    secret_vars = {
        name: {s.split(",")[0].split("=", 1)[1] for s in version["--secret"]} for name, version in versions.items()
    }
    assert secret_vars["backup-trigger"] == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "WEBHOOK_SECRET",
        "SLACK_SIGNING_SECRET",
        "HANDOFF_SECRET",  # signs its fan-out messages, tickets and redeliveries
    }
    # the follow-up verifies and re-signs the tickets
    assert secret_vars["backup-followup"] == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HANDOFF_SECRET"}
    handoff = next(s for s in trigger["--secret"] if s.startswith("environment-variable=HANDOFF_SECRET,"))
    assert handoff.endswith(",key=HANDOFF_SECRET")
    assert all("version-id=ver-backup-runner-secrets" in s for s in trigger["--secret"])


def test_environment_value_with_equals_sign_is_csv_quoted(fake_clis: dict[str, Any]) -> None:
    assert run_deploy(fake_clis, DEFAULT_REQUEST='{"reason":"a=b, c"}').returncode == 0
    version = next(c for c in calls(fake_clis) if c["argv"][:3] == ["serverless", "function", "version"])
    assert '"DEFAULT_REQUEST={""reason"":""a=b, c""}"' in flags(version)["--environment"]


def test_triggers(deployed: dict[str, Any]) -> None:
    triggers = {
        c["argv"][3]: flags(c) for c in deployed["calls"] if c["argv"][:3] == ["serverless", "trigger", "create"]
    }
    timer = triggers["timer"]
    assert timer["--cron-expression"] == ["0 2 ? * * *"]
    assert json.loads(timer["--payload"][0]) == {"reason": "scheduled backup"}
    assert timer["--invoke-function-id"] == ["function-backup-trigger"]
    assert timer["--dlq-queue-id"] == [f"yrn:yc:ymq:ru-central1:{FOLDER}:backup-schedule-dlq"]
    queue_triggers = [
        c for c in deployed["calls"] if c["argv"][:4] == ["serverless", "trigger", "create", "message-queue"]
    ]
    targets = {flags(c)["--queue"][0].rsplit(":", 1)[1]: flags(c)["--invoke-function-id"][0] for c in queue_triggers}
    assert targets == {"backup-requests": "function-backup-trigger", "backup-followups": "function-backup-followup"}
    for call in queue_triggers:
        assert flags(call)["--queue-service-account-id"] == ["account-backup-runner"]
        assert flags(call)["--batch-size"] == ["1"]


def test_gateway_gets_the_spec_and_variables(deployed: dict[str, Any]) -> None:
    gateway = next(c for c in deployed["calls"] if c["argv"][:3] == ["serverless", "api-gateway", "create"])
    assert flags(gateway)["--spec"] == [str(GATEWAY_SPEC_PATH)]
    variables = dict(pair.split("=", 1) for pair in flags(gateway)["--variables"][0].split(","))
    assert variables == {
        "trigger_function_id": "function-backup-trigger",
        "service_account_id": "account-backup-runner",
    }


def test_second_run_reuses_resources(fake_clis: dict[str, Any]) -> None:
    assert run_deploy(fake_clis).returncode == 0
    first = len(calls(fake_clis))
    result = run_deploy(fake_clis)
    assert result.returncode == 0, result.stderr
    second = [command(c) for c in calls(fake_clis)[first:]]
    creates = [c for c in second if " create" in c]
    # only what must be new: the temporary queue-admin key, idempotent CreateQueue calls and new function versions
    assert [c for c in creates if not c.startswith(("aws sqs create-queue", "yc iam access-key create"))] == [
        "yc serverless function version create backup-trigger",
        "yc serverless function version create backup-followup",
    ]
    assert creates.count("yc iam access-key create") == 1  # no new key for the function's secret
    assert not any("add-version" in c for c in second)  # HANDOFF_SECRET is kept, not regenerated
    assert "yc serverless api-gateway update backup-runner" in second
    assert second[-1] == "yc iam access-key delete ajekey"


def test_handoff_secret_is_generated_not_taken_from_the_environment(fake_clis: dict[str, Any]) -> None:
    assert run_deploy(fake_clis, HANDOFF_SECRET="known-to-the-caller").returncode == 0
    create = next(c for c in calls(fake_clis) if c["argv"][:3] == ["lockbox", "secret", "create"])
    payload = {e["key"]: e["text_value"] for e in json.loads(create["stdin"])}
    assert payload["HANDOFF_SECRET"] != "known-to-the-caller"
    assert all("known-to-the-caller" not in (c["stdin"] or "") for c in calls(fake_clis))


def test_secret_from_an_earlier_deploy_gets_a_handoff_secret_once(fake_clis: dict[str, Any]) -> None:
    earlier = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SLACK_SIGNING_SECRET", "WEBHOOK_SECRET"]
    (fake_clis["state"] / "lockbox-secret--backup-runner-secrets").write_text(
        json.dumps({"keys": earlier, "versions": 1})
    )
    result = run_deploy(fake_clis)
    assert result.returncode == 0, result.stderr
    recorded = calls(fake_clis)
    assert not any(c["argv"][:3] == ["lockbox", "secret", "create"] for c in recorded)
    assert not any(c["argv"][:3] == ["iam", "access-key", "create"] and "Message Queue" in str(c) for c in recorded)
    added = [c for c in recorded if c["argv"][:3] == ["lockbox", "secret", "add-version"]]
    assert len(added) == 1 and flags(added[0])["--name"] == ["backup-runner-secrets"]
    entries = json.loads(added[0]["stdin"])
    assert [e["key"] for e in entries] == ["HANDOFF_SECRET"]  # the other entries come from the base version
    assert len(entries[0]["text_value"]) >= 64
    assert all(entries[0]["text_value"] not in arg for c in recorded for arg in c["argv"]), "a secret leaked"
    trigger = next(c for c in recorded if c["argv"][:3] == ["serverless", "function", "version"])
    assert all("version-id=ver-backup-runner-secrets-2" in s for s in flags(trigger)["--secret"])  # the new one
    assert any(s.startswith("environment-variable=HANDOFF_SECRET,") for s in flags(trigger)["--secret"])

    first = len(recorded)
    assert run_deploy(fake_clis).returncode == 0
    assert not any("add-version" in c["argv"] for c in calls(fake_clis)[first:])


def test_temporary_key_is_deleted_when_a_later_step_fails(fake_clis: dict[str, Any]) -> None:
    failing_aws = fake_clis["bin"] / "aws"
    failing_aws.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('AccessDenied')\n")
    result = run_deploy(fake_clis)
    assert result.returncode != 0
    assert command(calls(fake_clis)[-1]) == "yc iam access-key delete ajekey"


# ------------------------------------------------------------------------------------------- alerting
def test_alerting_console_steps_are_printed(deployed: dict[str, Any]) -> None:
    out = deployed["result"].stdout
    assert "Alerting is left to the console" in out
    for name in ("backup-requests-dlq", "backup-followups-dlq", "backup-results-dlq", "backup-schedule-dlq"):
        assert name in out
    for metric in ("backups.failed", "backups.timed_out", "sink.failures", "app=yc-backup-runner"):
        assert metric in out
    assert "backup-trigger" in out and "backup-followup" in out


def test_metrics_can_be_switched_off(fake_clis: dict[str, Any]) -> None:
    result = run_deploy(fake_clis, METRICS_ENABLED="false")
    assert result.returncode == 0, result.stderr
    recorded = calls(fake_clis)
    roles = [flags(c)["--role"][0] for c in recorded if "add-access-binding" in c["argv"]]
    assert "monitoring.editor" not in roles
    version = next(c for c in recorded if c["argv"][:3] == ["serverless", "function", "version"])
    assert "METRICS_ENABLED=false" in flags(version)["--environment"]
    assert "Alerting is left to the console" not in result.stdout


def test_a_bad_metrics_switch_changes_nothing(fake_clis: dict[str, Any]) -> None:
    result = run_deploy(fake_clis, METRICS_ENABLED="maybe")
    assert result.returncode != 0 and "METRICS_ENABLED must be true or false" in result.stderr
    assert not (fake_clis["state"] / "calls.jsonl").exists()


def test_metric_names_in_the_hint_are_the_ones_written() -> None:
    from adapters.monitoring import YANDEX_NAMES

    text = SCRIPT.read_text()
    for name in ("backups.failed", "backups.timed_out", "sink.failures"):
        assert name in text and name in YANDEX_NAMES.values()
