"""Which instances chat may back up: fail closed, `*`, folders, labels (all of them), instances; conditions AND."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import pytest

from chatops.allowlist import Forbidden, chat_allowlist_configured, check_chat_allowed, describe_allowed
from settings import Settings


class ChatInstance(NamedTuple):
    id: str
    name: str | None = None
    labels: Mapping[str, str] | None = None


FOLDER = "b1gfolder0000000001"
OTHER_FOLDER = "b1gfolder0000000002"
WEB = ChatInstance(id="fhm0b28lgfp4tkoa3jl6", name="web1", labels={"env": "prod", "chatops": "yes"})
DB = ChatInstance(id="fhm9z99zzzz9zzzz9zz9", name="db1", labels={"env": "prod"})


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def check(s: Settings, folder: str | None, instance: tuple[str, str | None, Mapping[str, str] | None]) -> None:
    inst_id, name, labels = instance
    check_chat_allowed(s, folder_id=folder, instance_id=inst_id, name=name, labels=labels)


def allowed(s: Settings, folder: str | None, instance: tuple[str, str | None, Mapping[str, str] | None]) -> bool:
    try:
        check(s, folder, instance)
    except Forbidden:
        return False
    return True


class TestFailClosed:
    def test_nothing_configured_allows_nothing(self) -> None:
        s = settings()
        assert not chat_allowlist_configured(s)
        with pytest.raises(Forbidden, match="chat backups are off: set CHAT_ALLOWED_FOLDERS"):
            check(s, FOLDER, WEB)

    @pytest.mark.parametrize(
        "env", [{"CHAT_ALLOWED_FOLDERS": ""}, {"CHAT_ALLOWED_INSTANCES": " , "}, {"CHAT_ALLOWED_LABELS": "{}"}]
    )
    def test_empty_values_are_nothing(self, env: dict[str, str]) -> None:
        with pytest.raises(Forbidden, match="off"):
            check(settings(**env), FOLDER, WEB)

    def test_forbidden_is_not_a_value_error(self) -> None:
        assert not issubclass(Forbidden, ValueError) and Forbidden.status_code == 403


class TestWildcard:
    @pytest.mark.parametrize("env", [{"CHAT_ALLOWED_FOLDERS": "*"}, {"CHAT_ALLOWED_INSTANCES": "*"}])
    def test_star_allows_everything(self, env: dict[str, str]) -> None:
        s = settings(**env)
        assert allowed(s, FOLDER, WEB) and allowed(s, None, ("x1", None, None))

    def test_star_does_not_lift_another_condition(self) -> None:
        s = settings(CHAT_ALLOWED_INSTANCES="*", CHAT_ALLOWED_LABELS='{"chatops": "yes"}')
        assert allowed(s, FOLDER, WEB) and not allowed(s, FOLDER, DB)


class TestEachCondition:
    def test_folders(self) -> None:
        s = settings(CHAT_ALLOWED_FOLDERS=f"{FOLDER}, b1gother")
        assert allowed(s, FOLDER, WEB)
        assert not allowed(s, OTHER_FOLDER, WEB)
        assert not allowed(s, None, WEB)  # unknown folder: not allowed

    def test_labels_must_all_be_present(self) -> None:
        s = settings(CHAT_ALLOWED_LABELS='{"env": "prod", "chatops": "yes"}')
        assert allowed(s, FOLDER, WEB)
        with pytest.raises(Forbidden, match="lacks the label chatops"):
            check(s, FOLDER, DB)
        assert not allowed(s, FOLDER, ChatInstance("x1", "x", {"env": "dev", "chatops": "yes"}))
        assert not allowed(s, FOLDER, ChatInstance("x1", "x", None))

    def test_label_value_star_means_any_value(self) -> None:
        s = settings(CHAT_ALLOWED_LABELS='{"chatops": "*"}')
        assert allowed(s, FOLDER, ChatInstance("x1", "x", {"chatops": "whatever"}))
        assert allowed(s, FOLDER, ChatInstance("x1", "x", {"chatops": ""}))
        assert not allowed(s, FOLDER, ChatInstance("x1", "x", {"other": "yes"}))

    def test_instances_by_id_or_name(self) -> None:
        by_name = settings(CHAT_ALLOWED_INSTANCES="web1", FOLDER_ID=FOLDER)
        by_id = settings(CHAT_ALLOWED_INSTANCES=WEB.id)
        assert allowed(by_name, FOLDER, WEB) and allowed(by_id, FOLDER, WEB)
        assert not allowed(by_name, FOLDER, DB) and not allowed(by_id, FOLDER, DB)
        assert not allowed(by_name, FOLDER, ChatInstance(WEB.id, None, None))  # name unknown: id must match

    def test_plain_tuple(self) -> None:
        s = settings(CHAT_ALLOWED_INSTANCES="web1", FOLDER_ID=FOLDER)
        assert allowed(s, FOLDER, (WEB.id, "web1", {}))


class TestNamesAreScopedToAFolder:
    """Issue 11 finding 10: names are unique per folder only, so a name entry must not match in any folder."""

    def test_a_namesake_in_another_folder_is_refused(self) -> None:
        s = settings(CHAT_ALLOWED_INSTANCES="web1", FOLDER_ID=FOLDER)
        namesake = ChatInstance("fhmattacker000000001", "web1", {})
        with pytest.raises(Forbidden, match="instance list"):
            check(s, OTHER_FOLDER, namesake)
        assert allowed(s, FOLDER, WEB)

    def test_names_count_in_chat_allowed_folders_when_it_lists_folders(self) -> None:
        s = settings(CHAT_ALLOWED_INSTANCES="web1", CHAT_ALLOWED_FOLDERS=f"{OTHER_FOLDER},b1gthird", FOLDER_ID=FOLDER)
        assert allowed(s, OTHER_FOLDER, WEB) and not allowed(s, FOLDER, WEB)

    def test_a_wildcard_folder_list_does_not_widen_a_name(self) -> None:
        s = settings(CHAT_ALLOWED_INSTANCES="web1", CHAT_ALLOWED_FOLDERS="*", FOLDER_ID=FOLDER)
        assert allowed(s, FOLDER, WEB) and not allowed(s, OTHER_FOLDER, WEB)

    def test_without_any_folder_a_name_matches_nothing_but_an_id_matches_anywhere(self) -> None:
        assert not allowed(settings(CHAT_ALLOWED_INSTANCES="web1"), FOLDER, WEB)
        by_id = settings(CHAT_ALLOWED_INSTANCES=WEB.id, FOLDER_ID=FOLDER)
        assert allowed(by_id, OTHER_FOLDER, WEB)
        assert "set FOLDER_ID" in describe_allowed(settings(CHAT_ALLOWED_INSTANCES="web1"))

    def test_an_unknown_folder_never_matches_a_name(self) -> None:
        assert not allowed(settings(CHAT_ALLOWED_INSTANCES="web1", FOLDER_ID=FOLDER), None, WEB)


class TestCombination:
    def test_every_set_condition_must_hold(self) -> None:
        s = settings(CHAT_ALLOWED_FOLDERS=FOLDER, CHAT_ALLOWED_LABELS='{"chatops": "yes"}')
        assert allowed(s, FOLDER, WEB)
        assert not allowed(s, OTHER_FOLDER, WEB)  # labels fine, folder not
        assert not allowed(s, FOLDER, DB)  # folder fine, label missing

    def test_adding_a_setting_only_narrows(self) -> None:
        wide = settings(CHAT_ALLOWED_FOLDERS=FOLDER)
        narrow = settings(CHAT_ALLOWED_FOLDERS=FOLDER, CHAT_ALLOWED_INSTANCES="db1")
        assert allowed(wide, FOLDER, WEB) and not allowed(narrow, FOLDER, WEB)
        assert allowed(narrow, FOLDER, DB)

    def test_message_names_the_instance_the_reasons_and_what_is_allowed(self) -> None:
        s = settings(CHAT_ALLOWED_FOLDERS=FOLDER, CHAT_ALLOWED_LABELS='{"chatops": "yes"}', CHAT_ALLOWED_INSTANCES="x")
        with pytest.raises(Forbidden) as info:
            check(s, OTHER_FOLDER, DB)
        text = str(info.value)
        assert "db1" in text and DB.id in text
        assert "its folder is not allowed" in text and "lacks the label chatops" in text and "instance list" in text
        assert FOLDER in text and "chatops=yes" in text

    def test_describe(self) -> None:
        assert "off" in describe_allowed(settings())
        assert describe_allowed(settings(CHAT_ALLOWED_FOLDERS="*")) == "instances with any folder"
        many = settings(CHAT_ALLOWED_INSTANCES=",".join(f"vm{i}" for i in range(30)))
        assert "and 20 more" in describe_allowed(many)
