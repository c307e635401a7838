"""Agent configuration layers: defaults < TOML < environment < flags; token never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from unidesk.gateway_agent.config import ConfigError, load_config, require_connection_settings


def test_layers_in_order(tmp_path: Path):
    toml = tmp_path / "agent.toml"
    toml.write_text(
        'server_url = "https://toml.example"\nconcurrency = 2\nnode_name = "from-toml"\n'
        '[labels]\nzone = "toml"\n'
    )
    env = {
        "UNIDESK_AGENT_CONFIG": str(toml),
        "UNIDESK_AGENT_CONCURRENCY": "3",
        "UNIDESK_AGENT_LABELS": "zone=env,gpu=a100",
        "UNIDESK_AGENT_ALLOW_FILE_URLS": "true",
    }
    config = load_config({"node_name": "from-flag", "cache_dir": None}, env=env)
    assert config.server_url == "https://toml.example"
    assert config.concurrency == 3 and config.allow_file_urls is True
    assert config.labels == {"zone": "env", "gpu": "a100"}
    assert config.node_name == "from-flag" and config.cache_dir == "~/.cache/unidesk-agent"
    assert config.ws_url == "wss://toml.example/api/agent/ws"


def test_token_file_and_redaction(tmp_path: Path):
    (tmp_path / "tok").write_text("udn_abc123\n")
    config = load_config(
        {"token_file": str(tmp_path / "tok"), "server_url": "http://127.0.0.1:1"}, env={}
    )
    assert config.token == "udn_abc123"
    assert "udn_abc123" not in repr(config) and "udn_abc123" not in str(config)
    require_connection_settings(config)


@pytest.mark.parametrize(
    "flags,env,needle",
    [
        ({"concurrency": 0}, {}, "concurrency"),
        ({}, {"UNIDESK_AGENT_CONCURENCY": "2"}, "UNIDESK_AGENT_CONCURENCY"),
        ({"network_mode": "bridge"}, {}, "network_mode"),
        ({"token_file": "/nonexistent/tok"}, {}, "token file"),
        ({}, {"UNIDESK_AGENT_LABELS": "novalue"}, "key=value"),
    ],
)
def test_bad_settings_are_refused_clearly(flags, env, needle):
    with pytest.raises(ConfigError) as info:
        load_config(flags, env=env)
    assert needle in info.value.detail


def test_connection_settings_required():
    with pytest.raises(ConfigError, match="server URL"):
        require_connection_settings(load_config({"token": "x"}, env={}))
    with pytest.raises(ConfigError, match="node token"):
        require_connection_settings(load_config({"server_url": "http://h"}, env={}))
    with pytest.raises(ConfigError, match="must start with"):
        require_connection_settings(load_config({"server_url": "h:1", "token": "x"}, env={}))
