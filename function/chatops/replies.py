"""Replies to a slash command: Slack JSON (`response_type: ephemeral`), every piece of user text escaped for
mrkdwn so it cannot form a mention, a `<!channel>` or a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatops.commands import HelpCommand
from chatops.form import SlashCommand
from ycloud.models import Operation

MAX_REPLY_TEXT = 3000


def escape_mrkdwn(text: Any) -> str:
    """Slack's three control characters escaped, so user text cannot form links, mentions or <!channel>."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: Any) -> str:
    return "`" + escape_mrkdwn(text).replace("`", "'") + "`"


def _reply(text: str) -> dict[str, Any]:
    if len(text) > MAX_REPLY_TEXT:
        text = text[: MAX_REPLY_TEXT - 1] + "…"
    return {"response_type": "ephemeral", "text": text}


def help_text(command: str = "/backup") -> str:
    """The usage text, escaped for mrkdwn (its `<instance>` placeholders would otherwise read as Slack links)."""
    c = command
    return escape_mrkdwn(
        "\n".join(
            [
                "*Back up a VM with Yandex Cloud Backup*",
                f'`{c} <instance> [policy] [--dry-run] [--reason "why"]` - start a backup now',
                "  <instance>: an instance name or id; [policy]: a policy name or id (default: the instance's policy).",
                "  A 20-character token of lowercase letters and digits with a digit is an id; "
                "write `name:<x>` or `id:<x>` to say which.",
                f"`{c} status <operation id>` - how a started backup is going",
                f"`{c} help` - this text",
            ]
        )
    )


def reply_help(error: str | None = None, command: str = "/backup") -> dict[str, Any]:
    text = help_text(command)
    if error:
        text = f":warning: {escape_mrkdwn(error)}\n\n{text}"
    return _reply(text)


def reply_started(
    instance: str, operations: Sequence[tuple[str, str]], *, reason: str | None = None, warning: str | None = None
) -> dict[str, Any]:
    """`operations`: (policy name or id, operation id) for each backup started on `instance`; `warning`: why the
    result will not be posted (it replaces the promise to post it)."""
    if not operations:
        return reply_error(f"no backup was started for {instance}")
    lines = [f":white_check_mark: Backup of {_code(instance)} started:"]
    lines += [f"• policy {_code(policy)}: operation {_code(op)}" for policy, op in operations[:20]]
    if len(operations) > 20:
        lines.append(f"… and {len(operations) - 20} more")
    if reason:
        lines.append(f"Reason: {escape_mrkdwn(reason)}")
    lines.append(f":warning: {escape_mrkdwn(warning)}" if warning else "I will post here when it finishes.")
    return _reply("\n".join(lines))


def reply_queued(instance: str, *, dry_run: bool = False) -> dict[str, Any]:
    """The answer to a backup command handed to the request queue (chatops.deferred): what comes next, and where."""
    if dry_run:
        return _reply(f":mag: Checking what a backup of {_code(instance)} would do. The plan follows here.")
    return _reply(
        f":hourglass_flowing_sand: Starting a backup of {_code(instance)}. "
        "The operation id follows here, then progress and the result."
    )


def reply_dry_run(instance: str, policies: Sequence[str], *, note: str | None = None) -> dict[str, Any]:
    """The plan of a --dry-run: which policies would be executed on `instance`; nothing was started."""
    if policies:
        shown = ", ".join(_code(p) for p in policies[:20]) + (" …" if len(policies) > 20 else "")
        text = f":mag: Dry run: would back up {_code(instance)} with policy {shown}. Nothing was started."
    else:
        text = f":mag: Dry run: {_code(instance)} has no policy to execute. Nothing was started."
    if note:
        text += f"\n{escape_mrkdwn(note)}"
    return _reply(text)


def reply_error(message: str, *, instance: str | None = None) -> dict[str, Any]:
    target = f" for {_code(instance)}" if instance else ""
    return _reply(f":x: Could not back up{target}: {escape_mrkdwn(message)}")


def reply_status(operation: Operation) -> dict[str, Any]:
    """A line about an operation (ycloud.models.Operation): running with its progress, succeeded, or failed."""
    meta = operation.metadata
    about = ""
    if meta.compute_instance_id:
        about += f" (instance {_code(meta.compute_instance_id)}"
        about += f", policy {_code(meta.policy_id)})" if meta.policy_id else ")"
    head = f"Operation {_code(operation.id)}{about}"
    if not operation.done:
        percent = meta.progress_percentage
        progress = f", {percent:.0f}% done" if percent is not None else ""
        return _reply(f":hourglass_flowing_sand: {head}: running{progress}.")
    error = operation.error
    if error is not None and error.code:
        return _reply(f":x: {head}: failed: {escape_mrkdwn(error.message or 'no message')}")
    return _reply(f":white_check_mark: {head}: succeeded.")


def reply_for_help(cmd: HelpCommand, slash: SlashCommand | None = None) -> dict[str, Any]:
    return reply_help(cmd.error, slash.command if slash else "/backup")
