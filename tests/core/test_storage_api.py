"""Artifacts API beyond the byte routes: agent output fencing, task file declarations, dispatch
URLs,
and a server restart in the middle of a resumable upload."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.core.storage_helpers import path_of, sha, upload
from unidesk import protocol
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.ingress.delivery import build_dispatch
from unidesk.core.nodes.models import NodeRow
from unidesk.core.storage.taskfiles import file_url_extender
from unidesk.core.tasks.models import AttemptRow, TaskRow

SHA = "a" * 40


def task_body(**extra):
    return {
        "code_repo_url": "file:///srv/code",
        "code_commit_id": SHA,
        "env_repo_url": "file:///srv/env",
        "env_commit_id": SHA,
        "dockerfile_path": "Dockerfile",
        "command": "true",
        **extra,
    }


async def _node(client, headers, name: str) -> tuple[uuid.UUID, str]:
    r = await client.post("/api/node-tokens", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    node_id = uuid.uuid4()
    async with client.app.state.sessions() as s:
        s.add(
            NodeRow(
                id=node_id, name=name, token_id=uuid.UUID(r.json()["token"]["id"]), state="online"
            )
        )
        await s.flush()
        await append(
            s,
            NewEvent(
                kind="node.registered", subject_type="node", subject_id=str(node_id), actor="test"
            ),
        )
        await s.commit()
    return node_id, r.json()["secret"]


async def _attempt_on(client, headers, node_id: uuid.UUID, **task) -> str:
    """A submitted task whose attempt 1 runs on ``node_id`` (as the scheduler would leave it)."""
    r = await client.post("/api/tasks", json=task_body(**task), headers=headers)
    assert r.status_code == 201, r.text
    task_id = uuid.UUID(r.json()["id"])
    async with client.app.state.sessions() as s:
        row = await s.get(TaskRow, task_id)
        row.attempt_count, row.state = 1, "running"
        s.add(
            AttemptRow(
                task_id=task_id, attempt_no=1, node_id=node_id, node_name="n", state="running"
            )
        )
        await append(
            s,
            NewEvent(
                kind="task.started", subject_type="task", subject_id=str(task_id), actor="test"
            ),
        )
        await s.commit()
    return str(task_id)


async def test_agent_gets_urls_only_for_its_own_attempts(client, admin_headers):
    _node_a, token_a = await _node(client, admin_headers, "node-a")
    node_b, token_b = await _node(client, admin_headers, "node-b")
    task_b = await _attempt_on(client, admin_headers, node_b, outputs=["model.bin"])
    data = b"weights" * 1000
    files = {"files": [{"path": "model.bin", "size": len(data), "sha256": sha(data)}]}
    url = f"/api/agent/attempts/{task_b}/1/outputs"
    r = await client.post(url, json=files, headers={"Authorization": f"Bearer {token_a}"})
    assert r.status_code == 403 and "not assigned to this node" in r.json()["detail"]
    r = await client.post(
        f"/api/agent/attempts/{task_b}/2/outputs",
        json=files,
        headers={"Authorization": f"Bearer {token_b}"},
    )
    assert r.status_code == 403
    assert (await client.post(url, json=files)).status_code == 401
    assert (
        await client.post(url, json=files, headers={"Authorization": "Bearer udn_forged"})
    ).status_code == 401
    assert (
        await client.post(url, json=files, headers=admin_headers)
    ).status_code == 401  # a user token is not a node token
    assert (await client.get("/api/files", headers=admin_headers)).json()["items"] == []

    grant = await client.post(url, json=files, headers={"Authorization": f"Bearer {token_b}"})
    assert grant.status_code == 200, grant.text
    item = grant.json()["items"][0]
    assert item["artifact"]["name"] == f"tasks/{task_b}/1/model.bin"
    again = await client.post(url, json=files, headers={"Authorization": f"Bearer {token_b}"})
    assert (
        again.json()["items"][0]["artifact"]["id"] == item["artifact"]["id"]
    )  # idempotent per path
    assert (await client.put(path_of(item["upload"]["url"]), content=data)).status_code == 201
    done = {"items": [{"artifact_id": item["artifact"]["id"]}]}
    assert (
        await client.post(
            url + "/complete", json=done, headers={"Authorization": f"Bearer {token_a}"}
        )
    ).status_code == 403
    r = await client.post(
        url + "/complete", json=done, headers={"Authorization": f"Bearer {token_b}"}
    )
    assert r.status_code == 200, r.text
    artifact = r.json()["items"][0]["artifact"]
    assert (
        artifact["state"] == "ready"
        and artifact["task_id"] == task_b
        and artifact["attempt_no"] == 1
    )
    assert artifact["owner"] == "admin"
    trace = (await client.get(f"/api/tasks/{task_b}/trace", headers=admin_headers)).json()["items"]
    outputs = [e for e in trace if e["kind"] == "task.outputs"]
    assert outputs and outputs[0]["payload"]["artifacts"][0]["id"] == artifact["id"]

    async with client.app.state.sessions() as s:
        (await s.get(AttemptRow, (uuid.UUID(task_b), 1))).state = "succeeded"
        await append(
            s, NewEvent(kind="task.exited", subject_type="task", subject_id=task_b, actor="test")
        )
        await s.commit()
    r = await client.post(url, json=files, headers={"Authorization": f"Bearer {token_b}"})
    assert r.status_code == 409 and "already succeeded" in r.json()["detail"]


async def test_task_inputs_are_pinned_and_checked(client, admin_headers):
    data = b"col1,col2\n1,2\n"
    dataset = await upload(client, admin_headers, "datasets/table.csv", data)
    bad = [
        ({"inputs": [{"artifact": "datasets/missing.csv"}]}, 404),
        ({"inputs": [{"artifact": "datasets/table.csv", "path": "/etc/passwd"}]}, 400),
        ({"inputs": [{"artifact": "datasets/table.csv", "path": "/inputs/../etc/x"}]}, 400),
        ({"inputs": [{"artifact": "datasets/table.csv", "path": "/workspace/outputs/t.csv"}]}, 400),
        ({"inputs": [{"artifact": dataset["id"]}, {"artifact": "datasets/table.csv"}]}, 400),
        ({"outputs": ["../../etc/shadow"]}, 400),
        ({"outputs": ["/tmp/x"]}, 400),
    ]
    for extra, status in bad:
        r = await client.post("/api/tasks", json=task_body(**extra), headers=admin_headers)
        assert r.status_code == status, (extra, r.text)
    assert (await client.get("/api/tasks", headers=admin_headers)).json()["items"] == []
    half = await client.post(
        "/api/files",
        json={"name": "half.bin", "size": 5, "sha256": sha(b"12345")},
        headers=admin_headers,
    )
    r = await client.post(
        "/api/tasks",
        json=task_body(inputs=[{"artifact": half.json()["artifact"]["id"]}]),
        headers=admin_headers,
    )
    assert r.status_code == 409

    r = await client.post(
        "/api/tasks",
        json=task_body(
            inputs=[{"artifact": "datasets/table.csv"}],
            outputs=["/workspace/outputs/*.txt", "ckpt/"],
        ),
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    extra = r.json()["extra"]
    assert extra["inputs"] == [
        {
            "artifact_id": dataset["id"],
            "name": "datasets/table.csv",
            "path": "/inputs/table.csv",
            "sha256": sha(data),
            "size": len(data),
        }
    ]
    assert extra["outputs"] == ["*.txt", "ckpt"]

    # the dispatch the scheduler sends carries a short-lived GET URL per input, never the bytes
    async with client.app.state.sessions() as s:
        task = await s.get(TaskRow, uuid.UUID(r.json()["id"]))
        attempt = AttemptRow(
            task_id=task.id, attempt_no=1, node_name="n", state="assigned", gpu_indices=[]
        )
        dispatch = await file_url_extender(client.app.state)(
            s, task, attempt, build_dispatch(task, attempt)
        )
    assert isinstance(dispatch, protocol.Dispatch)
    assert [(i.name, i.path, i.sha256, i.size) for i in dispatch.inputs] == [
        ("datasets/table.csv", "/inputs/table.csv", sha(data), len(data))
    ]
    assert [o.pattern for o in dispatch.outputs] == ["*.txt", "ckpt"]
    url = dispatch.inputs[0].url
    assert len(protocol.encode(dispatch)) < 4096
    assert (await client.get(path_of(url))).content == data
    exp = int(dict(p.split("=") for p in urlsplit(url).query.split("&"))["exp"])
    assert exp - 900 <= __import__("time").time() + 5


def test_server_restart_in_the_middle_of_a_resumable_upload(live_server):
    data = bytes(range(251)) * 8000  # ~2 MB, not a multiple of the chunk
    chunk = 700_000
    with live_server.api() as api, httpx.Client(timeout=30) as raw:
        grant = api.post(
            "/api/files", json={"name": "ckpt/epoch-1.pt", "size": len(data), "sha256": sha(data)}
        ).json()
        url = grant["upload"]["url"]
        r = raw.put(
            url, content=data[:chunk], headers={"Content-Range": f"bytes 0-{chunk - 1}/{len(data)}"}
        )
        assert r.status_code == 308
    live_server.stop()
    live_server.start()
    with live_server.api() as api, httpx.Client(timeout=30) as raw:
        fresh = api.post(f"/api/files/{grant['artifact']['id']}/upload").json()["upload"]
        assert fresh["offset"] == chunk
        status = raw.put(fresh["url"], headers={"Content-Range": f"bytes */{len(data)}"})
        assert status.status_code == 308 and status.headers["range"] == f"bytes=0-{chunk - 1}"
        offset = chunk
        while offset < len(data):
            end = min(offset + chunk, len(data)) - 1
            r = raw.put(
                url,
                content=data[offset : end + 1],
                headers={"Content-Range": f"bytes {offset}-{end}/{len(data)}"},
            )
            assert r.status_code in (201, 308), r.text
            offset = end + 1
        done = api.post(f"/api/files/{grant['artifact']['id']}/complete", json={})
        assert done.status_code == 200 and done.json()["state"] == "ready"
        link = api.get(f"/api/files/{grant['artifact']['id']}/download").json()["url"]
        assert raw.get(link).content == data
    assert not list((Path(live_server.env["UNIDESK_DATA_DIR"]) / "files" / "partial").iterdir())


async def test_prefix_and_folders_browse_names_with_slashes(client, admin_headers):
    """``prefix=`` keeps names that start with it (LIKE wildcards are literal); ``delimiter=/``
    lists one folder level: the files directly in it, and its subfolders on the first page."""
    names = ["runs/a/loss.csv", "runs/a/log.txt", "runs/b/x.bin", "runs/top.txt", "root.txt"]
    names += ["ru_s/no.txt"]
    for name in names:
        await upload(client, admin_headers, name, name.encode())

    async def listing(**query):
        r = await client.get("/api/files", params=query, headers=admin_headers)
        assert r.status_code == 200, r.text
        body = r.json()
        return sorted(a["name"] for a in body["items"]), body["folders"], body["next_cursor"]

    assert (await listing(prefix="runs/"))[0] == sorted(n for n in names if n.startswith("runs/"))
    assert (await listing(prefix="ru_s"))[0] == ["ru_s/no.txt"]  # "_" is no wildcard
    assert await listing(delimiter="/") == (["root.txt"], ["ru_s/", "runs/"], None)
    assert await listing(prefix="runs/", delimiter="/") == (
        ["runs/top.txt"],
        ["runs/a/", "runs/b/"],
        None,
    )
    assert await listing(prefix="runs/a/", delimiter="/") == (
        ["runs/a/log.txt", "runs/a/loss.csv"],
        [],
        None,
    )
    # folders come with the first page only; later pages carry the files that remain
    first = await listing(prefix="runs/a/", delimiter="/", limit=1)
    assert len(first[0]) == 1 and first[2] is not None
    later = await listing(prefix="runs/a/", delimiter="/", limit=1, cursor=first[2])
    assert later[1] == [] and len(later[0]) == 1
    # a search inside a folder narrows both lists
    assert await listing(prefix="runs/", delimiter="/", q="b/") == ([], ["runs/b/"], None)
    for bad in ({"delimiter": "-"}, {"prefix": "x" * 513}):
        r = await client.get("/api/files", params=bad, headers=admin_headers)
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("application/problem+json")
