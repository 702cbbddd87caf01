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
- An id in CHAT_ALLOWED_INSTANCES names one instance anywhere; a NAME is unique only within a folder, so it
  matches only an instance in the folders of CHAT_ALLOWED_FOLDERS (when that lists folders), else in FOLDER_ID.
  With neither, a name matches nothing (use ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from settings import Settings

WILDCARD = "*"
_MAX_SHOWN = 10


class Forbidden(Exception):
    """The request is authentic but not allowed (HTTP 403). The message names what is allowed, no secrets."""

    status_code = 403


def _shown(items: list[str]) -> str:
    head = ", ".join(items[:_MAX_SHOWN])
    return head + (f" and {len(items) - _MAX_SHOWN} more" if len(items) > _MAX_SHOWN else "")


CHAT_OFF = (
    "chat backups are off: set CHAT_ALLOWED_FOLDERS, CHAT_ALLOWED_LABELS or CHAT_ALLOWED_INSTANCES "
    "(* allows every instance)"
)


def chat_allowlist_configured(settings: Settings) -> bool:
    return bool(settings.chat_allowed_folders or settings.chat_allowed_labels or settings.chat_allowed_instances)


def name_folders(settings: Settings) -> set[str]:
    """The folders a name in CHAT_ALLOWED_INSTANCES is looked for in (see the module docstring)."""
    listed = [f for f in settings.chat_allowed_folders if f != WILDCARD]
    if listed:
        return set(listed)
    return {settings.folder_id} if settings.folder_id else set()


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
        if WILDCARD in instances:
            parts.append("any instance")
        else:
            scope = _shown(sorted(name_folders(settings))) or "no folder: set FOLDER_ID"
            parts.append(f"instance {_shown(instances)} (names in {scope})")
    return "instances with " + "; ".join(parts)


def check_chat_allowed(
    settings: Settings,
    *,
    folder_id: str | None,
    instance_id: str,
    name: str | None,
    labels: Mapping[str, str] | None,
) -> None:
    """Raises Forbidden unless chat may back up the instance `instance_id` (`name`, `labels`) in `folder_id`.

    `name` and `labels` may be None (unknown: a label condition then fails, a name cannot match); `folder_id` may
    be None (unknown: a folder condition fails, a name cannot match).
    """
    labels = labels or {}
    what = f"instance {name or instance_id}" + (f" ({instance_id})" if name and instance_id else "")
    if not chat_allowlist_configured(settings):
        raise Forbidden(CHAT_OFF)
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
    if instances and WILDCARD not in instances:
        by_id = instance_id in instances
        by_name = name is not None and name in instances and folder_id is not None
        if by_name and folder_id not in name_folders(settings):
            by_name = False
        if not (by_id or by_name):
            failed.append("it is not in the instance list (names count in their folder only)")
    if failed:
        raise Forbidden(f"chat may not back up {what}: {'; '.join(failed)}. Allowed: {describe_allowed(settings)}")
