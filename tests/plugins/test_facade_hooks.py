"""The facade calls hooks through pluggy: tryfirst/trylast, specname and a plugin's own wrapper
apply, and a failing plugin is still named and taken out alone."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from unidesk.core.hookspecs import hookimpl
from unidesk.core.plugins.facade import Plugins
from unidesk.core.plugins.manager import make_plugin_manager


class Plain:
    @hookimpl
    def unidesk_task_extension_names(self) -> list[str]:
        return ["plain"]


class Eager:
    @hookimpl(tryfirst=True, specname="unidesk_task_extension_names")
    def names(self) -> list[str]:
        return ["eager"]


class Wrapped:
    @hookimpl
    def unidesk_task_extension_names(self) -> list[str]:
        return ["wrapped"]

    @hookimpl(wrapper=True, specname="unidesk_task_extension_names")
    def upper(self) -> Generator[None, list[list[str]], list[list[str]]]:
        results = yield
        return [[n.upper() for n in r] for r in results]


class Broken:
    @hookimpl
    def unidesk_task_extension_names(self) -> list[str]:
        raise RuntimeError("boom")


def facade(*plugins: tuple[str, Any]) -> Plugins:
    return Plugins(make_plugin_manager("all", builtins=(), extra=plugins, entry_points=False))


def test_order_tryfirst_specname_and_own_wrapper() -> None:
    f = facade(("plain", Plain()), ("eager", Eager()), ("wrapped", Wrapped()))
    assert f.task_extension_names() == {"eager": "eager", "plain": "plain", "WRAPPED": "wrapped"}
    assert [n for n, _ in f.callers("unidesk_task_extension_names")] == [
        "eager",
        "plain",
        "wrapped",
    ]


def test_a_failing_plugin_is_named_and_taken_out_alone() -> None:
    f = facade(("plain", Plain()), ("broken", Broken()))
    assert f.task_extension_names() == {"plain": "plain"}
    assert any("broken" in e and "boom" in e for e in f.errors), f.errors
    assert [n for n, _ in f.callers("unidesk_task_extension_names")] == ["plain"]
