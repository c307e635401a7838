"""Server settings: one msgspec Struct, loaded from defaults, a TOML file, then UNIDESK_* env
vars. Plugins declare theirs through ``unidesk_settings``; their raw values ride along here
(``plugin_values``, ``plugin_env``) and are validated once the plugins are loaded."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from unidesk.core.plugins.manager import installed_plugin_names
from unidesk.errors import BadRequest

__all__ = ["PLUGIN_VALUE_FIELDS", "Settings", "load_settings", "settings_reference"]

Doc = msgspec.Meta
PLUGIN_VALUE_FIELDS = ("plugin_values", "plugin_env")
"""Settings fields that carry plugin settings' raw values (not settings themselves)."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every server setting. Env var: ``UNIDESK_<NAME upper-cased>``; TOML key: ``<name>``."""

    data_dir: Annotated[
        str, Doc(description="Where the server keeps its embedded database, files and backups.")
    ] = ".unidesk"
    host: Annotated[str, Doc(description="Address the HTTP server binds to.")] = "127.0.0.1"
    port: Annotated[int, Doc(description="TCP port the HTTP server binds to.", ge=0, le=65535)] = (
        8080
    )
    public_url: Annotated[
        str | None,
        Doc(
            description="URL people and agents use to reach this server (defaults to http://host:port)."
        ),
    ] = None
    database_url: Annotated[
        str | None,
        Doc(description="PostgreSQL URL; unset starts an embedded PostgreSQL in <data_dir>/pg."),
    ] = None
    db_pool_size: Annotated[
        int, Doc(description="SQLAlchemy connection pool size per server process.", ge=1, le=200)
    ] = 10
    auth_cache_s: Annotated[
        float,
        Doc(
            description="Seconds a server process keeps a resolved token -> user; a revocation "
            "made on another process is effective within this bound (0 disables the cache).",
            ge=0,
            le=60,
        ),
    ] = 5.0
    event_stream_keepalive_s: Annotated[
        float,
        Doc(
            description="Seconds between keepalive comments on a quiet live event stream "
            "(/api/events/stream); the browser marks the stream stale after missing about two.",
            ge=0.5,
            le=60,
        ),
    ] = 2.0
    heartbeat_interval_s: Annotated[
        float, Doc(description="Seconds between agent heartbeats.", gt=0)
    ] = 15.0
    offline_timeout_s: Annotated[
        float, Doc(description="Seconds without a heartbeat before a node is marked offline.", gt=0)
    ] = 90.0
    dispatch_ack_timeout_s: Annotated[
        float,
        Doc(description="Seconds to wait for an agent's ack before redelivering a dispatch.", gt=0),
    ] = 10.0
    ingress_max_waiting: Annotated[
        int,
        Doc(
            description="Agent sockets that may wait for registration at once; past this a new "
            "one is refused before the upgrade with HTTP 503 and a Retry-After slot after the "
            "backlog (agents honour it). Sized to drain within the agents' 30 s welcome timeout "
            "at ~500 registrations/s; refusing is not free, so a low bound costs more than the "
            "queue it saves.",
            ge=0,
        ),
    ] = 10000
    admin_username: Annotated[
        str, Doc(description="Username of the first admin created on first start.")
    ] = "admin"
    admin_password: Annotated[
        str | None,
        Doc(
            description="If set and no admin exists, the first start creates one with this "
            "password."
        ),
    ] = None
    session_ttl_s: Annotated[
        int, Doc(description="Lifetime of a browser login session in seconds.", ge=60)
    ] = 7 * 24 * 3600
    secure_cookies: Annotated[
        bool, Doc(description="Mark the session cookie Secure (set when served over HTTPS).")
    ] = False
    login_max_failures: Annotated[
        int,
        Doc(description="Failed logins allowed per client within login_window_s before 429.", ge=1),
    ] = 10
    login_window_s: Annotated[
        int, Doc(description="Window for counting failed logins, seconds.", ge=1)
    ] = 300
    allow_file_urls: Annotated[
        bool,
        Doc(
            description="Accept file:// repository URLs in task submissions and in "
            "POST /api/git/resolve (tests and single-machine setups)."
        ),
    ] = False
    git_resolve_private_hosts: Annotated[
        bool,
        Doc(
            description="Let POST /api/git/resolve read repositories on loopback, private and "
            "link-local addresses (off: public hosts only, so members cannot probe the "
            "server's network)."
        ),
    ] = False
    git_resolve_timeout_s: Annotated[
        float,
        Doc(description="How long POST /api/git/resolve waits for git ls-remote.", gt=0, le=60),
    ] = 10.0
    git_resolve_per_user: Annotated[
        int,
        Doc(
            description="POST /api/git/resolve calls (each runs git against a remote) allowed "
            "per user within git_resolve_window_s before 429, per server process.",
            ge=1,
        ),
    ] = 30
    git_resolve_window_s: Annotated[
        int, Doc(description="Window for counting git resolves per user, seconds.", ge=1)
    ] = 60
    max_task_pids_limit: Annotated[
        int,
        Doc(
            description=(
                "Largest process limit a task may ask for (resources.pids_limit); "
                "tasks that ask for none get the node's default (256)."
            ),
            ge=16,
            le=4_194_304,
        ),
    ] = 4096
    secret_env_patterns: Annotated[
        str,
        Doc(
            description="Comma-separated globs (case-insensitive) of task env names refused at "
            "submit as secret-looking; use secrets instead."
        ),
    ] = "*_KEY,*_TOKEN,*_SECRET,*PASSWORD*,AWS_*"
    trusted_origins: Annotated[
        str,
        Doc(
            description="Comma-separated extra origins (scheme://host[:port]) whose "
            "cookie-authenticated unsafe requests are accepted besides the server's own."
        ),
    ] = ""
    max_request_bytes: Annotated[
        int, Doc(description="Largest accepted request body for JSON API calls, bytes.", ge=1024)
    ] = 1_048_576
    local_agent: Annotated[
        bool, Doc(description="Start a local agent so the main server is also a compute node.")
    ] = True
    local_agent_runner: Annotated[
        Literal["docker", "subprocess-test"],
        Doc(description="Runner of the local agent; subprocess-test exists only for tests."),
    ] = "docker"
    local_agent_network_mode: Annotated[
        Literal["none", "host"],
        Doc(description="Container network mode of the local agent's tasks."),
    ] = "none"
    local_agent_labels: Annotated[
        dict[str, str], Doc(description="Labels declared by the local agent.")
    ] = {}
    plugins: Annotated[
        str, Doc(description="Plugins to load: 'all', 'none', or a comma-separated list of names.")
    ] = "all"
    scheduler_batch: Annotated[
        int,
        Doc(description="Most tasks one scheduling pass assigns (passes repeat while full).", ge=1),
    ] = 500
    fairshare_half_life_h: Annotated[
        float,
        Doc(
            description="Half-life of past usage in the fair-share ranking, hours.",
            gt=0,
        ),
    ] = 24.0
    fairshare_gpu_weight: Annotated[
        float,
        Doc(description="Fair-share charge of one GPU-hour, in CPU-hours.", ge=0),
    ] = 10.0
    fairshare_memory_gb_weight: Annotated[
        float,
        Doc(description="Fair-share charge of one GiB-hour of memory, in CPU-hours.", ge=0),
    ] = 0.1
    max_member_priority: Annotated[
        int,
        Doc(
            description="Highest task priority a member may set; above it needs an admin (403).",
            ge=-1000,
            le=1000,
        ),
    ] = 100
    retry_backoff_base_s: Annotated[
        float,
        Doc(
            description="Delay before the first automatic retry, seconds; doubles per attempt.",
            ge=0,
        ),
    ] = 10.0
    retry_backoff_cap_s: Annotated[
        float, Doc(description="Longest delay before an automatic retry, seconds.", ge=0)
    ] = 600.0
    log_format: Annotated[
        Literal["auto", "json", "console"],
        Doc(description="Log rendering: JSON lines, console, or auto (console on a TTY)."),
    ] = "auto"
    log_level: Annotated[str, Doc(description="Minimum log level.")] = "info"
    max_log_bytes_per_attempt: Annotated[
        int, Doc(description="Log bytes stored per attempt before truncation.", ge=1024)
    ] = 64 * 1024 * 1024
    backup_dir: Annotated[
        str,
        Doc(
            description="Directory of pg_dump snapshots; empty means <data_dir>/backups "
            "(created); a configured one must exist."
        ),
    ] = ""
    backup_keep: Annotated[
        int,
        Doc(
            description="Daily retention: keep the newest daily snapshot of each of this many "
            "most recent Beijing calendar days that have one.",
            ge=1,
            le=1000,
        ),
    ] = 7
    backup_keep_manual: Annotated[
        int,
        Doc(
            description="Manual (on-demand) snapshots kept besides the dailies, newest first; "
            "pruned separately from them.",
            ge=0,
            le=1000,
        ),
    ] = 3
    backup_daily_at: Annotated[
        str,
        Doc(
            description="UTC time 'HH:MM' of the daily backup (default 19:00 = 03:00 Beijing); "
            "empty turns the schedule off.",
            pattern=r"^$|^([01]\d|2[0-3]):[0-5]\d$",
        ),
    ] = "19:00"
    backup_globals: Annotated[
        bool,
        Doc(
            description="Also dump roles and tablespaces (pg_dumpall --globals-only) beside each "
            "snapshot."
        ),
    ] = True
    backup_timeout_s: Annotated[
        float, Doc(description="Upper bound of one pg_dump or restore run, seconds.", gt=0)
    ] = 3600.0
    secrets_key_file: Annotated[
        str,
        Doc(
            description="AES key file of the secret store (mode 0600, made on first start); unset "
            "means <data_dir>/secrets.key. Not in any pg_dump: back it up separately; losing it "
            "makes every secret unreadable."
        ),
    ] = ""
    storage_backend: Annotated[
        Literal["local", "s3"],
        Doc(
            description="Object store of artifacts: 'local' (files under storage_dir, served by "
            "this server) or 's3'."
        ),
    ] = "local"
    storage_dir: Annotated[
        str | None,
        Doc(description="Directory of the local object store; unset means <data_dir>/files."),
    ] = None
    storage_signing_key: Annotated[
        str | None,
        Doc(
            description="HMAC key of local presigned URLs (same on every instance); unset: "
            "generated in <data_dir>/storage/signing.key."
        ),
    ] = None
    storage_url_ttl_s: Annotated[
        int,
        Doc(
            description="Lifetime of presigned upload/download URLs handed to people and nodes, "
            "seconds.",
            ge=10,
            le=7 * 24 * 3600,
        ),
    ] = 900
    storage_max_upload_bytes: Annotated[
        int,
        Doc(
            description="Largest artifact accepted, bytes (the per-route body limit of uploads).",
            ge=1,
        ),
    ] = 1 << 40
    s3_bucket: Annotated[str, Doc(description="Bucket of the s3 backend.")] = "unidesk"
    s3_endpoint_url: Annotated[
        str | None,
        Doc(
            description="Endpoint of the S3-compatible service (MinIO, Ceph RGW); unset means AWS."
        ),
    ] = None
    s3_region: Annotated[str, Doc(description="Region of the s3 backend.")] = "us-east-1"
    s3_access_key_id: Annotated[
        str | None,
        Doc(description="Access key of the s3 backend; unset uses boto3's usual credential chain."),
    ] = None
    s3_secret_access_key: Annotated[
        str | None, Doc(description="Secret key of the s3 backend.")
    ] = None
    s3_multipart_threshold_bytes: Annotated[
        int,
        Doc(
            description="Objects larger than this are uploaded to s3 in parts (resumable).",
            ge=5 * 1024 * 1024,
        ),
    ] = 64 * 1024 * 1024
    s3_part_size_bytes: Annotated[
        int,
        Doc(
            description="Part size of s3 multipart uploads (S3 needs at least 5 MiB).",
            ge=5 * 1024 * 1024,
        ),
    ] = 64 * 1024 * 1024

    plugin_values: dict[str, Any] = {}
    """``<plugin>_<field>`` keys of the TOML file (and explicit overrides) naming an installed
    plugin; validated by that plugin's ``unidesk_settings`` struct when it loads."""
    plugin_env: dict[str, str] = {}
    """The same from ``UNIDESK_<PLUGIN>_<FIELD>`` env vars (lower-cased, prefix dropped); they
    win over ``plugin_values``."""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.__struct_fields__:
        if name in PLUGIN_VALUE_FIELDS:
            continue
        raw = environ.get(f"UNIDESK_{name.upper()}")
        if raw is None:
            continue
        if name == "local_agent_labels":
            out[name] = dict(p.split("=", 1) for p in raw.split(",") if "=" in p)
        else:
            out[name] = raw
    return out


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings: defaults, then the TOML file, then env vars, then explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or environ.get("UNIDESK_CONFIG")
    if config_file:
        with open(config_file, "rb") as fh:
            values.update(tomllib.load(fh))
    values.update(_env_overrides(environ))
    values.update(overrides)
    prefixes = tuple(f"{name}_" for name in installed_plugin_names())
    values["plugin_values"] = {
        k: values.pop(k)
        for k in list(values)
        if k not in Settings.__struct_fields__ and k.startswith(prefixes)
    }
    values["plugin_env"] = {
        key: raw
        for name, raw in environ.items()
        if name.startswith("UNIDESK_")
        and (key := name.removeprefix("UNIDESK_").lower()).startswith(prefixes)
    }
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid setting: {exc}") from None


def settings_reference(plugins: Sequence[tuple[str, type[msgspec.Struct]]] = ()) -> str:
    """Markdown table of every setting with its default and description: the core's, then
    each ``(plugin name, settings struct)`` of ``plugins`` (keys ``<plugin>_<field>``)."""
    rows = ["| setting | env var | default | description |", "|---|---|---|---|"]
    rows += _rows(Settings, "")
    for name, struct in plugins:
        rows += _rows(struct, f"{name}_")
    return "\n".join(rows)


def _rows(struct: type[msgspec.Struct], prefix: str) -> list[str]:
    rows = []
    for field in msgspec.structs.fields(struct):
        if field.name in PLUGIN_VALUE_FIELDS:
            continue
        key = prefix + field.name
        meta = next(
            (m for m in getattr(field.type, "__metadata__", ()) if isinstance(m, msgspec.Meta)),
            None,
        )
        default = (
            field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
        )
        rows.append(
            f"| `{key}` | `UNIDESK_{key.upper()}` | `{default!r}` | "
            f"{meta.description if meta else ''} |"
        )
    return rows
