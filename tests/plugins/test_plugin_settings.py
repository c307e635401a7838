"""Plugins declare their own settings (``unidesk_settings``): file keys and env vars
``<plugin>_<field>``, validated per plugin; a bad one takes only that plugin out."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import msgspec
import pytest

from unidesk.core.plugin_api import hookimpl, plugin_settings
from unidesk.core.plugins.facade import Plugins
from unidesk.core.plugins.manager import make_plugin_manager
from unidesk.core.settings import Settings, load_settings, settings_reference
from unidesk.errors import BadRequest
from unidesk.plugins.research.settings import ResearchSettings


class HelloSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    greeting: Annotated[str, msgspec.Meta(description="What hello says.")] = "hi"
    times: Annotated[int, msgspec.Meta(description="How often.", ge=1)] = 1


class Hello:
    @hookimpl
    def unidesk_settings(self) -> type[HelloSettings]:
        return HelloSettings


class Quiet:
    """A plugin that declares no settings."""

    @hookimpl
    def unidesk_task_extension_names(self) -> list[str]:
        return []


def facade(*, builtins: tuple[str, ...] = ()) -> Plugins:
    loaded = make_plugin_manager(
        "all", builtins=builtins, extra=[("hello", Hello()), ("quiet", Quiet())], entry_points=False
    )
    return Plugins(loaded)


def test_plugin_settings_from_file_and_env_env_wins() -> None:
    plugins = facade()
    settings = Settings(
        plugin_values={"hello_greeting": "salut", "hello_times": 2}, plugin_env={"hello_times": "5"}
    )
    values = plugins.settings(settings)
    state = SimpleNamespace(plugin_settings=values)
    assert plugin_settings(state, HelloSettings) == HelloSettings(greeting="salut", times=5)  # type: ignore[arg-type]  # a stand-in for the app state
    assert plugins.errors == []
    assert (
        plugin_settings(
            SimpleNamespace(plugin_settings=facade().settings(Settings())),  # type: ignore[arg-type]  # a stand-in for the app state
            HelloSettings,
        )
        == HelloSettings()
    ), "defaults when nothing is set"


@pytest.mark.parametrize(
    "values, env, needle",
    [
        ({"hello_times": 0}, {}, "invalid setting"),
        ({}, {"hello_times": "many"}, "invalid setting"),
        ({"hello_greting": "typo"}, {}, "unknown setting 'hello_greting'"),
        ({"quiet_level": 3}, {}, "unknown setting 'quiet_level'"),
    ],
)
def test_bad_or_unknown_plugin_setting_takes_only_that_plugin_out(
    values: dict[str, object], env: dict[str, str], needle: str
) -> None:
    plugins = facade(builtins=("unidesk.plugins.research",))
    out = plugins.settings(Settings(plugin_values=values, plugin_env=env))
    assert len(plugins.errors) == 1 and needle in plugins.errors[0], plugins.errors
    culprit = "quiet" if "quiet" in needle else "hello"
    assert culprit not in plugins.loaded.names()
    assert "research" in plugins.loaded.names() and ResearchSettings in out


def test_unknown_env_var_under_a_plugin_prefix_is_ignored() -> None:
    plugins = facade()
    plugins.settings(Settings(plugin_env={"hello_colour": "red", "quiet_level": "3"}))
    assert plugins.errors == []


def test_research_setting_keeps_its_env_var_and_file_key(tmp_path: Path) -> None:
    research = Plugins(make_plugin_manager("research", entry_points=False))
    settings = load_settings(environ={"UNIDESK_RESEARCH_MAX_SWEEP_TASKS": "7"})
    assert settings.plugin_env == {"research_max_sweep_tasks": "7"}
    assert research.settings(settings)[ResearchSettings] == ResearchSettings(max_sweep_tasks=7)

    cfg = tmp_path / "c.toml"
    cfg.write_text("port = 9001\nresearch_max_sweep_tasks = 9\n")
    settings = load_settings(cfg, environ={})
    assert settings.port == 9001 and settings.plugin_values == {"research_max_sweep_tasks": 9}
    assert research.settings(settings)[ResearchSettings].max_sweep_tasks == 9
    env = {"UNIDESK_RESEARCH_MAX_SWEEP_TASKS": "11", "UNIDESK_UNRELATED": "x"}
    assert (
        research.settings(load_settings(cfg, environ=env))[ResearchSettings].max_sweep_tasks == 11
    )

    off = Plugins(make_plugin_manager("none", entry_points=False), enabled=False)
    assert off.settings(load_settings(cfg, environ={})) == {} and off.errors == [], (
        "a configured plugin that is not loaded does not stop the core"
    )


def test_a_key_naming_no_plugin_is_still_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("reserch_max_sweep_tasks = 9\n")
    with pytest.raises(BadRequest, match="reserch_max_sweep_tasks"):
        load_settings(cfg, environ={})


def test_plugin_settings_are_listed_in_the_reference() -> None:
    plugins = facade()
    ref = settings_reference(plugins.settings_structs())
    assert "| `hello_greeting` | `UNIDESK_HELLO_GREETING` | `'hi'` | What hello says. |" in ref
    assert "`plugin_values`" not in ref and "`plugin_env`" not in ref


def test_undeclared_struct_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="HelloSettings"):
        plugin_settings(SimpleNamespace(plugin_settings={}), HelloSettings)  # type: ignore[arg-type]  # a stand-in for the app state


def test_a_hook_returning_no_struct_takes_the_plugin_out() -> None:
    class Bad:
        @hookimpl
        def unidesk_settings(self) -> object:
            return {"greeting": str}

    plugins = Plugins(
        make_plugin_manager("all", builtins=(), extra=[("bad", Bad())], entry_points=False)
    )
    assert plugins.settings_structs() == []
    assert "not a msgspec.Struct class" in plugins.errors[0]
