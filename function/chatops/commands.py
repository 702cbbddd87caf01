"""The slash command's grammar: `parse_command(text)` -> BackupCommand | StatusCommand | HelpCommand, and what a
backup command becomes for the domain (`to_backup_request`, `slack_reply_target`).

Grammar (the `text` after the slash command):

    <instance name or id> [policy name or id] [--dry-run] [--reason "why"]
    status <operation id>
    help

Id or name: a token is an id only if it is exactly 20 lowercase letters and digits with at least one digit
(the shape of Yandex Cloud ids, e.g. `fhm0b28lgfp4tkoa3jl6`); anything else is a name. `id:<x>` or `name:<x>`
says which explicitly (an instance named `status` or `help`, a 20-character name with a digit).
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backups.models import ID_PATTERN, INSTANCE_NAME_PATTERN, TEXT_PATTERN, ReplyTarget
from backups.request import BackupRequest
from chatops.form import MAX_COMMAND_TEXT, SlashCommand, describe

RESPONSE_URL_TTL = timedelta(minutes=30)  # response_url works for 30 minutes ...
RESPONSE_URL_MESSAGES = 5  # ... and takes at most 5 messages

_ID20_RE = re.compile(r"[a-z0-9]{20}", re.ASCII)
_ID_RE = re.compile(ID_PATTERN.strip("^$"), re.ASCII)
_NAME_RE = re.compile(INSTANCE_NAME_PATTERN.strip("^$"), re.ASCII)
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})


# --- the command grammar ------------------------------------------------------------------------------------------


class BackupCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["backup"] = "backup"
    instance_id: str | None = Field(default=None, pattern=ID_PATTERN)
    instance_name: str | None = Field(default=None, pattern=INSTANCE_NAME_PATTERN)
    policy_id: str | None = Field(default=None, pattern=ID_PATTERN)
    policy_name: str | None = Field(default=None, min_length=1, max_length=50, pattern=TEXT_PATTERN)
    dry_run: bool = False
    reason: str | None = Field(default=None, min_length=1, max_length=500, pattern=TEXT_PATTERN)

    @model_validator(mode="after")
    def _one_each(self) -> BackupCommand:
        if (self.instance_id is None) == (self.instance_name is None):
            raise ValueError("give exactly one of instance_id and instance_name")
        if self.policy_id is not None and self.policy_name is not None:
            raise ValueError("give policy_id or policy_name, not both")
        return self

    @property
    def instance(self) -> str:
        return self.instance_id or self.instance_name or ""

    @property
    def policy(self) -> str | None:
        return self.policy_id or self.policy_name


class StatusCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["status"] = "status"
    operation_id: str = Field(pattern=ID_PATTERN)


class HelpCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["help"] = "help"
    error: str | None = Field(default=None, max_length=300)


Command = BackupCommand | StatusCommand | HelpCommand


def looks_like_id(token: str) -> bool:
    """The documented rule: 20 lowercase letters and digits with at least one digit is an id; the rest are names."""
    return bool(_ID20_RE.fullmatch(token)) and any(ch.isdigit() for ch in token)


def _shown(token: str, limit: int = 40) -> str:
    token = "".join(ch if ch.isprintable() and ch != "`" else "?" for ch in token)
    return token if len(token) <= limit else token[: limit - 1] + "…"


def _help(error: str) -> HelpCommand:
    return HelpCommand(error=error if len(error) <= 300 else error[:299] + "…")


def _normalize_text(text: str) -> str:
    # Slack escapes &, < and > in the text it sends; some clients turn quotes into typographic ones.
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.translate(_SMART_QUOTES)


def _instance_field(token: str) -> tuple[str, str] | str:
    """("instance_id" | "instance_name", value), or an error text."""
    if token.startswith("id:"):
        value = token[3:]
        return ("instance_id", value) if _ID_RE.fullmatch(value) else f"`{_shown(value)}` is not an instance id"
    if token.startswith("name:"):
        value = token[5:]
        return ("instance_name", value) if _NAME_RE.fullmatch(value) else f"`{_shown(value)}` is not an instance name"
    if looks_like_id(token):
        return ("instance_id", token)
    if _NAME_RE.fullmatch(token):
        return ("instance_name", token)
    return (
        f"`{_shown(token)}` is neither an instance name (lowercase letters, digits, - and _, starting with a letter)"
        " nor an instance id"
    )


def _policy_field(token: str) -> tuple[str, str] | str:
    if token.startswith("id:"):
        value = token[3:]
        return ("policy_id", value) if _ID_RE.fullmatch(value) else f"`{_shown(value)}` is not a policy id"
    value = token[5:] if token.startswith("name:") else token
    if not token.startswith("name:") and looks_like_id(token):
        return ("policy_id", token)
    if not value or len(value) > 50 or not value.isprintable():
        return "a policy name is 1-50 printable characters"
    return ("policy_name", value)


def parse_command(text: str | None) -> Command:
    """The command in a slash command's text. Never raises: anything unusable is HelpCommand(error=...)."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        return _help("the command text is not text")
    if len(text) > MAX_COMMAND_TEXT:
        return _help(f"the command is longer than {MAX_COMMAND_TEXT} characters")
    try:
        tokens = shlex.split(_normalize_text(text), posix=True)
    except ValueError:
        return _help("unbalanced quotes: close every \" and ' you open (or escape it with \\)")
    if not tokens:
        return HelpCommand()
    head = tokens[0].lower()
    if head in {"help", "-h", "--help", "?"}:
        return HelpCommand()
    if head == "status":
        if len(tokens) != 2 or not _ID_RE.fullmatch(tokens[1]):
            return _help("usage: status <operation id>")
        return StatusCommand(operation_id=tokens[1])
    return _parse_backup(tokens)


def _parse_backup(tokens: list[str]) -> Command:
    positionals: list[str] = []
    dry_run = False
    reason: str | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in {"--dry-run", "--dryrun", "-n"}:
            dry_run = True
        elif token == "--reason" or token.startswith("--reason="):
            if reason is not None:
                return _help("give --reason once")
            if token == "--reason":
                if i + 1 >= len(tokens):
                    return _help('--reason needs a text: --reason "why"')
                i += 1
                reason = tokens[i]
            else:
                reason = token[len("--reason=") :]
            if not reason.strip():
                return _help('--reason needs a text: --reason "why"')
            if len(reason) > 500 or not reason.isprintable():
                return _help("the reason must be at most 500 printable characters on one line")
        elif token.startswith("-") and len(token) > 1:
            return _help(f"unknown option {_shown(token)}")
        else:
            positionals.append(token)
        i += 1
    if not positionals:
        return _help("name the instance to back up")
    if len(positionals) > 2:
        return _help('too many arguments: quote a policy name with spaces ("my policy")')
    fields: dict[str, Any] = {"dry_run": dry_run, "reason": reason}
    inst = _instance_field(positionals[0])
    if isinstance(inst, str):
        return _help(inst)
    fields[inst[0]] = inst[1]
    if len(positionals) == 2:
        pol = _policy_field(positionals[1])
        if isinstance(pol, str):
            return _help(pol)
        fields[pol[0]] = pol[1]
    try:
        return BackupCommand(**fields)
    except ValidationError as exc:
        return _help(describe(exc, "invalid command"))


# --- to the domain ------------------------------------------------------------------------------------------------


def to_backup_request(cmd: BackupCommand, slash: SlashCommand) -> BackupRequest:
    """The domain request for a backup command; folder and defaults are filled later from Settings."""
    return backup_request(cmd, f"slack:{slash.user_name or slash.user_id}")


def backup_request(cmd: BackupCommand, requested_by: str | None) -> BackupRequest:
    """The domain request for a backup command asked by `requested_by` (also a queued command: chatops.deferred)."""
    return BackupRequest(
        compute_instance_id=cmd.instance_id,
        instance_name=cmd.instance_name,
        policy_id=cmd.policy_id,
        policy_name=cmd.policy_name,
        dry_run=cmd.dry_run,
        reason=cmd.reason,
        requested_by=requested_by,
    )


def slack_reply_target(slash: SlashCommand, now: datetime | None = None) -> ReplyTarget:
    """Where follow-up messages go: response_url, for 30 minutes and at most 5 messages."""
    current = now or datetime.now(UTC)
    return ReplyTarget(
        kind="slack",
        response_url=slash.response_url,
        expires_at=current + RESPONSE_URL_TTL,
        messages_left=RESPONSE_URL_MESSAGES,
        channel_id=slash.channel_id,
        user_id=slash.user_id,
    )
