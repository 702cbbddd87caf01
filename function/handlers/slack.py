"""The Slack slash command: `/backup <instance> [policy] [--dry-run] [--reason "..."]`, `status`, `help`.

The request is already verified (handlers.http). The answer is an ephemeral message within Slack's 3 seconds:
the backup is resolved and started inline (a listing or two and one Execute), the operation id is named, and
the follow-up posts progress and the result to the command's response_url. Slack shows a non-200 answer as a
failed command, so errors are 200 with an explanation. Chat may back up only what the allowlist names.
"""

from __future__ import annotations

import time
from typing import Any

from backups.errors import RedeliveryRequested, StartError
from backups.models import TriggerInfo
from backups.resolve import Resolver
from backups.run import run_request
from backups.target import BackupTarget
from chatops.allowlist import Forbidden, check_chat_allowed
from chatops.commands import (
    BackupCommand,
    StatusCommand,
    parse_command,
    slack_reply_target,
    to_backup_request,
)
from chatops.form import SlashCommand, parse_slash_form
from chatops.replies import reply_dry_run, reply_error, reply_for_help, reply_started, reply_status
from handlers.deps import Deps
from observability import get_logger
from security.common import BadRequest
from triggers.http import http_reply
from triggers.model import Invocation
from ycloud.client import YandexCloud
from ycloud.errors import CloudError

# Slack wants the answer within 3 s: the cloud calls of a command get this much of it.
SLACK_BUDGET_SECONDS = 2.5


def _answer(invocation: Invocation, payload: dict[str, Any]) -> dict[str, Any]:
    return http_reply(invocation, 200, payload)


def handle_slack(invocation: Invocation, context: Any, deps: Deps) -> dict[str, Any]:
    log = get_logger()
    request = invocation.http
    assert request is not None
    try:
        slash = parse_slash_form(request.body, max_body_bytes=deps.settings.max_body_bytes)
    except BadRequest as exc:
        log.info("Slack form refused", extra={"reason": str(exc)})
        return http_reply(invocation, 400, {"error": {"code": "BAD_REQUEST", "message": str(exc)}})
    command = parse_command(slash.text)
    log.append_keys(slack_user=slash.user_id, command=command.kind)
    if isinstance(command, StatusCommand):
        return _answer(invocation, _status(command.operation_id, context, deps))
    if isinstance(command, BackupCommand):
        return _answer(invocation, _backup(command, slash, context, deps))
    return _answer(invocation, reply_for_help(command, slash))


def _bounded_cloud(context: Any, deps: Deps) -> Any:
    """The cloud client with retries cut to Slack's budget (never past the invocation's own deadline)."""
    if deps.cloud_factory.__name__ != "_cloud_from_settings":
        return deps.cloud(context)  # an injected client (tests): use as it is
    started = time.monotonic()

    def remaining() -> float:
        return SLACK_BUDGET_SECONDS - (time.monotonic() - started)

    return YandexCloud.from_settings(deps.settings, context=context, remaining_time=remaining)


def _status(operation_id: str, context: Any, deps: Deps) -> dict[str, Any]:
    cloud = _bounded_cloud(context, deps)
    try:
        operation = cloud.operations.get(operation_id)
        instance_id = operation.metadata.compute_instance_id
        if instance_id is None or not operation.is_execute:
            return reply_error("that operation is not a backup started by this command")
        instance = cloud.compute.get(instance_id)
        check_chat_allowed(
            deps.settings,
            folder_id=instance.folder_id,
            instance_id=instance.id,
            name=instance.name,
            labels=instance.labels,
        )
    except CloudError as exc:
        return reply_error(f"could not read the operation: {exc.name}: {exc.message}")
    except Forbidden as exc:
        return reply_error(str(exc))
    return reply_status(operation)


def _backup(command: BackupCommand, slash: SlashCommand, context: Any, deps: Deps) -> dict[str, Any]:
    log = get_logger()
    asked = to_backup_request(command, slash)
    trigger = TriggerInfo(
        source="slack",
        trigger_id=f"slack:{slash.trigger_id or slash.user_id}",
        requested_by=asked.requested_by,
        reason=asked.reason,
    )
    body = asked.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    cloud = _bounded_cloud(context, deps)
    resolver = Resolver(cloud, deps.settings, deps.clock)
    reply_to = slack_reply_target(slash, deps.clock.now())

    def allowed(target: BackupTarget) -> None:
        """Chat may back up only what the allowlist names: checked for every target before anything starts."""
        instance = resolver.instance(target.compute_instance_id or "")
        check_chat_allowed(
            deps.settings,
            folder_id=target.folder_id,
            instance_id=target.compute_instance_id or "",
            name=target.instance_name,
            labels=instance.labels if instance is not None else None,
        )

    try:
        # One build, one resolution. A request-level problem is the command's own answer below; only targets get
        # result events.
        report = run_request(
            body,
            trigger,
            deps.ports(context, cloud=cloud),
            reply_to=reply_to,
            resolver=resolver,
            report_request_failure=False,
            check=allowed,
        )
    except Forbidden as exc:
        log.warning("chat backup refused by the allowlist", extra={"reason": str(exc)})
        return reply_error(str(exc), instance=command.instance)
    except StartError as exc:
        started = getattr(getattr(exc, "report", None), "started", None)
        if started:  # HANDOFF_FAILED: the backups run, but nothing will report on them here
            ops = [(s.target.policy_name or s.policy_id or "?", s.operation_id) for s in started]
            note = f"{exc.message}: progress and the result will not be posted; check with /backup status"
            return reply_started(command.instance, ops, reason=command.reason, warning=note)
        return reply_error(exc.message, instance=command.instance)
    except RedeliveryRequested as exc:
        return reply_error(f"the result could not be delivered, try again: {exc}", instance=command.instance)
    if report.dry_run:
        return reply_dry_run(command.instance, [p.target.policy_name or p.policy_id or "?" for p in report.plan])
    if report.started:
        started = [(s.target.policy_name or s.policy_id or "?", s.operation_id) for s in report.started]
        return reply_started(command.instance, started, reason=command.reason)
    problems = [f.error.message for f in report.failed] + [r.message for r in report.retryable]
    problems += [f"skipped {s.target.instance_name or s.compute_instance_id}: {s.reason}" for s in report.skipped]
    return reply_error("; ".join(problems) or "nothing was started", instance=command.instance)
