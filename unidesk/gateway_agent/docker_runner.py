"""``DockerRunner``: runs an attempt as a container on the local Docker Engine (aiodocker).

One attempt: ``fetch_code`` (git cache → fresh workspace), ``fetch_env`` (env image by tag;
``build_image`` only when it is missing), then the container (workspace at /workspace,
limits, GPUs, hardening, labels), ``running``, output streamed to the reporter, the exit
code. Timeout and cancel stop the container and the stop always ends: SIGTERM, ``stop_grace_s``,
SIGKILL (Docker's stop); if Docker does not confirm within ``stop_grace_s + docker_timeout_s``,
the container's cgroup is killed directly (``cgroup_kill.py``); if even that fails the attempt
ends as ``infra_error`` with the reason and ``health()`` reports the node unhealthy until Docker
says the container is gone. A cancel while preparing aborts the fetch or build. Afterwards the
container and workspace are removed unless ``keep_finished``. Containers carry ``unidesk.*``
labels, so a restarted agent finds its running attempts (``owned_attempts``), follows the ones
the server keeps (``adopt``) and removes the rest (``remove_orphans``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import msgspec

from unidesk.background import TaskSet
from unidesk.gateway_agent.caches import CacheKeeper, CacheUses
from unidesk.gateway_agent.cgroup_kill import CgroupKillFailed, kill_cgroup
from unidesk.gateway_agent.confine import (
    Beneath,
    WorkspaceEscape,
    chown_tree,
    ensure_dir,
    refuse_symlinks_on,
)
from unidesk.gateway_agent.container_spec import (
    LABEL_OUTPUTS,
    LABEL_TIMEOUT,
    container_config,
    container_name,
    numeric_user,
    owner_labels,
    ref_from_labels,
)
from unidesk.gateway_agent.datafeed import (
    METRICS_CHANNEL,
    METRICS_IN_WORKSPACE,
    METRICS_PATH_IN_CONTAINER,
    drain_data,
    watch_data,
)
from unidesk.gateway_agent.docker_logs import follow_logs, parse_docker_ts
from unidesk.gateway_agent.envbuild import EnvBuilder
from unidesk.gateway_agent.exec_config import ExecConfig
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.gitcache import GitAuth, GitCache
from unidesk.gateway_agent.hostmounts import DATA_DIR_IN_CONTAINER, declared_mounts, host_binds
from unidesk.gateway_agent.images import ImageLedger
from unidesk.gateway_agent.keyed_lock import KeyedLock
from unidesk.gateway_agent.logcap import CappedReporter
from unidesk.gateway_agent.runner import Outcome, Reporter, StopReason
from unidesk.gateway_agent.transfer import Transfer, TransferFailed
from unidesk.gateway_agent.workspace import Workspaces, attempt_name
from unidesk.protocol import AttemptRef, Dispatch, EndReason, FileOutput

__all__ = ["DockerRunner"]

log = logging.getLogger(__name__)

_STOP_OUTCOME: dict[StopReason, EndReason] = {
    "cancelled": "cancelled",
    "timed_out": "timed_out",
    "reconcile": "killed",
    "shutdown": "killed",
    "fenced": "killed",
}
_NOT_FOUND = ("executable file not found", "no such file or directory")
_CGROUP_KILL_WAIT_S = 10.0
"""How long the processes of a cgroup kill may take to be gone."""
_LOG_DRAIN_S = 30.0
"""After the container ended, how long the rest of its log (Docker serves a few MB/s) may take."""
_CONFIRM_AFTER_KILL_S = 5.0
"""After a cgroup kill, how long Docker may take to report the exit before the attempt ends."""


class _Attempt:
    def __init__(self, ref: AttemptRef) -> None:
        self.ref = ref
        self.stop_reason: StopReason | None = None
        self.prepare: asyncio.Task[Any] | None = None
        self.container: aiodocker.containers.DockerContainer | None = None
        self.done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.image: str | None = None
        self.binds: list[str] = []
        self.timings: dict[str, float] = {}
        self.stderr_head = bytearray()
        self.reporter: CappedReporter | None = None
        self.pid: int | None = None
        """The container's main process (host pid namespace), for the cgroup kill."""
        self.stopping: asyncio.Task[None] | None = None
        self.forced_end = asyncio.Event()
        """Set when a stop went past Docker: the cgroup kill ended it (``forced``) or failed."""
        self.forced: str | None = None
        self.stop_failure: str | None = None


def _label_outputs(labels: dict[str, str]) -> list[FileOutput]:
    """The output patterns a container was created with (``LABEL_OUTPUTS``); none when it has
    no such label or it does not parse."""
    try:
        return msgspec.json.decode(labels.get(LABEL_OUTPUTS) or "[]", type=list[FileOutput])
    except msgspec.DecodeError:
        return []


class DockerRunner:
    """The production ``Runner``. One instance per agent process."""

    def __init__(
        self,
        config: ExecConfig,
        *,
        node_name: str,
        docker: aiodocker.Docker | None = None,
        transfer: Transfer | None = None,
    ) -> None:
        self.config = config
        self.transfer = transfer
        """Input downloads and output uploads (``transfer.py``); None refuses tasks that declare
        files."""
        self.node = node_name
        self._docker = docker
        self._owns_docker = docker is None
        self.uses = CacheUses()
        self.git = GitCache(config, self.uses)
        self.ledger = ImageLedger(config.cache_path)
        if transfer is not None:
            transfer.uses = self.uses
        self.caches = CacheKeeper(
            config.cache_path,
            uses=self.uses,
            git_locks=self.git.locks,
            input_locks=transfer.locks
            if transfer is not None
            else KeyedLock(config.cache_path / "files" / "locks"),
            ledger=self.ledger,
            git_cap_mb=config.git_cache_mb,
            input_cap_mb=config.input_cache_mb,
            image_cap_mb=config.image_budget_mb,
        )
        self.envs = EnvBuilder(config, self.git, self.ledger)
        self.workspaces = Workspaces(config)
        self.host_mounts = declared_mounts(config.host_mounts, config.host_root)
        """Named host directories of this node (checked at start; ``hostmounts.py``)."""
        self._active: dict[AttemptRef, _Attempt] = {}
        self._background = TaskSet()
        self._unstoppable: dict[str, str] = {}
        """Containers a stop could not end (id → reason): the node is unhealthy while any is."""

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self.config.docker_url)
        return self._docker

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        if self._docker is not None and self._owns_docker:
            await self._docker.close()
            self._docker = None
        if self.transfer is not None:
            await self.transfer.close()

    # -- Runner -------------------------------------------------------------------------

    async def run(self, dispatch: Dispatch, reporter: Reporter) -> Outcome:
        ref = AttemptRef(dispatch.task_id, dispatch.attempt_no)
        if ref in self._active:  # a redelivered dispatch: the attempt runs once
            return await asyncio.shield(self._active[ref].done)
        attempt = _Attempt(ref)
        self._active[ref] = attempt
        capped = CappedReporter(reporter, self.config.log_cap_bytes)
        attempt.reporter = capped
        abandoned = False
        try:
            outcome = await self._run(dispatch, attempt, capped)
        except WorkspaceEscape as exc:  # the task's doing, not the node's: no retry elsewhere
            capped.system(exc.detail)
            outcome = Outcome(reason="exit_nonzero", message=exc.detail)
        except PrepareFailed as exc:
            capped.system(exc.detail)
            outcome = Outcome(reason="infra_error", message=exc.detail)
        except aiodocker.DockerError as exc:
            outcome = Outcome(reason="infra_error", message=f"docker: {exc.message}")
        except (aiohttp.ClientError, OSError) as exc:
            outcome = Outcome(reason="infra_error", message=f"docker unreachable: {exc}")
        except asyncio.CancelledError:
            if attempt.stop_reason is None or _cancelling():
                # the agent itself is going away: leave the container for a restarted agent
                # to adopt or remove (reconcile), and do not report an outcome
                abandoned = True
                attempt.done.cancel()
                raise
            outcome = Outcome(
                reason=_STOP_OUTCOME[attempt.stop_reason],
                message=f"stopped while preparing ({attempt.stop_reason})",
            )
        finally:
            if not abandoned:
                await drain_data(capped)
                await self._cleanup(attempt)
            del self._active[ref]
            self.uses.release(ref)
        if capped.truncated:
            capped.system(f"{capped.dropped} bytes of output were discarded")
        attempt.done.set_result(outcome)
        return outcome

    async def stop(self, ref: AttemptRef, reason: StopReason) -> None:
        attempt = self._active.get(ref)
        if attempt is None:
            await self._remove_container(container_name(ref), force=True)
            return
        if attempt.stop_reason is None:
            attempt.stop_reason = reason
        if attempt.container is None:
            if attempt.prepare is not None and not attempt.prepare.done():
                attempt.prepare.cancel()
            return
        await self._stop_container(attempt)

    async def owned_attempts(self) -> list[AttemptRef]:
        refs = set(self._active)
        for container in await self._ours(all_states=False):
            ref = ref_from_labels(container["Labels"])
            if ref is not None:
                refs.add(ref)
        return sorted(refs, key=lambda r: (r.task_id, r.attempt_no))

    async def exited_attempts(self) -> list[AttemptRef]:
        """Attempts whose labelled container has ended but is still there (it may have ended
        while no agent ran: a restarted agent adopts it to report its exit code)."""
        refs = set()
        for container in await self._ours(all_states=True):
            ref = ref_from_labels(container["Labels"])
            if ref is not None and container.get("State") == "exited":
                refs.add(ref)
        return sorted(refs, key=lambda r: (r.task_id, r.attempt_no))

    async def remove_orphans(self, keep: set[AttemptRef]) -> None:
        for ref in [r for r in self._active if r not in keep]:
            await self.stop(ref, "reconcile")
        keep_names = {attempt_name(r) for r in keep | set(self._active)}
        for container in await self._ours(all_states=True):
            labelled = ref_from_labels(container["Labels"])
            if labelled is not None and attempt_name(labelled) in keep_names:
                continue
            if self.config.keep_finished and container.get("State") == "exited":
                continue
            await self._remove_container(container["Id"], force=True)
        if not self.config.keep_finished:
            await self.workspaces.remove_except(keep_names)

    async def health(self) -> str | None:
        try:
            await asyncio.wait_for(self.docker.version(), self.config.docker_timeout_s)
        except Exception as exc:  # any failure to answer is the reason, shown to the admin
            return f"docker unreachable: {exc or type(exc).__name__}"
        for container_id in list(self._unstoppable):
            if await self._gone(container_id):
                del self._unstoppable[container_id]
        return "; ".join(self._unstoppable.values()) or None

    # -- beyond the Runner protocol --------------------------------------------------------

    async def adopt(self, ref: AttemptRef, reporter: Reporter, *, log_mark: int = 0) -> Outcome:
        """Follow a container started before this agent restarted until it ends (the server
        kept the attempt during reconcile): its output after ``log_mark`` (where the previous
        agent's logged output ended; 0: unknown, only new output), timeout, exit code,
        cleanup."""
        if ref in self._active:
            return await asyncio.shield(self._active[ref].done)
        attempt = _Attempt(ref)
        self._active[ref] = attempt
        capped = CappedReporter(reporter, self.config.log_cap_bytes)
        attempt.reporter = capped
        abandoned = False
        try:
            try:
                container = await self.docker.containers.get(container_name(ref))
            except aiodocker.DockerError:
                outcome = Outcome(
                    reason="infra_error", message="container vanished while the agent was down"
                )
            else:
                attempt.container = container
                info = container._container
                state = info["State"]
                if not state.get("Running"):
                    code = int(state.get("ExitCode", -1))
                    if log_mark:  # what it wrote after the previous agent's last read
                        await follow_logs(
                            self.docker,
                            container.id,
                            capped,
                            attempt.stderr_head,
                            after=log_mark,
                            follow=False,
                        )
                    capped.system(
                        f"the container ended while the agent was down (exit code {code})"
                    )
                    outcome = Outcome(
                        reason="succeeded" if code == 0 else "exit_nonzero", exit_code=code
                    )
                else:
                    attempt.pid = int(state.get("Pid") or 0) or None
                    started = parse_docker_ts(state.get("StartedAt", ""))
                    timeout = float(info["Config"]["Labels"].get(LABEL_TIMEOUT, "3600"))
                    remaining = max(0.0, timeout - (time.time() - started)) if started else timeout
                    outcome = await self._follow(
                        container, attempt, capped, remaining, attach_first=True, log_mark=log_mark
                    )
                outcome = await self._upload_outputs(
                    attempt, _label_outputs(info["Config"]["Labels"]), outcome, capped
                )
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            outcome = Outcome(reason="infra_error", message=f"docker unreachable: {exc}")
        except asyncio.CancelledError:
            # the agent itself is going away (exit, or replaced by another agent): the
            # container stays for whichever agent adopts it next
            abandoned = True
            attempt.done.cancel()
            raise
        finally:
            if not abandoned:
                await self._cleanup(attempt)
            del self._active[ref]
            self.uses.release(ref)
        attempt.done.set_result(outcome)
        return outcome

    async def evict_caches(self, *, clear: bool = False) -> dict[str, list[str]]:
        """Fit the git, input and env image caches to their caps (``clear``: empty them), never
        removing what a running attempt uses (``caches.py``)."""
        protect = [a.image for a in self._active.values() if a.image]
        return await self.caches.evict(self.docker, protect_images=protect, clear=clear)

    async def clear_caches(self) -> dict[str, list[str]]:
        """The admin's "clear caches": evict every entry no attempt uses."""
        return await self.evict_caches(clear=True)

    async def cache_usage(self) -> list[Any]:
        """Cache sizes for the heartbeat (measured after each eviction, else now)."""
        return self.caches.last or await self.caches.measure(self.docker)

    # -- internals ---------------------------------------------------------------------------

    async def _run(
        self, dispatch: Dispatch, attempt: _Attempt, reporter: CappedReporter
    ) -> Outcome:
        attempt.prepare = asyncio.create_task(self._prepare(dispatch, attempt, reporter))
        image = await attempt.prepare
        if attempt.stop_reason:
            raise asyncio.CancelledError
        user = await self._own_workspace(dispatch, image, self.workspaces.path(attempt.ref))
        checkout = self.workspaces.host_path(self.workspaces.path(attempt.ref))
        host = host_binds(dispatch, self.host_mounts)
        extra = [*attempt.binds, *host.binds]
        if host.workspace_source is not None:  # a host workspace: the checkout goes to /code
            metrics_dir = METRICS_IN_WORKSPACE.rsplit("/", 1)[0]
            data = self.workspaces.host_path(self.workspaces.path(attempt.ref) / metrics_dir)
            extra += [f"{checkout}:/code:ro", f"{data}:{DATA_DIR_IN_CONTAINER}:rw"]
        body = container_config(
            dispatch,
            image=image,
            config=self.config,
            node=self.node,
            workspace_source=host.workspace_source or checkout,
            extra_binds=extra,
            user=user,
            workspace_read_only=host.workspace_read_only,
            metrics_path=(
                f"{DATA_DIR_IN_CONTAINER}/metrics.jsonl"
                if host.workspace_source is not None
                else METRICS_PATH_IN_CONTAINER
            ),
        )
        container = await self.docker.containers.create(body, name=container_name(attempt.ref))
        attempt.container = container
        outcome = await self._follow(
            container,
            attempt,
            reporter,
            float(dispatch.timeout_s),
            attach_first=False,
            command=dispatch.command,
            image=image,
        )
        return await self._upload_outputs(attempt, dispatch.outputs, outcome, reporter)

    async def _upload_outputs(
        self,
        attempt: _Attempt,
        outputs: list[FileOutput],
        outcome: Outcome,
        reporter: CappedReporter,
    ) -> Outcome:
        """Upload a succeeded attempt's declared outputs; the outcome, or why they failed."""
        if not outputs or outcome.reason != "succeeded" or self.transfer is None:
            return outcome
        try:
            await self.transfer.upload_outputs(
                attempt.ref,
                Beneath(self.workspaces.path(attempt.ref), "outputs"),
                outputs,
                reporter.system,
            )
        except WorkspaceEscape as exc:
            reporter.system(exc.detail)
            return Outcome(reason="exit_nonzero", exit_code=outcome.exit_code, message=exc.detail)
        except TransferFailed as exc:
            reporter.system(exc.detail)
            return Outcome(reason="infra_error", exit_code=outcome.exit_code, message=exc.detail)
        return outcome

    async def _prepare(
        self, dispatch: Dispatch, attempt: _Attempt, reporter: CappedReporter
    ) -> str:
        t0 = time.monotonic()
        await reporter.stage("fetch_code")
        workspace = self.workspaces.create(attempt.ref)
        watch_data(reporter, METRICS_CHANNEL, Beneath(workspace, METRICS_IN_WORKSPACE))
        downloads = self.transfer.downloads if self.transfer is not None else 0
        code = await self.git.ensure_commit(
            dispatch.code_repo_url,
            dispatch.code_commit_id,
            GitAuth(dispatch.code_repo_credential, dispatch.git_known_hosts),
            owner=attempt.ref,
        )
        await self.git.checkout(dispatch.code_repo_url, dispatch.code_commit_id, workspace)
        # from here on the tree is the task's: every path is confined (confine.py)
        ensure_dir(workspace, METRICS_IN_WORKSPACE.rsplit("/", 1)[0])
        if dispatch.inputs or dispatch.outputs:
            await self._prepare_files(dispatch, attempt, workspace, reporter)
        t1 = time.monotonic()
        await reporter.stage("fetch_env")
        env = await self.envs.ensure_image(
            self.docker,
            dispatch.env_repo_url,
            dispatch.env_commit_id,
            dispatch.dockerfile_path,
            reporter,
            auth=GitAuth(dispatch.env_repo_credential, dispatch.git_known_hosts),
            registry_auth=dispatch.registry_auth,
        )
        attempt.image = env.tag
        attempt.timings.update(fetch_code=t1 - t0, env_image=time.monotonic() - t1)
        reporter.system(f"env image {env.tag} " + ("built" if env.built else "reused (no build)"))
        grew = self.transfer is not None and self.transfer.downloads != downloads
        if env.built or code.fetched or grew:  # a cache grew: fit them to their caps
            self._background.spawn(self.evict_caches(), name="evict-caches")
        return env.tag

    async def _prepare_files(
        self, dispatch: Dispatch, attempt: _Attempt, workspace: Any, reporter: CappedReporter
    ) -> None:
        """Inputs fetched (or found in the cache) and bound read-only; an empty outputs dir."""
        if self.transfer is None:
            raise PrepareFailed(
                "this agent has no file transfer configured; it cannot run tasks with "
                "inputs/outputs"
            )
        for item in dispatch.inputs:  # a mount point inside the checkout: never via a symlink
            if item.path.startswith("/workspace/"):
                refuse_symlinks_on(workspace, item.path.removeprefix("/workspace/"))
        if dispatch.inputs:
            await reporter.stage("fetch_inputs")
            for cached, target in await self.transfer.fetch_inputs(
                dispatch.inputs, reporter.system, owner=attempt.ref
            ):
                attempt.binds.append(f"{self.config.host_path(cached)}:{target}:ro")
        if dispatch.outputs:
            ensure_dir(workspace, "outputs")

    async def _own_workspace(self, dispatch: Dispatch, image: str, workspace: Path) -> str:
        """The user the container runs as, and the workspace given to it.

        An env image that declares ``USER`` runs as that user (the env chose it explicitly);
        otherwise the agent's ``container_user`` (non-root by default). When the user is
        numeric (or ``root``) and the agent may chown, the whole workspace is handed to it
        without following a symlink; otherwise its top directories are made writable by all."""
        info = await self.docker.images.inspect(image)
        user = str((info.get("Config") or {}).get("User") or "") or self.config.container_user
        owner = numeric_user(user)
        me = os.geteuid()
        if owner is not None and (me == 0 or me == owner[0]):
            if owner[0] != me:
                await asyncio.to_thread(chown_tree, workspace, owner)
            os.chmod(workspace, 0o755)
        else:
            for rel in (".", METRICS_IN_WORKSPACE.rsplit("/", 1)[0], "outputs"):
                if rel == "outputs" and not dispatch.outputs:
                    continue
                ensure_dir(workspace, rel, mode=0o777)
        return user

    async def _follow(
        self,
        container: aiodocker.containers.DockerContainer,
        attempt: _Attempt,
        reporter: CappedReporter,
        timeout_s: float,
        *,
        attach_first: bool,
        log_mark: int = 0,
        command: list[str] | None = None,
        image: str | None = None,
    ) -> Outcome:
        # adopted: after the previous agent's last logged line, else only what is new
        since = time.time() if attach_first and not log_mark else 0.0
        if not attach_first:
            try:
                await container.start()
            except aiodocker.DockerError as exc:
                if any(s in str(exc.message) for s in _NOT_FOUND) and command:
                    message = f"command {command[0]!r} not found in image {image}"
                    reporter.system(message)
                    return Outcome(reason="exit_nonzero", exit_code=127, message=message)
                raise
            attempt.timings["started_at"] = time.monotonic()
            attempt.pid = await self._main_pid(container)
            await reporter.running()
        if attempt.stop_reason:
            await self._stop_container(attempt)
        pump = asyncio.create_task(
            follow_logs(
                self.docker,
                container.id,
                reporter,
                attempt.stderr_head,
                since=since,
                after=log_mark,
            )
        )
        waiter = asyncio.create_task(container.wait())
        forced = asyncio.create_task(attempt.forced_end.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, forced}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                if attempt.stop_reason is None:
                    attempt.stop_reason = "timed_out"
                    reporter.system(f"timeout of {timeout_s:.0f} s reached; stopping the container")
                await self._stop_container(attempt)
            if attempt.forced_end.is_set():  # past Docker: its exit report is a bonus
                await asyncio.wait({waiter}, timeout=_CONFIRM_AFTER_KILL_S)
            result = await waiter if waiter.done() or not attempt.forced_end.is_set() else {}
        finally:
            waiter.cancel()
            forced.cancel()
            try:
                await asyncio.wait_for(pump, 1 if attempt.forced_end.is_set() else _LOG_DRAIN_S)
            except (TimeoutError, asyncio.CancelledError):
                pump.cancel()
            except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
                log.warning("reading the output of %s: %s", container.id[:12], exc)
                reporter.system(f"the container's output could not be read to its end: {exc}")
        if attempt.stop_failure:
            return Outcome(reason="infra_error", message=attempt.stop_failure)
        code = int(result.get("StatusCode", 137 if attempt.forced else -1))
        if attempt.stop_reason:
            how = f"; {attempt.forced}" if attempt.forced else ""
            return Outcome(
                reason=_STOP_OUTCOME[attempt.stop_reason],
                exit_code=code,
                message=f"stopped ({attempt.stop_reason}){how}",
            )
        if code == 0:
            return Outcome(reason="succeeded", exit_code=0)
        if code == 127 and command and f"exec {command[0]} failed".encode() in attempt.stderr_head:
            # docker-init (the container's PID 1) could not exec the command
            message = f"command {command[0]!r} not found in image {image}"
            reporter.system(message)
            return Outcome(reason="exit_nonzero", exit_code=127, message=message)
        state = (await container.show()).get("State", {})
        if state.get("OOMKilled"):
            return Outcome(reason="exit_nonzero", exit_code=code, message="killed: out of memory")
        return Outcome(reason="exit_nonzero", exit_code=code)

    async def _stop_container(self, attempt: _Attempt) -> None:
        """Stop the attempt's container; one escalation per attempt, whoever asks (timeout,
        cancel, reconcile, shutdown) waits for the same one."""
        if attempt.stopping is None:
            attempt.stopping = asyncio.create_task(self._escalate(attempt))
        await asyncio.shield(attempt.stopping)

    async def _escalate(self, attempt: _Attempt) -> None:
        """SIGTERM, grace, SIGKILL (Docker's stop); if Docker does not confirm: the cgroup kill;
        if that fails: ``stop_failure`` (the attempt ends as infra_error, the node unhealthy)."""
        container = attempt.container
        assert container is not None
        grace = self.config.stop_grace_s
        bound = grace + self.config.docker_timeout_s
        try:
            await asyncio.wait_for(container.stop(t=grace, timeout=bound), bound + 1)
            return  # Docker confirms: the container has exited
        except aiodocker.DockerError as exc:
            if exc.status in (304, 404):
                return  # already stopped, or gone
            problem = f"Docker's stop failed: {exc.message}"
        except TimeoutError:
            problem = f"Docker's stop was not confirmed within {bound:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            problem = f"Docker's stop failed: {exc or type(exc).__name__}"
        name = attempt_name(attempt.ref)
        log.warning("stopping %s (%s): %s; killing its cgroup", name, container.id[:12], problem)
        try:
            how = await kill_cgroup(
                self.config.cgroup_path, container.id, attempt.pid, wait_s=_CGROUP_KILL_WAIT_S
            )
        except CgroupKillFailed as exc:
            reason = f"could not stop the container of {name}: {problem}; cgroup kill failed: {exc}"
            log.error("%s", reason)
            attempt.stop_failure = reason
            self._unstoppable[container.id] = reason
            if attempt.reporter is not None:
                attempt.reporter.system(reason)
        else:
            attempt.forced = f"{problem}; killed through the container's cgroup ({how})"
            log.warning("%s: %s", name, attempt.forced)
            if attempt.reporter is not None:
                attempt.reporter.system(attempt.forced)
        attempt.forced_end.set()

    async def _main_pid(self, container: aiodocker.containers.DockerContainer) -> int | None:
        try:
            info = await asyncio.wait_for(container.show(), self.config.docker_timeout_s)
        except (TimeoutError, aiodocker.DockerError, aiohttp.ClientError, OSError):
            return None  # the cgroup kill then finds the cgroup by Docker's layouts
        return int(info.get("State", {}).get("Pid") or 0) or None

    async def _gone(self, container_id: str) -> bool:
        """Docker says the container no longer runs (then it is removed) or no longer exists;
        while it still runs, each call asks Docker again to remove it (force)."""
        try:
            info = await asyncio.wait_for(
                self.docker.containers.container(container_id).show(), self.config.docker_timeout_s
            )
        except aiodocker.DockerError as exc:
            return exc.status == 404
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False
        if info.get("State", {}).get("Running"):
            await self._remove_container(container_id, force=True)  # try again, bounded
            return False
        if not self.config.keep_finished:
            await self._remove_container(container_id, force=True)
        return True

    async def _cleanup(self, attempt: _Attempt) -> None:
        if self.config.keep_finished:
            return
        try:
            if attempt.container is not None:
                await self._remove_container(attempt.container.id, force=True)
            await self.workspaces.remove(attempt.ref)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("cleanup of %s left something behind: %s", attempt_name(attempt.ref), exc)

    async def _remove_container(self, name_or_id: str, *, force: bool) -> None:
        container = self.docker.containers.container(name_or_id)
        try:
            await asyncio.wait_for(
                container.delete(force=force, v=True), self.config.docker_timeout_s
            )
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                log.warning("removing container %s: %s", name_or_id[:64], exc.message)
        except TimeoutError:
            log.warning("removing container %s: Docker did not answer", name_or_id[:64])

    async def _ours(self, *, all_states: bool) -> list[dict[str, Any]]:
        """This agent's labelled containers (node name and cache dir); empty (logged) when Docker
        does not answer, since ``health()`` then reports the node degraded and the next reconcile
        looks again."""
        try:
            containers = await self.docker.containers.list(
                all=all_states,
                filters={
                    "label": [f"{k}={v}" for k, v in owner_labels(self.config, self.node).items()]
                },
            )
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            log.warning("cannot list this node's containers: %s", exc)
            return []
        return [c._container for c in containers]


def _cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())
