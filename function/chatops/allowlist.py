"""Which instances a chat command may back up. Fails closed.

Settings (comma lists / a JSON object):

- CHAT_ALLOWED_FOLDERS   folder ids; the instance's folder must be one of them.
- CHAT_ALLOWED_LABELS    {"key": "value", ...}; the instance must carry ALL of them (value "*" = the key with any
                         value). All, not any: each label narrows, like the instanceLabels selector.
- CHAT_ALLOWED_INSTANCES instance ids or names; the instance's id or name must be one of them.

Rules:

- Nothing set at all: chat may back up NOTHING (every command gets Forbidden naming the settings to set).
- Each setting that is set is a condition, and an instance must meet every condition that is set (AND). Adding a
  setting therefore only ever narrows what chat may do; a setting left empty adds no condition.
- `*` as the only item of CHAT_ALLOWED_FOLDERS or CHAT_ALLOWED_INSTANCES makes that condition allow every instance;
  so `CHAT_ALLOWED_INSTANCES=*` alone lets chat back up anything the function's service account can reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from settings import Settings

WILDCARD = "*"
_MAX_SHOWN = 10


class Forbidden(Exception):
    """The request is authentic but not allowed (HTTP 403). The message names what is allowed, no secrets."""

    status_code = 403


class ChatInstance(NamedTuple):
    """What the check needs to know of an instance: its id, its name and its labels."""

    id: str
    name: str | None = None
    labels: Mapping[str, str] | None = None


def _shown(items: list[str]) -> str:
    head = ", ".join(items[:_MAX_SHOWN])
    return head + (f" and {len(items) - _MAX_SHOWN} more" if len(items) > _MAX_SHOWN else "")


def chat_allowlist_configured(settings: Settings) -> bool:
    return bool(settings.chat_allowed_folders or settings.chat_allowed_labels or settings.chat_allowed_instances)


def describe_allowed(settings: Settings) -> str:
    """The allowlist in words, as in Forbidden messages."""
    if not chat_allowlist_configured(settings):
        return "nothing (chat backups are off)"
    parts = []
    if settings.chat_allowed_folders:
        folders = settings.chat_allowed_folders
        parts.append("any folder" if WILDCARD in folders else f"folder {_shown(folders)}")
    if settings.chat_allowed_labels:
        labels = [f"{k}={v}" for k, v in sorted(settings.chat_allowed_labels.items())]
        parts.append(f"labels {_shown(labels)} (all of them)")
    if settings.chat_allowed_instances:
        instances = settings.chat_allowed_instances
        parts.append("any instance" if WILDCARD in instances else f"instance {_shown(instances)}")
    return "instances with " + "; ".join(parts)


def check_chat_allowed(settings: Settings, folder_id: str | None, instance: Any) -> None:
    """Raises Forbidden unless chat may back up `instance` in `folder_id`.

    `instance`: a ChatInstance or any (id, name, labels) tuple; name and labels may be None (unknown: a label
    condition then fails, a name cannot match).
    """
    inst_id, name, labels = tuple(instance)
    labels = labels or {}
    what = f"instance {name or inst_id}" + (f" ({inst_id})" if name and inst_id else "")
    if not chat_allowlist_configured(settings):
        raise Forbidden(
            "chat backups are off: set CHAT_ALLOWED_FOLDERS, CHAT_ALLOWED_LABELS or CHAT_ALLOWED_INSTANCES "
            "(* allows every instance)"
        )
    failed: list[str] = []
    folders = settings.chat_allowed_folders
    if folders and WILDCARD not in folders and (not folder_id or folder_id not in folders):
        failed.append("its folder is not allowed")
    wanted = settings.chat_allowed_labels
    if wanted:
        missing = [k for k, v in wanted.items() if k not in labels or (v != WILDCARD and str(labels.get(k)) != str(v))]
        if missing:
            failed.append(f"it lacks the label {', '.join(sorted(missing)[:_MAX_SHOWN])}")
    instances = settings.chat_allowed_instances
    if instances and WILDCARD not in instances and not ({inst_id, name} & set(instances)):
        failed.append("it is not in the instance list")
    if failed:
        raise Forbidden(f"chat may not back up {what}: {'; '.join(failed)}. Allowed: {describe_allowed(settings)}")
