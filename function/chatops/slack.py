"""The Slack slash command: verify the request, parse the form and the command, build replies, post them.

Order on the HTTP path: `verify_slack` (v0 signature, 5-minute window) BEFORE anything reads the body; then
`parse_slash_form` -> `SlashCommand`; `parse_command(slash.text)` -> BackupCommand | StatusCommand | HelpCommand;
`to_backup_request` for the domain; replies are Slack JSON (`response_type: ephemeral`), every piece of user text
escaped for mrkdwn; later messages go to `response_url` through `post_to_slack`, which only talks to
hooks.slack.com over https.

Command grammar (the `text` after the slash command):

    <instance name or id> [policy name or id] [--dry-run] [--reason "why"]
    status <operation id>
    help

Id or name: a token is an id only if it is exactly 20 lowercase letters and digits with at least one digit
(the shape of Yandex Cloud ids, e.g. `fhm0b28lgfp4tkoa3jl6`); anything else is a name. `id:<x>` or `name:<x>`
says which explicitly (an instance named `status` or `help`, a 20-character name with a digit).

slack_sdk and requests are imported inside the functions that need them (cold start).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backups.models import ID_PATTERN, INSTANCE_NAME_PATTERN, TEXT_PATTERN, ReplyTarget
from backups.request import BackupRequest
from chatops.signing import (
    DEFAULT_MAX_BODY_BYTES,
    BadRequest,
    Now,
    ReplayCache,
    Unauthorized,
    as_bytes,
    check_body_size,
    check_timestamp,
    normalize_headers,
    now_seconds,
    request_fingerprint,
)

if TYPE_CHECKING:
    from ycloud.models import Operation

SLACK_HOSTS: tuple[str, ...] = ("hooks.slack.com",)
SLACK_TOLERANCE_SECONDS = 300  # Slack's own rule: refuse a timestamp more than 5 minutes away from now
RESPONSE_URL_TTL = timedelta(minutes=30)  # response_url works for 30 minutes ...
RESPONSE_URL_MESSAGES = 5  # ... and takes at most 5 messages
MAX_FORM_FIELDS = 64
MAX_COMMAND_TEXT = 2000
MAX_URL_LENGTH = 2048
MAX_REPLY_TEXT = 3000
MAX_POST_BYTES = 40_000
POST_TIMEOUT = (3.05, 5.0)  # connect, read (seconds)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_SLACK_SIG_RE = re.compile(r"v0=[0-9a-fA-F]{64}", re.ASCII)
_ID20_RE = re.compile(r"[a-z0-9]{20}", re.ASCII)
_ID_RE = re.compile(ID_PATTERN.strip("^$"), re.ASCII)
_NAME_RE = re.compile(INSTANCE_NAME_PATTERN.strip("^$"), re.ASCII)
_SLACK_ERROR_RE = re.compile(r"[a-z_]{1,64}", re.ASCII)
_SLACK_ID = r"^[A-Z0-9]{1,64}$"
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})


class BadSlackRequest(BadRequest):
    """The Slack form or payload is unusable (a ValueError; HTTP 400). Never carries a secret or a URL path."""


class UnsafeUrl(BadRequest):
    """A response URL we will not post to: not https, not an allowed host, user information, odd characters."""


class SlackPostError(Exception):
    """Posting to response_url failed. The message names the host only, never the path (it carries tokens)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


# --- verification -------------------------------------------------------------------------------------------------


def verify_slack(
    headers: Mapping[Any, Any] | None,
    raw_body: bytes | str | None,
    secret: Any,
    now: Now | float | datetime | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    replay_cache: ReplayCache | None = None,
) -> None:
    """Slack's v0 scheme through slack_sdk's SignatureVerifier. Raises Unauthorized, or PayloadTooLarge.

    `headers`: the request headers (any case); `secret`: the signing secret (str or SecretStr); `now`: unix seconds
    or a callable returning them (the verifier's clock; tests freeze it), default the system clock.
    """
    value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    if not isinstance(value, str) or not value.strip():
        raise Unauthorized("Slack commands are not enabled: SLACK_SIGNING_SECRET is not set")
    check_body_size(raw_body, max_body_bytes)
    h = normalize_headers(headers)
    signature = (h.get("x-slack-signature") or "").strip()
    if not signature:
        raise Unauthorized("missing X-Slack-Signature header")
    current = now_seconds(now)
    ts = check_timestamp(
        h.get("x-slack-request-timestamp"),
        current,
        header="X-Slack-Request-Timestamp",
        tolerance=SLACK_TOLERANCE_SECONDS,
    )
    if not _SLACK_SIG_RE.fullmatch(signature):
        raise Unauthorized("X-Slack-Signature must be v0=<64 hex digits>")
    body = as_bytes(raw_body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unauthorized("the body is not UTF-8, so it is not a signed Slack request") from None

    from slack_sdk.signature import Clock, SignatureVerifier

    class _FrozenClock(Clock):
        def now(self) -> float:
            return current

    try:
        verifier = SignatureVerifier(signing_secret=value, clock=_FrozenClock())
        valid = verifier.is_valid(body=body, timestamp=str(ts), signature=signature.lower())
    except (ValueError, TypeError):  # defensive: inputs are pre-checked, so this should not happen
        valid = False
    if not valid:
        raise Unauthorized("the X-Slack-Signature does not match the body and timestamp")
    if replay_cache is not None:
        replay_cache.check_and_remember(request_fingerprint(ts, body), ts + SLACK_TOLERANCE_SECONDS + 1, current)


# --- the form -----------------------------------------------------------------------------------------------------


def check_response_url(
    url: Any,
    *,
    allow_hosts: Sequence[str] = SLACK_HOSTS,
    allow_loopback: bool = False,
) -> str:
    """The URL itself if we may post to it, else UnsafeUrl: https only, the host exactly one of `allow_hosts`
    (no user information, port 443, no backslashes/spaces/control characters). `allow_loopback` (tests, local
    runs) also admits http://127.0.0.1, ::1 and localhost. Error messages never include the URL."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("the response URL is missing")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the response URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(ch.isspace() or ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeUrl("the response URL contains spaces, control characters, backslashes or non-ASCII")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = (parts.hostname or "").lower()
    except ValueError:
        raise UnsafeUrl("the response URL is not a valid URL") from None
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the response URL must not carry user information")
    scheme = parts.scheme.lower()
    loopback = allow_loopback and host in LOOPBACK_HOSTS
    if not (scheme == "https" or (loopback and scheme == "http")):
        raise UnsafeUrl("the response URL must use https")
    if not loopback:
        if host not in {h.lower() for h in allow_hosts}:
            raise UnsafeUrl(f"the response URL's host is not allowed (allowed: {', '.join(allow_hosts)})")
        if port not in (None, 443):
            raise UnsafeUrl("the response URL must use the default https port")
    if not parts.path.startswith("/") or parts.path == "/" or parts.fragment:
        raise UnsafeUrl("the response URL must have a path and no fragment")
    return url


def redact_url(url: Any) -> str:
    """`https://host/…`: what a log line or an error may show of a response URL (its path carries tokens)."""
    try:
        parts = urlsplit(url if isinstance(url, str) else "")
        host = parts.hostname or "?"
        scheme = parts.scheme or "?"
    except ValueError:
        return "<invalid URL>"
    return f"{scheme}://{host}/…"


class SlashCommand(BaseModel):
    """The fields of a slash command POST we use. Others (token, team_domain, ...) are dropped unread."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    team_id: str = Field(pattern=_SLACK_ID)
    channel_id: str = Field(pattern=_SLACK_ID)
    user_id: str = Field(pattern=_SLACK_ID)
    user_name: str = Field(default="", max_length=80, pattern=TEXT_PATTERN)
    command: str = Field(pattern=r"^/[^\s\x00-\x1f\x7f]{1,63}$")
    text: str = Field(default="", max_length=MAX_COMMAND_TEXT, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
    response_url: str = Field(max_length=MAX_URL_LENGTH)
    trigger_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")

    @field_validator("response_url")
    @classmethod
    def _response_url(cls, value: str) -> str:
        return check_response_url(value)


_FORM_FIELDS = frozenset(SlashCommand.model_fields)


def _describe(error: ValidationError, prefix: str) -> str:
    items = []
    for err in error.errors(include_url=False, include_input=False, include_context=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "form"
        items.append(f"{where}: {err['msg']}")
    return f"{prefix}: " + "; ".join(items)


def parse_slash_form(raw_body: bytes | str | None, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> SlashCommand:
    """The slash command from its application/x-www-form-urlencoded body. Raises BadSlackRequest (a ValueError)."""
    check_body_size(raw_body, max_body_bytes)
    try:
        text = as_bytes(raw_body).decode("utf-8")
    except UnicodeDecodeError:
        raise BadSlackRequest("the Slack form is not UTF-8") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # too many fields, or percent-escapes that are not UTF-8
        raise BadSlackRequest("the Slack form is not a valid application/x-www-form-urlencoded body") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in _FORM_FIELDS:
            if key in fields:
                raise BadSlackRequest(f"the Slack form repeats the field {key}")
            fields[key] = value
    try:
        return SlashCommand.model_validate(fields)
    except ValidationError as exc:
        raise BadSlackRequest(_describe(exc, "invalid Slack command form")) from None


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
        return _help(_describe(exc, "invalid command"))


# --- to the domain ------------------------------------------------------------------------------------------------


def to_backup_request(cmd: BackupCommand, slash: SlashCommand) -> BackupRequest:
    """The domain request for a backup command; folder and defaults are filled later from Settings."""
    return BackupRequest(
        compute_instance_id=cmd.instance_id,
        instance_name=cmd.instance_name,
        policy_id=cmd.policy_id,
        policy_name=cmd.policy_name,
        dry_run=cmd.dry_run,
        reason=cmd.reason,
        requested_by=f"slack:{slash.user_name or slash.user_id}",
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


# --- replies ------------------------------------------------------------------------------------------------------


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


def reply_accepted(cmd: BackupCommand) -> dict[str, Any]:
    """The immediate answer (Slack wants one within 3 seconds), before the backup is started."""
    policy = _code(cmd.policy) if cmd.policy else "its applied policy"
    verb = "Planning (dry run)" if cmd.dry_run else "Starting"
    text = f":hourglass_flowing_sand: {verb} a backup of {_code(cmd.instance)} with {policy}…"
    if cmd.reason:
        text += f"\nReason: {escape_mrkdwn(cmd.reason)}"
    return _reply(text)


def reply_started(instance: str, operations: Sequence[tuple[str, str]], *, reason: str | None = None) -> dict[str, Any]:
    """`operations`: (policy name or id, operation id) for each backup started on `instance`."""
    if not operations:
        return reply_error(f"no backup was started for {instance}")
    lines = [f":white_check_mark: Backup of {_code(instance)} started:"]
    lines += [f"• policy {_code(policy)}: operation {_code(op)}" for policy, op in operations[:20]]
    if len(operations) > 20:
        lines.append(f"… and {len(operations) - 20} more")
    if reason:
        lines.append(f"Reason: {escape_mrkdwn(reason)}")
    lines.append("I will post here when it finishes.")
    return _reply("\n".join(lines))


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


# --- posting ------------------------------------------------------------------------------------------------------


def post_to_slack(
    url: str,
    payload: Mapping[str, Any],
    *,
    allow_hosts: Sequence[str] = SLACK_HOSTS,
    allow_loopback: bool = False,
    session: Any = None,
    timeout: tuple[float, float] = POST_TIMEOUT,
) -> int:
    """POST `payload` as JSON to a response_url; returns the HTTP status (2xx). No redirects are followed.

    Raises UnsafeUrl (a ValueError) before any network use when the URL is not allowed, BadSlackRequest for a
    payload over MAX_POST_BYTES, SlackPostError when the post fails. Messages name the host, never the path.
    """
    check_response_url(url, allow_hosts=allow_hosts, allow_loopback=allow_loopback)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_POST_BYTES:
        raise BadSlackRequest(f"the Slack message is {len(body)} bytes; at most {MAX_POST_BYTES} are sent")
    import requests

    where = redact_url(url)
    http = session if session is not None else requests
    try:
        response = http.post(
            url,
            data=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
    except requests.RequestException as exc:
        raise SlackPostError(f"could not post to {where}: {type(exc).__name__}") from None
    try:
        status = int(response.status_code)
        if 200 <= status < 300:
            return status
        try:
            snippet = response.raw.read(128, decode_content=True).decode("utf-8", "replace").strip()
        except Exception:
            snippet = ""
        detail = f" ({snippet})" if _SLACK_ERROR_RE.fullmatch(snippet) else ""
        raise SlackPostError(f"{where} answered HTTP {status}{detail}", status_code=status)
    finally:
        response.close()
