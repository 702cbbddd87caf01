"""Which instances chat may back up: fail closed, `*`, folders, labels (all of them), instances; conditions AND."""

from __future__ import annotations

import pytest

from chatops.allowlist import ChatInstance, Forbidden, chat_allowlist_configured, check_chat_allowed, describe_allowed
from settings import Settings

FOLDER = "b1gfolder0000000001"
OTHER_FOLDER = "b1gfolder0000000002"
WEB = ChatInstance(id="fhm0b28lgfp4tkoa3jl6", name="web1", labels={"env": "prod", "chatops": "yes"})
DB = ChatInstance(id="fhm9z99zzzz9zzzz9zz9", name="db1", labels={"env": "prod"})


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def allowed(s: Settings, folder: str | None, instance: object) -> bool:
    try:
        check_chat_allowed(s, folder, instance)
    except Forbidden:
        return False
    return True


class TestFailClosed:
    def test_nothing_configured_allows_nothing(self) -> None:
        s = settings()
        assert not chat_allowlist_configured(s)
        with pytest.raises(Forbidden, match="chat backups are off: set CHAT_ALLOWED_FOLDERS"):
            check_chat_allowed(s, FOLDER, WEB)

    @pytest.mark.parametrize(
        "env", [{"CHAT_ALLOWED_FOLDERS": ""}, {"CHAT_ALLOWED_INSTANCES": " , "}, {"CHAT_ALLOWED_LABELS": "{}"}]
    )
    def test_empty_values_are_nothing(self, env: dict[str, str]) -> None:
        with pytest.raises(Forbidden, match="off"):
            check_chat_allowed(settings(**env), FOLDER, WEB)

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
            check_chat_allowed(s, FOLDER, DB)
        assert not allowed(s, FOLDER, ChatInstance("x1", "x", {"env": "dev", "chatops": "yes"}))
        assert not allowed(s, FOLDER, ChatInstance("x1", "x", None))

    def test_label_value_star_means_any_value(self) -> None:
        s = settings(CHAT_ALLOWED_LABELS='{"chatops": "*"}')
        assert allowed(s, FOLDER, ChatInstance("x1", "x", {"chatops": "whatever"}))
        assert allowed(s, FOLDER, ChatInstance("x1", "x", {"chatops": ""}))
        assert not allowed(s, FOLDER, ChatInstance("x1", "x", {"other": "yes"}))

    def test_instances_by_id_or_name(self) -> None:
        by_name = settings(CHAT_ALLOWED_INSTANCES="web1")
        by_id = settings(CHAT_ALLOWED_INSTANCES=WEB.id)
        assert allowed(by_name, FOLDER, WEB) and allowed(by_id, FOLDER, WEB)
        assert not allowed(by_name, FOLDER, DB) and not allowed(by_id, FOLDER, DB)
        assert not allowed(by_name, FOLDER, ChatInstance(WEB.id, None, None))  # name unknown: id must match

    def test_plain_tuple(self) -> None:
        s = settings(CHAT_ALLOWED_INSTANCES="web1")
        assert allowed(s, FOLDER, (WEB.id, "web1", {}))


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
            check_chat_allowed(s, OTHER_FOLDER, DB)
        text = str(info.value)
        assert "db1" in text and DB.id in text
        assert "its folder is not allowed" in text and "lacks the label chatops" in text and "instance list" in text
        assert FOLDER in text and "chatops=yes" in text

    def test_describe(self) -> None:
        assert "off" in describe_allowed(settings())
        assert describe_allowed(settings(CHAT_ALLOWED_FOLDERS="*")) == "instances with any folder"
        many = settings(CHAT_ALLOWED_INSTANCES=",".join(f"vm{i}" for i in range(30)))
        assert "and 20 more" in describe_allowed(many)
