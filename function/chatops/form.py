"""The Slack slash command's form: `parse_slash_form` -> `SlashCommand`. The request is verified before this runs
(security.http_auth); the form is still hostile input: every field is bounded and checked, the response_url with
security.urls (only https://hooks.slack.com/ is ever posted to).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backups.models import TEXT_PATTERN
from security.common import DEFAULT_MAX_BODY_BYTES, BadRequest, as_bytes, check_body_size
from security.urls import MAX_URL_LENGTH, check_response_url

MAX_FORM_FIELDS = 64
MAX_COMMAND_TEXT = 2000
_SLACK_ID = r"^[A-Z0-9]{1,64}$"


class BadSlackRequest(BadRequest):
    """The Slack form or payload is unusable (a ValueError; HTTP 400). Never carries a secret or a URL path."""


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


def describe(error: ValidationError, prefix: str) -> str:
    """A validation error in a few words: field and problem, never the input."""
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
        raise BadSlackRequest(describe(exc, "invalid Slack command form")) from None
