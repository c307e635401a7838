"""``unidesk-agent``: run a node (``run``, the default) or print its declared resources.

Exit codes: 0 after a graceful stop; 77 the server refused or revoked the node token; 76
incompatible protocol; 75 another agent took over this token; 78 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from unidesk.logconfig import configure_logging

from .config import AgentConfig, ConfigError, load_config, parse_labels, require_connection_settings
from .hostmounts import declared_mounts, hello_mounts, parse_host_mounts
from .resources import detect_resources
from .runner import Runner

__all__ = ["build_parser", "main", "make_runner"]

EXIT_CONFIG = 78

log = logging.getLogger("unidesk.gateway_agent")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unidesk-agent", description="UniDesk compute-node agent.")
    p.add_argument(
        "command", nargs="?", choices=["run"], default="run", help="run the agent (default)"
    )
    p.add_argument(
        "--print-resources",
        action="store_true",
        help="print the declared resources as JSON and exit",
    )
    p.add_argument("--config", help="TOML config file (also UNIDESK_AGENT_CONFIG)")
    p.add_argument(
        "--server", dest="server_url", help="server URL, e.g. https://unidesk.example.org"
    )
    p.add_argument("--token", help="node token (prefer --token-file: flags are visible in ps)")
    p.add_argument("--token-file", help="file holding the node token")
    p.add_argument("--node-name", help="name to declare (default: hostname)")
    p.add_argument(
        "--label", action="append", default=None, metavar="KEY=VALUE", help="node label, repeatable"
    )
    p.add_argument(
        "--host-mount",
        action="append",
        default=None,
        metavar="NAME=/PATH[:ro|:rw]",
        help="declare a host directory tasks may request by name (default ro), repeatable",
    )
    p.add_argument("--cache-dir")
    p.add_argument("--state-dir")
    p.add_argument("--concurrency", type=int, help="attempts run at once")
    p.add_argument(
        "--heartbeat-interval",
        dest="heartbeat_interval_s",
        type=float,
        help="override the server's heartbeat interval (seconds)",
    )
    p.add_argument(
        "--allow-file-urls", action="store_true", default=None, help="accept file:// repositories"
    )
    p.add_argument("--network-mode", choices=["none", "host"])
    p.add_argument(
        "--runner",
        choices=["docker", "subprocess-test"],
        help="'docker' (default); 'subprocess-test' runs commands unisolated, FOR TESTS ONLY",
    )
    p.add_argument("--cpus", type=float, help="declare at most this many CPUs")
    p.add_argument("--memory-mb", type=int, help="declare at most this much memory")
    p.add_argument(
        "--shutdown-grace",
        dest="shutdown_grace_s",
        type=float,
        help="seconds attempts may finish after SIGTERM",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return p


def _flags(ns: argparse.Namespace) -> dict[str, Any]:
    flags = {
        k: v
        for k, v in vars(ns).items()
        if k not in ("command", "print_resources", "config", "label", "host_mount")
    }
    if ns.label is not None:
        flags["labels"] = parse_labels(ns.label)
    if ns.host_mount is not None:
        flags["host_mounts"] = parse_host_mounts(ns.host_mount)
    return flags


def make_runner(config: AgentConfig) -> Runner:
    """The runner the config names; ``docker`` is the default and the only one for real work."""
    if config.runner == "subprocess-test":
        from .testing_runner import SubprocessTestRunner

        log.warning(
            "using SubprocessTestRunner: commands run on the host without isolation (tests only)"
        )
        return SubprocessTestRunner()
    if config.runner != "docker":
        raise ConfigError(f"unknown runner {config.runner!r}; use 'docker'")
    try:
        docker_runner = importlib.import_module("unidesk.gateway_agent.docker_runner")
        exec_config = importlib.import_module("unidesk.gateway_agent.exec_config")
    except ImportError as exc:
        raise ConfigError(f"the Docker runner is not available in this build: {exc}") from None
    settings = msgspec.convert(
        {
            **config.docker,
            "cache_dir": config.cache_dir,
            "allow_file_urls": config.allow_file_urls,
            "network_mode": config.network_mode,
            "host_mounts": config.host_mounts,
            "host_root": config.host_root,
        },
        exec_config.ExecConfig,
    )
    from .transfer import Transfer

    transfer = Transfer(
        server_url=config.server_url, token=config.token, cache_dir=settings.cache_path
    )
    return docker_runner.DockerRunner(settings, node_name=config.node_name, transfer=transfer)


async def _run(config: AgentConfig) -> int:
    from .agent import Agent
    from .health import NodeHealth, declared_runtimes
    from .hostssh import HostSshRunner, check_ssh_config
    from .state import StateFile

    check_ssh_config(config)
    runner = make_runner(config)
    resources = detect_resources(
        node_name=config.node_name,
        labels=config.labels,
        cpus=config.cpus,
        memory_mb=config.memory_mb,
    )
    resources = msgspec.structs.replace(
        resources,
        runtimes=declared_runtimes(config),
        host_mounts=hello_mounts(declared_mounts(config.host_mounts, config.host_root)),
    )
    node_health = NodeHealth(config, runner)
    maintenance = HostSshRunner(config) if config.ssh_host else None
    agent = Agent(
        config,
        runner,
        resources=resources,
        state=StateFile(config.state_path),
        maintenance=maintenance,
        node_health=node_health,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    try:
        return await agent.run()
    finally:
        await node_health.close()
        close = getattr(runner, "close", None)
        if close is not None:
            await close()


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        config = load_config(_flags(ns), config_file=ns.config)
        # structlog, as the server: the root logger stays at WARNING, which keeps websockets'
        # debug handshake dump (with headers) out
        configure_logging(config.log_format, config.log_level)
        if ns.print_resources:
            resources = detect_resources(
                node_name=config.node_name,
                labels=config.labels,
                cpus=config.cpus,
                memory_mb=config.memory_mb,
            )
            from .health import declared_runtimes

            resources = msgspec.structs.replace(
                resources,
                runtimes=declared_runtimes(config),
                host_mounts=hello_mounts(declared_mounts(config.host_mounts, config.host_root)),
            )
            print(json.dumps(msgspec.to_builtins(resources), indent=2))
            return 0
        require_connection_settings(config)
        return asyncio.run(_run(config))
    except ConfigError as exc:
        print(f"unidesk-agent: {exc.detail}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
