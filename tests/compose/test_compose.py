"""The compose deployment: validated by Debian's ``docker-compose`` (1.29, compose-spec schema) with
``config``, then checked for the platform's rules. Images cannot be built here (no registry is
reachable for base images), so the images' entry points are run as ``python -m`` instead, and
the Dockerfiles are checked for what they promise (non-root user, version tag, entry point)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

import unidesk

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume, from short ``src:dst:mode`` or long syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            src, dst = v.split(":")[:2]
        else:
            src, dst = v["source"], v["target"]
        out.append((src, dst))
    return out


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Debian package) is required; scripts/setup.sh installs it"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("UNIDESK_", "POSTGRES_", "MINIO_"))
    }
    return subprocess.run(
        [exe, "-f", str(COMPOSE / "docker-compose.yml"), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    done = compose_config(COMPOSE / ".env.example")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_only_the_gateway_publishes_ports(config: dict[str, Any]) -> None:
    published = {name for name, svc in config["services"].items() if svc.get("ports")}
    assert published == {"gateway"}
    assert {str(p["published"]) for p in config["services"]["gateway"]["ports"]} == {"80", "443"}


def test_database_and_core_api_stay_internal(config: dict[str, Any]) -> None:
    assert config["networks"]["internal"].get("internal") is True
    services = config["services"]
    assert set(services["postgres"]["networks"]) == {"internal"}
    assert set(services["server"]["networks"]) == {"internal"}
    assert (
        "internal" in services["gateway"]["networks"] and "edge" in services["gateway"]["networks"]
    )
    assert ("pgdata", "/var/lib/postgresql") in mounts(services["postgres"])
    assert "pgdata" in config["volumes"]


def test_server_settings_exist_and_backups_are_scheduled(config: dict[str, Any]) -> None:
    from unidesk.core.settings import Settings

    env = config["services"]["server"]["environment"]
    known = {f"UNIDESK_{f.upper()}" for f in Settings.__struct_fields__} | {"UNIDESK_GIT_COMMIT"}
    assert set(env) <= known, set(env) - known
    assert (
        env["UNIDESK_BACKUP_DAILY_AT"]
        and env["UNIDESK_BACKUP_DIR"] == "/backups"
        and env["UNIDESK_BACKUP_KEEP"] == "7"
    )
    assert (
        env["UNIDESK_DATABASE_URL"].startswith("postgresql://unidesk:")
        and "@postgres:5432/" in env["UNIDESK_DATABASE_URL"]
    )


def test_agent_service(config: dict[str, Any]) -> None:
    from unidesk.gateway_agent.config import ENV_PREFIX, AgentConfig

    agent = config["services"]["agent"]
    assert ("/var/run/docker.sock", "/var/run/docker.sock") in mounts(agent)
    cache = agent["environment"]["UNIDESK_AGENT_CACHE_DIR"].rsplit("/", 1)[0]
    assert (cache, cache) in mounts(
        agent
    )  # the same path inside and out: Docker bind mounts resolve on the host
    known = {ENV_PREFIX + f.upper() for f in AgentConfig.__struct_fields__} | {
        ENV_PREFIX + "CONFIG"
    }
    assert set(agent["environment"]) <= known
    toml = tomllib.loads((COMPOSE / "agent.toml").read_text())
    AgentConfig(**toml)  # the shipped agent config is valid


def test_images_are_tagged_with_the_package_version(config: dict[str, Any]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == unidesk.__version__
    assert config["services"]["server"]["image"] == f"unidesk/server:{version}"
    assert config["services"]["agent"]["image"] == f"unidesk/agent:{version}"
    for name in ("Dockerfile.server", "Dockerfile.agent"):
        text = (COMPOSE / name).read_text()
        assert (
            f"ARG UNIDESK_VERSION={version}" in text and "org.opencontainers.image.version" in text
        )
        users = [ln.split()[1] for ln in text.splitlines() if ln.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), name


def test_s3_store_is_an_optional_profile(config: dict[str, Any]) -> None:
    assert config["services"]["minio"]["profiles"] == ["s3"]  # started only with --profile s3
    done = subprocess.run(
        [
            shutil.which("docker-compose") or "docker-compose",
            "-f",
            str(COMPOSE / "docker-compose.yml"),
            "--env-file",
            str(COMPOSE / ".env.example"),
            "--profile",
            "s3",
            "config",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    minio = yaml.safe_load(done.stdout)["services"]["minio"]
    assert set(minio["networks"]) == {"internal"} and not minio.get("ports")


def test_missing_secret_fails_with_its_name(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "\n".join(
            ln
            for ln in (COMPOSE / ".env.example").read_text().splitlines()
            if not ln.startswith("POSTGRES_PASSWORD=")
        )
        + "\n"
    )
    done = compose_config(env)
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr


def test_entry_points_run() -> None:
    """What the images' ENTRYPOINTs run, started the same way the console scripts do."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("Dockerfile.server", "Dockerfile.agent"):
        entry = next(
            ln for ln in (COMPOSE / name).read_text().splitlines() if ln.startswith("ENTRYPOINT")
        )
        assert entry.split('"')[1] in scripts
    server = subprocess.run(
        [sys.executable, "-m", "unidesk.core.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 0 and "backup" in server.stdout and "restore" in server.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    agent = subprocess.run(
        [sys.executable, "-m", "unidesk.gateway_agent.cli", "--print-resources"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "UNIDESK_AGENT_HOST_ROOT": "/nonexistent"},
    )
    assert agent.returncode == 0 and '"runtimes": [\n    "docker"\n  ]' in agent.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "unidesk.gateway_agent.cli",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "UNIDESK_AGENT_SSH_HOST": "127.0.0.1"},
    )
    assert (
        bad.returncode == 78 and "ssh_user" in bad.stderr
    )  # half-configured host.ssh is refused at start
