"""Deployment contracts and the template rules linters miss.

Each `check_*` function takes a template as a plain dict and returns a list of problems (empty = fine), so a test
can run it on the real template and on a deliberately broken copy. The constants below are the public contract
shared with function/app.py: keep them in sync with the handlers.
"""

from __future__ import annotations

import ast
import copy
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
APP_PATH = ROOT / "function" / "app.py"
GATEWAY_SPEC_PATH = ROOT / "deploy" / "yandex" / "api-gateway.yaml"

# The HTTP routes the trigger handler serves: (method, path). Keep in sync with function/app.py and the routers.
HTTP_ROUTES: list[tuple[str, str]] = [("POST", "/backup"), ("GET", "/backup/{operationId}"), ("POST", "/slack")]
# The handler of each function, as "<module>.<callable>" (the module is a file at the zip root).
HANDLERS: dict[str, str] = {
    "TriggerFunction": "app.trigger_handler",
    "FollowUpFunction": "app.followup_handler",
}
# The function that serves HTTP routes.
HTTP_FUNCTION = "TriggerFunction"

# Environment variables the AWS template sets that are not (yet) Settings fields: the secret ARNs the function
# resolves with powertools' parameters utility, and powertools' own configuration.
SECRET_ARN_VARIABLES = frozenset(
    {"YC_SERVICE_ACCOUNT_KEY_SECRET_ARN", "WEBHOOK_SECRET_ARN", "SLACK_SIGNING_SECRET_ARN", "HANDOFF_SECRET_ARN"}
)
PLATFORM_VARIABLES = frozenset({"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"})

SQS_QUEUE = "AWS::SQS::Queue"
SAM_FUNCTION = "AWS::Serverless::Function"
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_RETENTION = 345600
DEFAULT_LAMBDA_TIMEOUT = 3
# Managed policies that grant SQS or Secrets Manager actions on every resource ("*").
BROAD_MANAGED_POLICIES = (
    "AWSLambdaSQSQueueExecutionRole",
    "AmazonSQSFullAccess",
    "AmazonSQSReadOnlyAccess",
    "SecretsManagerReadWrite",
)
SCOPED_SERVICES = ("sqs:", "secretsmanager:")
# Actions without resource-level permissions: IAM only accepts "*" for them. BatchGetSecretValue returns nothing
# by itself: each secret in the batch still needs GetSecretValue on that secret (AWS Secrets Manager's docs).
UNSCOPABLE_ACTIONS = frozenset({"secretsmanager:BatchGetSecretValue"})


# ----------------------------------------------------------------------------------------------- loading
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain dicts; CloudFormation short tags (!Ref, !GetAtt, !Sub, !If) become their long forms."""
    from cfnlint.decode import cfn_yaml

    decoded = cfn_yaml.load(str(path))
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


class _OfflineManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which would call IAM: resolves names to AWS ARNs."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: dict[str, Any], parameter_values: dict[str, Any] | None = None) -> dict[str, Any]:
    """SAM -> CloudFormation, offline. Local CodeUris become s3:// placeholders (what `sam package` would do)."""
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    fragment = copy.deepcopy(template)
    function_globals = fragment.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = "s3://placeholder-bucket/function.zip"
    for resource in fragment.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") == SAM_FUNCTION and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://placeholder-bucket/function.zip"
    translated: dict[str, Any] = transform(fragment, parameter_values or {}, _OfflineManagedPolicyLoader())
    return translated


def lint(template: dict[str, Any], region: str = "us-east-1") -> list[Any]:
    """cfn-lint matches (errors and warnings; informational ones dropped) for a CloudFormation template."""
    from cfnlint.api import lint as cfn_lint

    matches = cfn_lint(json.dumps(template), regions=[region])
    return [m for m in matches if not m.rule.id.startswith("I")]


# ----------------------------------------------------------------------------------------------- helpers
def resources(template: dict[str, Any], type_: str | None = None) -> dict[str, dict[str, Any]]:
    found = template.get("Resources", {})
    return {name: res for name, res in found.items() if type_ is None or res.get("Type") == type_}


def _getatt_target(value: Any) -> tuple[str, str] | None:
    """("Queue", "Arn") for {"Fn::GetAtt": ["Queue", "Arn"]} or {"Fn::GetAtt": "Queue.Arn"}."""
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        if isinstance(target, str) and "." in target:
            name, attr = target.split(".", 1)
            return name, attr
        if isinstance(target, list) and len(target) == 2 and all(isinstance(t, str) for t in target):
            return target[0], target[1]
    return None


def _redrive(props: dict[str, Any]) -> dict[str, Any] | None:
    policy = props.get("RedrivePolicy")
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return {"_invalid": policy}
    return policy if isinstance(policy, dict) else None


def _function_property(template: dict[str, Any], function: dict[str, Any], name: str, default: Any = None) -> Any:
    props = function.get("Properties", {})
    if name in props:
        return props[name]
    return template.get("Globals", {}).get("Function", {}).get(name, default)


def sqs_event_sources(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(function, event name, event properties) of every SQS event of a SAM function, plus every translated
    AWS::Lambda::EventSourceMapping that reads a queue of the template."""
    queues = resources(template, SQS_QUEUE)
    found: list[tuple[str, str, dict[str, Any]]] = []
    for fname, function in resources(template, SAM_FUNCTION).items():
        for ename, event in (function.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") == "SQS":
                found.append((fname, ename, event.get("Properties", {})))
    for mname, mapping in resources(template, "AWS::Lambda::EventSourceMapping").items():
        props = mapping.get("Properties", {})
        target = _getatt_target(props.get("EventSourceArn"))
        if target and target[0] in queues:
            fref = props.get("FunctionName")
            fname = fref.get("Ref", mname) if isinstance(fref, dict) else str(fref)
            found.append((fname, mname, {"Queue": props.get("EventSourceArn"), **props}))
    return found


def dead_letter_queues(template: dict[str, Any]) -> set[str]:
    """Queues used as a dead-letter target: by a RedrivePolicy, or by an event's / function's DeadLetterConfig."""
    dlqs: set[str] = set()
    for res in resources(template, SQS_QUEUE).values():
        policy = _redrive(res.get("Properties", {})) or {}
        target = _getatt_target(policy.get("deadLetterTargetArn"))
        if target:
            dlqs.add(target[0])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("DeadLetterConfig", "DeadLetterQueue") and isinstance(value, dict):
                    for field in ("Arn", "TargetArn"):
                        target = _getatt_target(value.get(field))
                        if target:
                            dlqs.add(target[0])
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(template.get("Resources", {}))
    return dlqs


# ----------------------------------------------------------------------------------------------- checks
def check_redrive_policies(template: dict[str, Any]) -> list[str]:
    """Every work queue has a RedrivePolicy naming a dead-letter queue of this template (GetAtt <Queue>.Arn),
    a sane maxReceiveCount, and a DLQ that keeps messages at least as long as the source queue."""
    problems: list[str] = []
    queues = resources(template, SQS_QUEUE)
    dlqs = dead_letter_queues(template)
    for name, res in sorted(queues.items()):
        props = res.get("Properties", {})
        policy = _redrive(props)
        if policy is None:
            if name not in dlqs:
                problems.append(f"{name}: no RedrivePolicy (every work queue needs a dead-letter queue)")
            continue
        target = _getatt_target(policy.get("deadLetterTargetArn"))
        if target is None:
            problems.append(f"{name}: RedrivePolicy.deadLetterTargetArn must be !GetAtt <DeadLetterQueue>.Arn")
        elif target[1] != "Arn" or target[0] not in queues:
            problems.append(f"{name}: RedrivePolicy targets {target[0]}.{target[1]}, not a queue of this template")
        elif target[0] == name:
            problems.append(f"{name}: RedrivePolicy targets the queue itself")
        else:
            dlq_props = queues[target[0]].get("Properties", {})
            if _redrive(dlq_props) is not None:
                problems.append(f"{name}: dead-letter queue {target[0]} has a RedrivePolicy of its own")
            source_retention = props.get("MessageRetentionPeriod", DEFAULT_RETENTION)
            dlq_retention = dlq_props.get("MessageRetentionPeriod", DEFAULT_RETENTION)
            if (
                isinstance(source_retention, int)
                and isinstance(dlq_retention, int)
                and dlq_retention < source_retention
            ):
                problems.append(
                    f"{name}: dead-letter queue {target[0]} keeps messages {dlq_retention}s, less than the "
                    f"source queue's {source_retention}s (the original enqueue time is kept)"
                )
        count = policy.get("maxReceiveCount")
        if not isinstance(count, int) or not 1 <= count <= 1000:
            problems.append(f"{name}: RedrivePolicy.maxReceiveCount must be an integer 1-1000, got {count!r}")
    return problems


def check_partial_batch_responses(template: dict[str, Any]) -> list[str]:
    """Every SQS event source reports item failures: a failing message must not redeliver the whole batch."""
    problems = []
    for fname, ename, props in sqs_event_sources(template):
        if "ReportBatchItemFailures" not in (props.get("FunctionResponseTypes") or []):
            problems.append(
                f"{fname}.{ename}: SQS event source without FunctionResponseTypes [ReportBatchItemFailures]"
            )
    return problems


def check_visibility_timeouts(template: dict[str, Any], factor: int = 6) -> list[str]:
    """A queue a function reads has VisibilityTimeout >= factor x the function's Timeout + the batching window
    (AWS's guidance; less means messages reappear while a slow invocation still works on them)."""
    problems = []
    queues = resources(template, SQS_QUEUE)
    functions = resources(template, SAM_FUNCTION)
    for fname, ename, props in sqs_event_sources(template):
        target = _getatt_target(props.get("Queue"))
        if target is None or target[0] not in queues:
            problems.append(f"{fname}.{ename}: the queue must be !GetAtt <Queue>.Arn of this template")
            continue
        if fname not in functions:
            continue  # a translated mapping: the SAM function it came from is checked in the source template
        timeout = _function_property(template, functions[fname], "Timeout", DEFAULT_LAMBDA_TIMEOUT)
        window = props.get("MaximumBatchingWindowInSeconds", 0)
        visibility = queues[target[0]].get("Properties", {}).get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)
        if not all(isinstance(v, int) for v in (timeout, window, visibility)):
            problems.append(f"{fname}.{ename}: Timeout/VisibilityTimeout must be literal integers to be checked")
            continue
        needed = factor * timeout + window
        if visibility < needed:
            problems.append(
                f"{target[0]}: VisibilityTimeout {visibility}s < {factor} x {fname} Timeout {timeout}s"
                f" + batching window {window}s = {needed}s"
            )
    return problems


def http_routes(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> function, for every HttpApi / Api event of a SAM function."""
    routes: dict[tuple[str, str], str] = {}
    for fname, function in resources(template, SAM_FUNCTION).items():
        for event in (function.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") in ("HttpApi", "Api"):
                props = event.get("Properties", {})
                routes[(str(props.get("Method", "ANY")).upper(), str(props.get("Path", "$default")))] = fname
    return routes


def check_http_routes(
    template: dict[str, Any], expected: Iterable[tuple[str, str]] = HTTP_ROUTES, function: str = HTTP_FUNCTION
) -> list[str]:
    """The HTTP routes are exactly the ones the handler serves, each on the function that serves them."""
    problems = []
    routes = http_routes(template)
    wanted = set(expected)
    for route in sorted(set(routes) - wanted):
        problems.append(f"route {route[0]} {route[1]} is not served by the handler (expected {sorted(wanted)})")
    for route in sorted(wanted - set(routes)):
        problems.append(f"route {route[0]} {route[1]} is missing from the template")
    for route, fname in sorted(routes.items()):
        if route in wanted and fname != function:
            problems.append(f"route {route[0]} {route[1]} goes to {fname}, not {function}")
    return problems


def module_attributes(path: Path) -> set[str]:
    """Names a module defines at top level: functions, assignments and imports (parsed, never imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def check_handlers(
    template: dict[str, Any], code_root: Path = ROOT / "function", expected: dict[str, str] | None = None
) -> list[str]:
    """Each function's Handler is the contract's, and names a callable defined at the top of <CodeUri>/<module>.py."""
    expected = HANDLERS if expected is None else expected
    problems = []
    functions = resources(template, SAM_FUNCTION)
    for fname in sorted(set(expected) - set(functions)):
        problems.append(f"{fname}: missing from the template")
    for fname, function in sorted(functions.items()):
        handler = _function_property(template, function, "Handler")
        if fname in expected and handler != expected[fname]:
            problems.append(f"{fname}: Handler {handler!r}, the contract says {expected[fname]!r}")
        if not isinstance(handler, str) or handler.count(".") != 1:
            problems.append(f"{fname}: Handler {handler!r} is not <module>.<function>")
            continue
        module, attribute = handler.split(".")
        source = code_root / f"{module}.py"
        if not source.is_file():
            problems.append(f"{fname}: {_display(source)} does not exist (Handler {handler})")
        elif attribute not in module_attributes(source):
            problems.append(f"{fname}: {_display(source)} defines no top-level {attribute!r}")
    return problems


def _display(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(resource: Any) -> bool:
    """A resource that matches every queue or secret: "*" or an ARN whose name part is a wildcard."""
    if isinstance(resource, str):
        return resource == "*" or resource.endswith(":*") or resource.endswith(":secret:*")
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        text = sub[0] if isinstance(sub, list) else sub
        return isinstance(text, str) and (text == "*" or text.endswith(":*"))
    if isinstance(resource, dict) and "Fn::If" in resource:
        branches = resource["Fn::If"]
        return any(_wildcard(branch) for branch in branches[1:]) if isinstance(branches, list) else False
    return False


def iam_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(owner, statement) of every inline IAM policy statement in roles and policies."""
    found = []
    for name, res in resources(template).items():
        props = res.get("Properties", {})
        documents = []
        if res.get("Type") == "AWS::IAM::Role":
            documents = [p.get("PolicyDocument", {}) for p in props.get("Policies", []) or []]
        elif res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props.get("PolicyDocument", {})]
        for document in documents:
            for statement in _as_list(document.get("Statement", [])):
                if isinstance(statement, dict):
                    found.append((name, statement))
    return found


def check_iam_scoping(template: dict[str, Any]) -> list[str]:
    """No Allow statement grants sqs:* / secretsmanager:* actions on "*"; no broad managed policy for either.
    Run it on the translated template: it then covers the roles SAM generates too."""
    problems = []
    for owner, statement in iam_statements(template):
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
        scoped = [a for a in actions if a == "*" or a.lower().startswith(SCOPED_SERVICES)]
        if not scoped or set(scoped) <= UNSCOPABLE_ACTIONS:
            continue
        if any(a == "*" or a.endswith(":*") for a in scoped):
            problems.append(f"{owner}: statement grants every action of a service: {scoped}")
        for resource in _as_list(statement.get("Resource", [])):
            if _wildcard(resource):
                problems.append(f"{owner}: {scoped} on resource {resource!r}; name the queues/secrets instead")
    for name, res in resources(template, "AWS::IAM::Role").items():
        for arn in res.get("Properties", {}).get("ManagedPolicyArns", []) or []:
            text = json.dumps(arn)
            for broad in BROAD_MANAGED_POLICIES:
                if broad in text:
                    problems.append(f"{name}: managed policy {broad} allows every queue/secret ('*')")
    return problems


def environment_variables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """function -> its effective environment (Globals merged with the function's own)."""
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    out = {}
    for fname, function in resources(template, SAM_FUNCTION).items():
        own = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
        out[fname] = {**shared, **own}
    return out


def settings_aliases() -> set[str]:
    """Every environment variable function/settings.py reads (its Field aliases)."""
    from settings import Settings

    return {field.alias for field in Settings.model_fields.values() if field.alias}


def check_environment(template: dict[str, Any], known: set[str] | None = None) -> list[str]:
    """Every variable the template sets is read by the function (a Settings alias, a secret ARN variable or
    powertools' own), so a typo cannot silently leave a setting at its default."""
    known = settings_aliases() if known is None else known
    allowed = known | SECRET_ARN_VARIABLES | PLATFORM_VARIABLES
    problems = []
    for fname, variables in sorted(environment_variables(template).items()):
        for variable in sorted(set(variables) - allowed):
            problems.append(f"{fname}: environment variable {variable} is not read by the function")
    return problems


def check_secret_access(template: dict[str, Any]) -> list[str]:
    """Each *_SECRET_ARN variable of a function is readable by that function's role (GetSecretValue on the same
    value), so the runtime lookup does not fail with AccessDenied."""
    problems = []
    roles = resources(template, "AWS::IAM::Role")
    for fname, variables in sorted(environment_variables(template).items()):
        function = resources(template, SAM_FUNCTION)[fname]
        role_ref = _getatt_target(function.get("Properties", {}).get("Role"))
        granted: list[Any] = []
        if role_ref and role_ref[0] in roles:
            for owner, statement in iam_statements(template):
                actions = _as_list(statement.get("Action", []))
                if owner == role_ref[0] and "secretsmanager:GetSecretValue" in actions:
                    granted.extend(_as_list(statement.get("Resource", [])))
        for variable, value in sorted(variables.items()):
            if variable.endswith("_SECRET_ARN") and value not in granted:
                problems.append(f"{fname}: {variable} is not readable by the function's role")
    return problems


# The functions that write (and read back) signed messages of their own: fan-out messages, follow-up tickets,
# request redeliveries.
HANDOFF_FUNCTIONS = frozenset({"TriggerFunction", "FollowUpFunction"})


def check_handoff_secret(template: dict[str, Any]) -> list[str]:
    """HANDOFF_SECRET_ARN reaches the functions that sign their own messages, names a secret this stack generates
    (nobody has to set it, nobody else knows it), and no other function gets it. Readability is check_secret_access.
    Without it the function silently never fans out and Yandex batches fall back to whole-batch redelivery."""
    problems = []
    secrets = resources(template, "AWS::SecretsManager::Secret")
    for fname, variables in sorted(environment_variables(template).items()):
        value = variables.get("HANDOFF_SECRET_ARN")
        if fname not in HANDOFF_FUNCTIONS:
            if value is not None:
                problems.append(f"{fname}: HANDOFF_SECRET_ARN is only for {sorted(HANDOFF_FUNCTIONS)}")
            continue
        target = _ref_target(value)
        if value is None:
            problems.append(f"{fname}: HANDOFF_SECRET_ARN is not set (no fan-out, tickets unsigned)")
        elif target not in secrets:
            problems.append(f"{fname}: HANDOFF_SECRET_ARN must be !Ref of a secret of this template")
        else:
            secret = secrets[target]
            if "GenerateSecretString" not in secret.get("Properties", {}):
                problems.append(f"{target}: the handoff secret must be generated (GenerateSecretString)")
            if "Condition" in secret:
                problems.append(f"{target}: the handoff secret must always exist (no Condition)")
    return problems


# ----------------------------------------------------------------------------------------------- alerting
CW_ALARM = "AWS::CloudWatch::Alarm"
SNS_TOPIC = "AWS::SNS::Topic"
DLQ_METRIC = ("AWS/SQS", "ApproximateNumberOfMessagesVisible")


def _ref_target(value: Any) -> str | None:
    return value["Ref"] if isinstance(value, dict) and set(value) == {"Ref"} and isinstance(value["Ref"], str) else None


def _fires_on_any_message(props: dict[str, Any]) -> bool:
    """Threshold 0 with GreaterThanThreshold, or 1 with GreaterThanOrEqualToThreshold: one message is enough."""
    threshold, operator = props.get("Threshold"), props.get("ComparisonOperator")
    return (threshold == 0 and operator == "GreaterThanThreshold") or (
        threshold == 1 and operator == "GreaterThanOrEqualToThreshold"
    )


def check_dlq_alarms(template: dict[str, Any]) -> list[str]:
    """Every dead-letter queue has an alarm on ApproximateNumberOfMessagesVisible of that queue (by
    !GetAtt <Queue>.QueueName) that fires on a single visible message, on the Maximum, and notifies someone."""
    problems = []
    alarms = resources(template, CW_ALARM)
    for dlq in sorted(dead_letter_queues(template)):
        watching = [
            (name, res.get("Properties", {}))
            for name, res in alarms.items()
            if (res.get("Properties", {}).get("Namespace"), res.get("Properties", {}).get("MetricName")) == DLQ_METRIC
            and any(
                d.get("Name") == "QueueName" and _getatt_target(d.get("Value")) == (dlq, "QueueName")
                for d in res.get("Properties", {}).get("Dimensions", []) or []
            )
        ]
        if not watching:
            problems.append(f"{dlq}: dead-letter queue without an alarm on {DLQ_METRIC[1]}")
            continue
        for name, props in watching:
            if not _fires_on_any_message(props):
                problems.append(f"{name}: must fire on one visible message (Threshold 0, GreaterThanThreshold)")
            if props.get("Statistic") != "Maximum":
                problems.append(f"{name}: Statistic must be Maximum (a queue depth, not a sum of samples)")
            if not props.get("AlarmActions"):
                problems.append(f"{name}: no AlarmActions (nobody would hear of it)")
    return problems


def check_alarm_actions(template: dict[str, Any]) -> list[str]:
    """Every alarm notifies an SNS topic of this template, on ALARM and on OK, and treats missing data as fine
    (a metric that is only written when something happens is missing most of the time)."""
    problems = []
    topics = set(resources(template, SNS_TOPIC))
    for name, res in sorted(resources(template, CW_ALARM).items()):
        props = res.get("Properties", {})
        for key in ("AlarmActions", "OKActions"):
            targets = [_ref_target(a) for a in _as_list(props.get(key) or [])]
            if not targets or not all(t in topics for t in targets):
                problems.append(f"{name}: {key} must be !Ref of an SNS topic of this template")
        if props.get("TreatMissingData") != "notBreaching":
            problems.append(f"{name}: TreatMissingData must be notBreaching")
    return problems


ALL_SOURCE_CHECKS = (
    check_redrive_policies,
    check_partial_batch_responses,
    check_visibility_timeouts,
    check_http_routes,
    check_handlers,
    check_environment,
    check_secret_access,
    check_handoff_secret,
    check_dlq_alarms,
    check_alarm_actions,
)
