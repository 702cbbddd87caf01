"""template.yaml alerting: one alarm per dead-letter queue, alarms on the function's own metrics and errors,
all to one SNS topic (optional e-mail), and a dashboard whose body is valid JSON naming only emitted metrics."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from adapters.metrics import EMF_NAMES
from observability import SERVICE
from tests.deploy import checks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return checks.load_template()


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r["Properties"] for n, r in checks.resources(template, checks.CW_ALARM).items()}


# --- positive ----------------------------------------------------------------------------------------------
def test_every_dead_letter_queue_has_an_alarm(template: dict[str, Any]) -> None:
    assert checks.dead_letter_queues(template) == {
        "RequestDeadLetterQueue",
        "FollowupDeadLetterQueue",
        "ResultDeadLetterQueue",
        "ScheduleDeadLetterQueue",
    }
    assert checks.check_dlq_alarms(template) == []


def test_every_alarm_notifies_the_topic(template: dict[str, Any]) -> None:
    assert checks.check_alarm_actions(template) == []
    assert len(alarms(template)) == 9


def test_metric_alarms_watch_what_the_function_emits(template: dict[str, Any]) -> None:
    emitted = {name for name, _ in EMF_NAMES.values()}
    own = {n: p for n, p in alarms(template).items() if p["Namespace"] == {"Ref": "MetricsNamespace"}}
    assert {p["MetricName"] for p in own.values()} == {"BackupsFailed", "BackupsTimedOut", "SinkFailures"}
    for name, props in own.items():
        assert props["MetricName"] in emitted, name
        assert props["Dimensions"] == [{"Name": "service", "Value": SERVICE}], name  # the EMF dimension set
        assert props["Statistic"] == "Sum", name
    errors = {p["Dimensions"][0]["Value"]["Ref"] for p in alarms(template).values() if p["Namespace"] == "AWS/Lambda"}
    assert errors == {"TriggerFunction", "FollowUpFunction"}


def test_functions_get_the_metrics_settings(template: dict[str, Any]) -> None:
    from settings import Settings

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert variables["METRICS_BACKEND"] == "emf"
    default = template["Parameters"]["MetricsNamespace"]["Default"]
    assert Settings.from_env({"METRICS_NAMESPACE": default}).metrics_namespace == default
    assert re.fullmatch(template["Parameters"]["MetricsNamespace"]["AllowedPattern"], default)


@pytest.mark.parametrize(("value", "ok"), [("", True), ("ops@example.com", True), ("nope", False), ("a b@c.d", False)])
def test_alarm_email_parameter_is_optional(template: dict[str, Any], value: str, ok: bool) -> None:
    pattern = template["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is ok
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The DashboardBody with its ${...} filled in, parsed as CloudWatch would."""
    text = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = re.findall(r"\$\{([A-Za-z0-9:.]+)\}", text)
    resources = set(template["Resources"]) | set(template["Parameters"]) | {"AWS::Region"}
    assert {n.split(".")[0] for n in names} <= resources, names
    filled = re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda m: m.group(1).replace(".", "-").replace(":", "-"), text)
    body: dict[str, Any] = json.loads(filled)
    return body


def test_dashboard_body_is_json_and_names_emitted_metrics(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    emitted = {name for name, _ in EMF_NAMES.values()}
    shown = set()
    for widget in body["widgets"]:
        namespace = None
        for row in widget["properties"]["metrics"]:
            if not isinstance(row[0], str) or row[0] == "...":
                continue  # an expression, or "the row above with another dimension value / stat"
            namespace = namespace if row[0] == "." else row[0]
            if namespace == "MetricsNamespace":
                shown.add(row[1])
    assert shown and shown <= emitted
    assert "BackupsFailed" in shown and "BackupDuration" in shown
    search = json.dumps(body)
    assert "SEARCH(" in search and "ErrorCode" in search


def test_alerting_translates_and_lints_with_an_email(template: dict[str, Any]) -> None:
    translated = checks.translate(template, {"AlarmEmail": "ops@example.com", "FolderId": "b1gfolder"})
    assert checks.lint(translated) == []
    assert translated["Resources"]["Dashboard"]["Type"] == "AWS::CloudWatch::Dashboard"
    assert checks.check_dlq_alarms(translated) == []


# --- negative ----------------------------------------------------------------------------------------------
def test_a_dead_letter_queue_without_alarm_is_caught(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    del broken["Resources"]["ResultDeadLetterQueueAlarm"]
    assert checks.check_dlq_alarms(broken) == [
        "ResultDeadLetterQueue: dead-letter queue without an alarm on ApproximateNumberOfMessagesVisible"
    ]


def test_a_new_dead_letter_queue_needs_its_own_alarm(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    broken["Resources"]["ExtraDeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    broken["Resources"]["ExtraQueue"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["ExtraDeadLetterQueue", "Arn"]},
                "maxReceiveCount": 5,
            }
        },
    }
    assert checks.check_dlq_alarms(broken) == [
        "ExtraDeadLetterQueue: dead-letter queue without an alarm on ApproximateNumberOfMessagesVisible"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.update(Threshold=5), "one visible message"),
        (lambda p: p.update(ComparisonOperator="LessThanThreshold"), "one visible message"),
        (lambda p: p.update(Statistic="Sum"), "Maximum"),
        (lambda p: p.pop("AlarmActions"), "no AlarmActions"),
        (lambda p: p.update(Dimensions=[{"Name": "QueueName", "Value": "hard-coded"}]), "without an alarm"),
    ],
)
def test_a_weak_dlq_alarm_is_caught(template: dict[str, Any], change: Any, expected: str) -> None:
    broken = copy.deepcopy(template)
    change(broken["Resources"]["FollowupDeadLetterQueueAlarm"]["Properties"])
    problems = checks.check_dlq_alarms(broken)
    assert any(expected in p for p in problems), problems


def test_an_alarm_that_notifies_nobody_is_caught(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    props = broken["Resources"]["BackupsFailedAlarm"]["Properties"]
    props["OKActions"] = ["arn:aws:sns:us-east-1:123456789012:elsewhere"]
    props["TreatMissingData"] = "breaching"
    assert checks.check_alarm_actions(broken) == [
        "BackupsFailedAlarm: OKActions must be !Ref of an SNS topic of this template",
        "BackupsFailedAlarm: TreatMissingData must be notBreaching",
    ]
