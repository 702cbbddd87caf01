"""The Slack slash command: `/backup <instance> [policy] [--dry-run] [--reason "..."]`, `status`, `help`.

The request is already verified (handlers.http). The answer is an ephemeral message within Slack's 3 seconds.
A backup command is answered before any cloud call when the function can hand off (REQUEST_QUEUE_URL and
HANDOFF_SECRET set): it goes to the request queue as a signed `ChatCommand` (chatops.deferred), the answer says the
backup is starting, and the request-queue invocation (`handle_chat_command`) starts it and posts the operation id
to the command's response_url. Without the hand-off, or when the queue refuses the message, it is resolved and
started inline (a listing or two and one Execute) and the answer names the operation id. Either way the
follow-up posts progress and the result to the response_url. `status` and `help` are answered inline. Slack shows
a non-200 answer as a failed command, so errors are 200 with an explanation. Chat may back up only what the
allowlist names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from backups.errors import TRANSIENT, RedeliveryRequested, RequestInvalid, StartError
from backups.models import ReplyTarget, TriggerInfo
from backups.ports import QueueError
from backups.resolve import Resolver
from backups.results import ProgressSink
from backups.run import emit_request_failure, run_request
from backups.target import BackupTarget
from chatops.allowlist import CHAT_OFF, Forbidden, chat_allowlist_configured, check_chat_allowed
from chatops.commands import (
    BackupCommand,
    StatusCommand,
    backup_request,
    parse_command,
    slack_reply_target,
    to_backup_request,
)
from chatops.deferred import (
    ExpiredChatCommand,
    RefusedChatCommand,
    body_bytes,
    can_defer,
    chat_command_body,
    read_chat_command,
)
from chatops.form import SlashCommand, parse_slash_form
from chatops.replies import reply_dry_run, reply_error, reply_for_help, reply_queued, reply_started, reply_status
from handlers.deps import Deps
from metrics import MetricsRecorder
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
    if not chat_allowlist_configured(deps.settings):  # nothing to queue: chat may back up nothing
        return reply_error(CHAT_OFF, instance=command.instance)
    reply_to = slack_reply_target(slash, deps.clock.now())
    if can_defer(deps.settings):
        assert deps.settings.request_queue_url is not None
        body = chat_command_body(command, trigger, reply_to, deps.settings)
        if body_bytes(body) <= deps.settings.max_body_bytes:  # else the queue invocation would refuse it: inline
            try:
                deps.quick_queue.send(deps.settings.request_queue_url, body)
            except QueueError as exc:
                # Not run inline instead: the message may have been stored all the same (a timeout), and a second
                # run would answer long after Slack's 3 s. The user retries; nothing has started.
                log.warning("chat command not queued", extra={"error": str(exc)})
                return reply_error(
                    "the hand-off could not be confirmed (the queue is slow or unavailable). "
                    "If nothing follows here within a minute, try again"
                )
            log.info("chat command queued", extra={"trigger_id": trigger.trigger_id})
            return reply_queued(command.instance, dry_run=command.dry_run)
    return _run_backup(command, trigger, reply_to, _bounded_cloud(context, deps), context, deps).payload


def handle_chat_command(
    data: dict[str, Any],
    carrier: TriggerInfo,
    attempt: int,
    context: Any,
    deps: Deps,
    metrics: MetricsRecorder | None = None,
) -> bool:
    """A `ChatCommand` from the request queue (chatops.deferred): run it and post the answer to its response_url.

    Returns True when the message must come back (the queue's redelivery, with the same trigger id and so the
    same idempotency keys): a started backup whose ticket was not sent, a failed result no sink took, or nothing
    startable yet for transient reasons. `attempt` counts the earlier deliveries; at the last one
    (REDELIVERY_MAX_ATTEMPTS) the answer says what happened and the message does not come back. A refused
    message ends in one failed result: named after the queue message when it does not verify, after its own
    trigger when it verifies but has expired. `metrics`: the message's own recorder (metrics.Settled: counted
    only if it does not come back)."""
    log = get_logger()
    try:
        message = read_chat_command(data, deps.settings, deps.clock.now())
    except RefusedChatCommand as exc:
        log.error("chat command refused", extra={"error": str(exc), "trigger_id": carrier.trigger_id})
        expired = exc.message if isinstance(exc, ExpiredChatCommand) else None
        try:
            emit_request_failure(
                RequestInvalid(str(exc)),
                expired.trigger if expired else carrier,
                expired.request if expired else None,
                deps.ports(context, metrics=metrics),
                reply_to=expired.reply_to if expired else None,  # expired: SLACK_INCOMING_WEBHOOK_URL, if set
            )
        except RedeliveryRequested:
            log.error("the refusal's result was not delivered")
        return False
    log.append_keys(slack_user=message.trigger.requested_by, command="backup")
    # The started answer takes one of the response_url's messages: the follow-up gets the others.
    left = message.reply_to.messages_left - 1
    outcome = _run_backup(
        message.command,
        message.trigger,
        message.reply_to.model_copy(update={"messages_left": left}),
        deps.cloud(context),
        context,
        deps,
        metrics=metrics,
    )
    last = attempt + 1 >= deps.settings.redelivery_max_attempts
    if outcome.comes_back and not last:
        log.warning("chat command must come back", extra={"attempt": attempt, "trigger_id": carrier.trigger_id})
        return True
    if outcome.results_posted:
        log.info("chat command done: its results were posted", extra={"trigger_id": message.trigger.trigger_id})
        return False
    chat = next((s for s in deps.sinks(message.reply_to) if isinstance(s, ProgressSink)), None)
    posted = chat is not None and chat.post_progress(outcome.payload["text"])
    log.info("chat command done", extra={"trigger_id": message.trigger.trigger_id, "answer_posted": posted})
    return False


@dataclass(frozen=True)
class _Outcome:
    payload: dict[str, Any]  # the answer, as Slack JSON
    results_posted: bool = False  # the targets' failed results went to the chat already: the answer would repeat them
    comes_back: bool = False  # a redelivery (same keys) could still finish it: see handle_chat_command


def _run_backup(
    command: BackupCommand,
    trigger: TriggerInfo,
    reply_to: ReplyTarget,
    cloud: Any,
    context: Any,
    deps: Deps,
    *,
    metrics: MetricsRecorder | None = None,
) -> _Outcome:
    log = get_logger()
    asked = backup_request(command, trigger.requested_by)
    body = asked.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    resolver = Resolver(cloud, deps.settings, deps.clock)

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
            deps.ports(context, cloud=cloud, metrics=metrics),
            reply_to=reply_to,
            resolver=resolver,
            report_request_failure=False,
            check=allowed,
        )
    except Forbidden as exc:
        log.warning("chat backup refused by the allowlist", extra={"reason": str(exc)})
        return _Outcome(reply_error(str(exc), instance=command.instance))
    except StartError as exc:
        started = getattr(getattr(exc, "report", None), "started", None)
        if started:  # HANDOFF_FAILED: the backups run, but nothing will report on them here
            ops = [(s.target.policy_name or s.policy_id or "?", s.operation_id) for s in started]
            note = f"{exc.message}: progress and the result will not be posted; check with /backup status"
            payload = reply_started(command.instance, ops, reason=command.reason, warning=note)
            return _Outcome(payload, comes_back=True)
        return _Outcome(reply_error(exc.message, instance=command.instance), comes_back=isinstance(exc, TRANSIENT))
    except RedeliveryRequested as exc:
        text = f"the result could not be delivered, try again: {exc}"
        return _Outcome(reply_error(text, instance=command.instance), comes_back=True)
    if report.dry_run:
        plan = [p.target.policy_name or p.policy_id or "?" for p in report.plan]
        return _Outcome(reply_dry_run(command.instance, plan))
    if report.started:
        started = [(s.target.policy_name or s.policy_id or "?", s.operation_id) for s in report.started]
        later = f"{len(report.queued)} more will be retried (transient errors)" if report.queued else None
        return _Outcome(reply_started(command.instance, started, reason=command.reason, note=later))
    problems = [f.error.message for f in report.failed] + [r.message for r in report.retryable]
    problems += [f"skipped {s.target.instance_name or s.compute_instance_id}: {s.reason}" for s in report.skipped]
    payload = reply_error("; ".join(problems) or "nothing was started", instance=command.instance)
    results_posted = bool(report.failed) and not report.retryable and not report.skipped
    return _Outcome(payload, results_posted=results_posted, comes_back=report.needs_redelivery)
