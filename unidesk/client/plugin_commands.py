"""Subcommands contributed by plugins (``unidesk_cli_commands``), loaded like the server loads them.

``UNIDESK_PLUGINS`` (``all`` by default, ``none``, or a comma-separated list) chooses which;
a plugin that fails to load is named on stderr and its commands are absent."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_plugin_commands"]


def add_plugin_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from unidesk.core.plugins.facade import Plugins
    from unidesk.core.plugins.manager import make_plugin_manager

    loaded = make_plugin_manager(os.environ.get("UNIDESK_PLUGINS", "all"))
    for name, call in Plugins(loaded).callers("unidesk_cli_commands"):
        try:
            call(subparsers=subparsers)
        except Exception as exc:  # one plugin's broken parser must not take the CLI down
            print(f"unidesk: plugin {name} could not add its commands: {exc}", file=sys.stderr)
    for error in loaded.errors.values():
        print(f"unidesk: {error}", file=sys.stderr)
