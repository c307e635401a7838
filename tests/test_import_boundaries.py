"""The agent and the core never import each other; both share only protocol and errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "unidesk"


def package_of(path: Path) -> str:
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    return package if path.name == "__init__.py" else package.rpartition(".")[0]


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module ``source`` (in ``package``) imports, relative ones
    resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
        ) and (
            node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def offending(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in files:
        for name in sorted(imported_modules(path.read_text(), package_of(path))):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    return bad


AGENT_FILES = [
    *sorted((ROOT / "gateway_agent").rglob("*.py")),
    ROOT / "protocol.py",
    ROOT / "errors.py",
    ROOT / "masking.py",
    ROOT / "backoff.py",
    ROOT / "background.py",
    ROOT / "logconfig.py",
]


def test_agent_and_protocol_never_import_core_or_plugins():
    assert len(AGENT_FILES) > 5
    assert offending(AGENT_FILES, ("unidesk.core", "unidesk.plugins", "unidesk.client")) == []


def test_built_in_plugins_use_only_the_plugin_api():
    """Like a third party's: ``unidesk.core.plugin_api`` is their one door into the core."""
    plugins = sorted((ROOT / "plugins").rglob("*.py"))
    assert plugins, "the built-in plugins have modules"
    bad = [
        b
        for b in offending(plugins, ("unidesk.core",))
        if not b.endswith(("imports unidesk.core.plugin_api", "imports unidesk.core"))
        and " imports unidesk.core.plugin_api." not in b
    ]
    assert bad == []


def test_core_never_imports_the_agent():
    core = sorted((ROOT / "core").rglob("*.py"))
    assert core, "the core package has modules"
    assert offending(core, ("unidesk.gateway_agent",)) == []


@pytest.mark.parametrize(
    "source",
    [
        "from unidesk.core import settings\n",
        "import unidesk.plugins.projects\n",
        "from ..core.settings import Settings\n",
        "from .. import core\n",
        "import importlib\nimportlib.import_module('unidesk.core.db')\n",
    ],
)
def test_the_checker_catches_violations(source: str):
    names = imported_modules(source, "unidesk.gateway_agent")
    assert any(n.startswith(("unidesk.core", "unidesk.plugins")) for n in names), names


def test_the_checker_allows_the_shared_modules():
    names = imported_modules(
        "from ..protocol import Hello\nfrom unidesk.errors import BadRequest\n"
        "from .runner import Runner\n",
        "unidesk.gateway_agent",
    )
    assert names == {
        "unidesk.protocol",
        "unidesk.protocol.Hello",
        "unidesk.errors",
        "unidesk.errors.BadRequest",
        "unidesk.gateway_agent.runner",
        "unidesk.gateway_agent.runner.Runner",
    }
