"""template.yaml: offline SAM translation, cfn-lint on the translated output, and the rules linters miss.

cfn-lint 1.54+ no longer runs the SAM translator, so linting the source template alone misses most SAM mistakes:
the template is translated here with aws-sam-translator (no AWS calls) and the CloudFormation it produces is linted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.deploy import checks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return checks.load_template()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return checks.translate(template)


def mutated(template: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(template)


# ------------------------------------------------------------------------------------------- translation + lint
def test_loader_resolves_short_tags(template: dict[str, Any]) -> None:
    queue = template["Resources"]["RequestQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["RequestDeadLetterQueue", "Arn"]}
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_translates_offline_to_the_expected_resources(translated: dict[str, Any]) -> None:
    types = {name: res["Type"] for name, res in translated["Resources"].items()}
    assert types["TriggerFunction"] == "AWS::Lambda::Function"
    assert types["FollowUpFunction"] == "AWS::Lambda::Function"
    assert types["TriggerFunctionScheduled"] == "AWS::Scheduler::Schedule"
    assert types["TriggerFunctionRequests"] == "AWS::Lambda::EventSourceMapping"
    assert types["FollowUpFunctionTickets"] == "AWS::Lambda::EventSourceMapping"
    assert types["HttpApi"] == "AWS::ApiGatewayV2::Api"
    assert "Transform" not in translated


def test_translated_template_lints_clean(translated: dict[str, Any]) -> None:
    problems = [f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}" for m in checks.lint(translated)]
    assert problems == []


def test_lint_of_translated_output_catches_errors(translated: dict[str, Any]) -> None:
    """The lint step is not vacuous: a value out of range in the translated output is reported."""
    broken = mutated(translated)
    broken["Resources"]["RequestQueue"]["Properties"]["VisibilityTimeout"] = 99999
    assert any(m.rule.id.startswith("E") for m in checks.lint(broken))


def test_translates_with_existing_secret_arns(template: dict[str, Any]) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:yc-key-AbCdEf"
    params = {"YcServiceAccountKeySecretArn": arn, "WebhookSecretArn": arn, "SlackSigningSecretArn": arn}
    translated = checks.translate(template, params)
    assert checks.lint(translated) == []


def schedule_input(template: dict[str, Any], request: str) -> str:
    """The Input the Scheduler would send: the Fn::Sub with ScheduleRequest and the context attributes filled."""
    text = template["Resources"]["TriggerFunction"]["Properties"]["Events"]["Scheduled"]["Properties"]["Input"]
    text = text["Fn::Sub"].replace("${ScheduleRequest}", request)
    for name, value in {
        "schedule-arn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly",
        "scheduled-time": "2030-01-02T02:00:00Z",
        "execution-id": "c0ffee00-1111-2222-3333-444455556666",
        "attempt-number": "1",
    }.items():
        text = text.replace(f"<aws.scheduler.{name}>", value)
    return str(text)


def test_schedule_sends_the_request_in_the_scheduler_envelope(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    target = translated["Resources"]["TriggerFunctionScheduled"]["Properties"]["Target"]
    assert "${ScheduleRequest}" in target["Input"]["Fn::Sub"]
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}
    default = template["Parameters"]["ScheduleRequest"]["Default"]
    event = json.loads(schedule_input(template, default))
    assert event["request"] == json.loads(default)


def test_schedule_input_is_read_as_a_scheduler_trigger(template: dict[str, Any]) -> None:
    """The function's own parser takes the Input as "aws.scheduler", with a trigger id stable across retries."""
    from triggers.detect import parse_event

    default = template["Parameters"]["ScheduleRequest"]["Default"]
    invocation = parse_event(json.loads(schedule_input(template, default)), None)
    assert invocation.source == "aws.scheduler"
    assert invocation.messages[0].trigger_id.endswith("|2030-01-02T02:00:00Z")
    assert json.loads(invocation.messages[0].body_text) == json.loads(default)


def test_environment_names_queues_and_secret_arns(translated: dict[str, Any]) -> None:
    trigger = translated["Resources"]["TriggerFunction"]["Properties"]["Environment"]["Variables"]
    followup = translated["Resources"]["FollowUpFunction"]["Properties"]["Environment"]["Variables"]
    for name in ("FOLDER_ID", "DEFAULT_REQUEST", "REQUEST_QUEUE_URL", "FOLLOWUP_QUEUE_URL", "RESULT_QUEUE_URL"):
        assert name in trigger and name in followup
    assert trigger["FOLLOWUP_QUEUE_URL"] == {"Ref": "FollowupQueue"}
    assert set(trigger) >= checks.SECRET_ARN_VARIABLES
    assert "YC_SERVICE_ACCOUNT_KEY_SECRET_ARN" in followup
    assert "WEBHOOK_SECRET_ARN" not in followup and "SLACK_SIGNING_SECRET_ARN" not in followup
    assert trigger["HANDOFF_SECRET_ARN"] == {"Ref": "HandoffSecret"}
    assert followup["HANDOFF_SECRET_ARN"] == {"Ref": "HandoffSecret"}  # it verifies and re-signs the tickets
    # Yandex-only settings: on AWS a failing message is reported in batchItemFailures and SQS redrives it
    assert not {"REQUEST_DLQ_URL", "FOLLOWUP_DLQ_URL"} & (set(trigger) | set(followup))


# ------------------------------------------------------------------------------------------- custom rules, positive
def test_every_work_queue_has_a_dead_letter_queue(template: dict[str, Any], translated: dict[str, Any]) -> None:
    assert checks.check_redrive_policies(template) == []
    assert checks.check_redrive_policies(translated) == []


def test_every_queue_mapping_reports_batch_item_failures(template: dict[str, Any], translated: dict[str, Any]) -> None:
    assert len(checks.sqs_event_sources(template)) == 2
    assert checks.check_partial_batch_responses(template) == []
    assert checks.check_partial_batch_responses(translated) == []


def test_visibility_timeouts_cover_six_function_timeouts(template: dict[str, Any]) -> None:
    assert checks.check_visibility_timeouts(template) == []


def test_http_routes_are_exactly_the_served_ones(template: dict[str, Any]) -> None:
    assert checks.check_http_routes(template) == []
    assert sorted(checks.http_routes(template)) == sorted(checks.HTTP_ROUTES)


def test_iam_is_scoped_to_the_queues_and_secrets(translated: dict[str, Any]) -> None:
    assert checks.check_iam_scoping(translated) == []


def test_environment_variables_are_read_by_the_function(template: dict[str, Any]) -> None:
    assert checks.check_environment(template) == []


def test_secret_arn_variables_are_readable_by_the_role(template: dict[str, Any]) -> None:
    assert checks.check_secret_access(template) == []


def test_handoff_secret_is_generated_and_wired(template: dict[str, Any], translated: dict[str, Any]) -> None:
    assert checks.check_handoff_secret(template) == []
    secret = translated["Resources"]["HandoffSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert "HandoffSecret" not in template["Parameters"]  # nothing to set: the stack makes it
    readers = [
        owner
        for owner, statement in checks.iam_statements(translated)
        if "secretsmanager:GetSecretValue" in statement.get("Action", [])
        and {"Ref": "HandoffSecret"} in checks._as_list(statement.get("Resource"))
    ]
    assert sorted(readers) == ["FollowUpFunctionRole", "TriggerFunctionRole"]


def test_handlers_exist_in_app_module(template: dict[str, Any]) -> None:
    """Fails until function/app.py defines trigger_handler and followup_handler at top level (the lead's part)."""
    assert checks.check_handlers(template) == []


# ------------------------------------------------------------------------------------------- custom rules, negative
def test_mapping_without_report_batch_item_failures_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    del broken["Resources"]["FollowUpFunction"]["Properties"]["Events"]["Tickets"]["Properties"][
        "FunctionResponseTypes"
    ]
    problems = checks.check_partial_batch_responses(broken)
    assert problems and "FollowUpFunction.Tickets" in problems[0]
    # ... and in the translated output too
    assert checks.check_partial_batch_responses(checks.translate(broken))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.pop("RedrivePolicy"), "no RedrivePolicy"),
        (lambda p: p["RedrivePolicy"].pop("deadLetterTargetArn"), "deadLetterTargetArn must be"),
        (
            lambda p: p["RedrivePolicy"].update(deadLetterTargetArn={"Fn::GetAtt": ["NoSuchQueue", "Arn"]}),
            "not a queue",
        ),
        (lambda p: p["RedrivePolicy"].update(deadLetterTargetArn="arn:aws:sqs:us-east-1:1:x"), "must be !GetAtt"),
        (lambda p: p["RedrivePolicy"].update(deadLetterTargetArn={"Fn::GetAtt": ["RequestQueue", "Arn"]}), "itself"),
        (lambda p: p["RedrivePolicy"].pop("maxReceiveCount"), "maxReceiveCount"),
        (lambda p: p.update(MessageRetentionPeriod=1209600 + 1), "less than"),
    ],
)
def test_broken_redrive_policy_is_caught(template: dict[str, Any], change: Any, expected: str) -> None:
    broken = mutated(template)
    change(broken["Resources"]["RequestQueue"]["Properties"])
    problems = checks.check_redrive_policies(broken)
    assert any(expected in p and p.startswith("RequestQueue") for p in problems), problems


def test_unserved_route_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    events = broken["Resources"]["TriggerFunction"]["Properties"]["Events"]
    events["Health"] = {
        "Type": "HttpApi",
        "Properties": {"ApiId": {"Ref": "HttpApi"}, "Path": "/health", "Method": "GET"},
    }
    assert checks.check_http_routes(broken) == [
        f"route GET /health is not served by the handler (expected {sorted(checks.HTTP_ROUTES)})"
    ]


def test_missing_or_misdirected_route_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    events = broken["Resources"]["TriggerFunction"]["Properties"]["Events"]
    slack = events.pop("SlackCommand")
    assert checks.check_http_routes(broken) == ["route POST /slack is missing from the template"]
    broken["Resources"]["FollowUpFunction"]["Properties"]["Events"]["SlackCommand"] = slack
    assert checks.check_http_routes(broken) == ["route POST /slack goes to FollowUpFunction, not TriggerFunction"]


def test_short_visibility_timeout_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    broken["Resources"]["FollowupQueue"]["Properties"]["VisibilityTimeout"] = 6 * 60  # window of 5 s not covered
    assert checks.check_visibility_timeouts(broken) == [
        "FollowupQueue: VisibilityTimeout 360s < 6 x FollowUpFunction Timeout 60s + batching window 5s = 365s"
    ]


def test_wildcard_iam_resource_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    statements = broken["Resources"]["TriggerFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements[1]["Resource"] = "*"
    broken["Resources"]["FollowUpFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]["Statement"][0][
        "Resource"
    ] = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"}
    problems = checks.check_iam_scoping(checks.translate(broken))
    assert len(problems) == 2, problems


def test_sam_generated_role_with_sqs_managed_policy_is_caught(template: dict[str, Any]) -> None:
    """Dropping the explicit role lets SAM attach AWSLambdaSQSQueueExecutionRole (every queue)."""
    broken = mutated(template)
    del broken["Resources"]["FollowUpFunction"]["Properties"]["Role"]
    del broken["Resources"]["FollowUpFunctionRole"]  # SAM generates a role of that name instead
    problems = checks.check_iam_scoping(checks.translate(broken))
    assert any("AWSLambdaSQSQueueExecutionRole" in p for p in problems), problems


def test_unknown_environment_variable_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    broken["Globals"]["Function"]["Environment"]["Variables"]["FOLLOWUP_QUEUE"] = "x"
    assert len(checks.check_environment(broken)) == 2  # both functions inherit it


def test_secret_variable_without_grant_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    statements = broken["Resources"]["TriggerFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]["Statement"]
    statements[0]["Resource"] = statements[0]["Resource"][:1]
    assert checks.check_secret_access(broken) == [
        "TriggerFunction: HANDOFF_SECRET_ARN is not readable by the function's role",
        "TriggerFunction: SLACK_SIGNING_SECRET_ARN is not readable by the function's role",
        "TriggerFunction: WEBHOOK_SECRET_ARN is not readable by the function's role",
    ]


def test_handoff_secret_without_grant_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    statements = broken["Resources"]["TriggerFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]["Statement"]
    statements[0]["Resource"].remove({"Ref": "HandoffSecret"})
    assert checks.check_secret_access(broken) == [
        "TriggerFunction: HANDOFF_SECRET_ARN is not readable by the function's role"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda t: t["Resources"]["TriggerFunction"]["Properties"]["Environment"]["Variables"].pop(
                "HANDOFF_SECRET_ARN"
            ),
            "TriggerFunction: HANDOFF_SECRET_ARN is not set",
        ),
        (
            lambda t: t["Resources"]["TriggerFunction"]["Properties"]["Environment"]["Variables"].update(
                HANDOFF_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:x"
            ),
            "must be !Ref of a secret of this template",
        ),
        (
            lambda t: t["Resources"]["HandoffSecret"]["Properties"].pop("GenerateSecretString"),
            "HandoffSecret: the handoff secret must be generated",
        ),
        (
            lambda t: t["Resources"]["HandoffSecret"].update(Condition="CreateWebhookSecret"),
            "HandoffSecret: the handoff secret must always exist",
        ),
        (
            lambda t: t["Resources"]["FollowUpFunction"]["Properties"]["Environment"]["Variables"].pop(
                "HANDOFF_SECRET_ARN"
            ),
            "FollowUpFunction: HANDOFF_SECRET_ARN is not set",
        ),
    ],
)
def test_broken_handoff_secret_wiring_is_caught(template: dict[str, Any], change: Any, expected: str) -> None:
    broken = mutated(template)
    change(broken)
    problems = checks.check_handoff_secret(broken)
    assert any(p.startswith(expected) or expected in p for p in problems), problems


def test_handler_checks_parse_the_module(tmp_path: Any, template: dict[str, Any]) -> None:
    (tmp_path / "app.py").write_text(
        "from x import followup_handler\n\ndef trigger_handler(event, context):\n    return None\n"
    )
    assert checks.check_handlers(template, code_root=tmp_path) == []
    (tmp_path / "app.py").write_text("def trigger_handler(event, context):\n    def followup_handler(): ...\n")
    assert checks.check_handlers(template, code_root=tmp_path) == [
        f"FollowUpFunction: {tmp_path / 'app.py'} defines no top-level 'followup_handler'"
    ]
    broken = mutated(template)
    broken["Resources"]["TriggerFunction"]["Properties"]["Handler"] = "index.handler"
    problems = checks.check_handlers(broken, code_root=tmp_path)
    assert "TriggerFunction: Handler 'index.handler', the contract says 'app.trigger_handler'" in problems


def test_both_roles_may_batch_read_their_secrets_and_nothing_more_on_the_wildcard(template: dict[str, Any]) -> None:
    for role in ("TriggerFunctionRole", "FollowUpFunctionRole"):
        statements = [s for owner, s in checks.iam_statements(template) if owner == role]
        batch = [s for s in statements if "secretsmanager:BatchGetSecretValue" in checks._as_list(s["Action"])]
        assert len(batch) == 1 and checks._as_list(batch[0]["Action"]) == ["secretsmanager:BatchGetSecretValue"]
        assert batch[0]["Resource"] == "*"


def test_a_scoped_action_added_to_the_batch_statement_is_caught(template: dict[str, Any]) -> None:
    broken = mutated(template)
    statements = broken["Resources"]["TriggerFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]["Statement"]
    batch = next(s for s in statements if s["Action"] == "secretsmanager:BatchGetSecretValue")
    batch["Action"] = ["secretsmanager:BatchGetSecretValue", "secretsmanager:GetSecretValue"]
    problems = checks.check_iam_scoping(checks.translate(broken))
    assert len(problems) == 1 and "GetSecretValue" in problems[0], problems
