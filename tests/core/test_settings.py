"""Settings: defaults, TOML file, env overrides in order, clear errors, the `settings` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from unidesk.core.plugins.facade import Plugins
from unidesk.core.plugins.manager import make_plugin_manager
from unidesk.core.settings import PLUGIN_VALUE_FIELDS, Settings, load_settings, settings_reference
from unidesk.errors import BadRequest


def test_defaults_match_the_design() -> None:
    s = load_settings(environ={})
    assert s.heartbeat_interval_s == 15.0
    assert s.offline_timeout_s == 90.0
    assert s.host == "127.0.0.1"
    assert s.port == 8080
    assert s.database_url is None  # embedded PostgreSQL by default
    assert s.allow_file_urls is False
    assert s.local_agent is True
    assert s.base_url == "http://127.0.0.1:8080"


def test_toml_file_then_env_then_explicit_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "unidesk.toml"
    cfg.write_text(
        'port = 9001\nhost = "127.0.0.2"\nheartbeat_interval_s = 2.5\nlocal_agent_labels = {gpu = '
        '"a100"}\n'
    )
    s = load_settings(cfg, environ={})
    assert (s.port, s.host, s.heartbeat_interval_s, s.local_agent_labels) == (
        9001,
        "127.0.0.2",
        2.5,
        {"gpu": "a100"},
    )

    env = {
        "UNIDESK_PORT": "9002",
        "UNIDESK_LOCAL_AGENT": "false",
        "UNIDESK_LOCAL_AGENT_LABELS": "zone=a,tier=gpu",
    }
    s = load_settings(cfg, environ=env)
    assert s.port == 9002, "env overrides the TOML file"
    assert s.host == "127.0.0.2", "TOML value kept where env is silent"
    assert s.local_agent is False
    assert s.local_agent_labels == {"zone": "a", "tier": "gpu"}

    s = load_settings(cfg, environ=env, port=9003)
    assert s.port == 9003, "explicit overrides (CLI flags) win over env"


def test_config_file_from_env_var(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("offline_timeout_s = 7\n")
    assert load_settings(environ={"UNIDESK_CONFIG": str(cfg)}).offline_timeout_s == 7.0


def test_public_url_overrides_base_url() -> None:
    s = load_settings(environ={"UNIDESK_PUBLIC_URL": "https://desk.example.org"})
    assert s.base_url == "https://desk.example.org"


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"UNIDESK_PORT": "eighty"}, "port"),
        ({"UNIDESK_PORT": "70000"}, "port"),
        ({"UNIDESK_HEARTBEAT_INTERVAL_S": "0"}, "heartbeat_interval_s"),
        ({"UNIDESK_LOG_FORMAT": "xml"}, "log_format"),
        ({"UNIDESK_LOCAL_AGENT": "maybe"}, "local_agent"),
    ],
)
def test_bad_env_value_is_a_clear_error(env: dict[str, str], needle: str) -> None:
    with pytest.raises(BadRequest) as exc:
        load_settings(environ=env)
    assert "invalid setting" in exc.value.detail and needle in exc.value.detail


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(BadRequest, match="prot"):
        load_settings(cfg, environ={})


def test_reference_documents_every_field() -> None:
    ref = settings_reference()
    for field in msgspec.structs.fields(Settings):
        if field.name in PLUGIN_VALUE_FIELDS:
            continue
        line = next((ln for ln in ref.splitlines() if ln.startswith(f"| `{field.name}` ")), None)
        assert line is not None, f"{field.name} missing from the reference"
        assert f"UNIDESK_{field.name.upper()}" in line
        description = line.rstrip(" |").rsplit("|", 1)[1].strip()
        assert description, f"{field.name} has no description"


def test_settings_command_prints_every_field() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "unidesk.core.cli", "settings"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    for name in Settings.__struct_fields__:
        assert (f"`{name}`" in out.stdout) != (name in PLUGIN_VALUE_FIELDS), name
    assert (
        "| `research_max_sweep_tasks` | `UNIDESK_RESEARCH_MAX_SWEEP_TASKS` | `1000` |" in out.stdout
    )


def test_bad_setting_makes_the_cli_exit_2_with_a_message() -> None:
    env = {"PATH": "/usr/bin:/bin", "UNIDESK_PORT": "nope"}
    out = subprocess.run(
        [sys.executable, "-m", "unidesk.core.cli", "settings"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2
    assert "invalid setting" in out.stderr and "port" in out.stderr
    assert "Traceback" not in out.stderr


def test_docs_settings_page_is_current() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    builtins = Plugins(make_plugin_manager("all", entry_points=False)).settings_structs()
    assert settings_reference(builtins) in page.read_text(), (
        "regenerate docs/settings.md with `unidesk-server settings`"
    )


def test_start_banner_names_the_password_file_only_when_one_was_generated(
    tmp_path: Path,
) -> None:
    """With ``UNIDESK_ADMIN_PASSWORD`` set no file is written, and the banner pointed at that
    missing file on every start; now it says the configured password is the one."""
    from unidesk.core.cli import _first_admin_password, _login_hint

    given = load_settings(environ={}, data_dir=str(tmp_path / "a"), admin_password="pw-given-1")
    hint = _login_hint(_first_admin_password(given), configured=True)
    assert "UNIDESK_ADMIN_PASSWORD" in hint and "initial-admin-password" not in hint
    assert not (tmp_path / "a" / "initial-admin-password").exists()
    fresh = load_settings(environ={}, data_dir=str(tmp_path / "b"))
    hint = _login_hint(_first_admin_password(fresh), configured=False)
    assert str(tmp_path / "b" / "initial-admin-password") in hint
    assert (tmp_path / "b" / "initial-admin-password").exists()
