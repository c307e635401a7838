"""Two server instances on one database, agents split across them: 200 tasks submitted
through both APIs each run exactly once (SKIP LOCKED claims, delivery through NOTIFY)."""

from __future__ import annotations

from collections import Counter

from tests.integration.conftest import FINAL, submit, wait_for, wait_online

TASKS = 200


def test_two_instances_run_each_task_exactly_once(pg_cluster, live_server_factory, agent_factory):
    url = pg_cluster.fresh_database()
    one = live_server_factory(database_url=url)
    two = live_server_factory(database_url=url)
    names = {"one-a": one, "one-b": one, "two-a": two, "two-b": two}
    for name, server in names.items():
        agent_factory(server, name, cpus=2)
    with one.api() as api1, two.api() as api2:
        wait_online(api1, *names)
        ids = [
            submit(
                api1 if i % 2 else api2,
                ["sh", "-c", f"echo task-{i}"],
                name=f"x-{i}",
                resources={"cpus": 0.25, "memory_mb": 16},
            )["id"]
            for i in range(TASKS)
        ]

        def all_final() -> list[dict] | None:
            items: list[dict] = []
            cursor = None
            while True:
                page = api2.get(
                    "/api/tasks", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
                ).json()
                items += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            return (
                items if len(items) == TASKS and all(t["state"] in FINAL for t in items) else None
            )

        tasks = wait_for(all_final, timeout=240, interval=1.0, what="200 tasks final")
        assert Counter(t["state"] for t in tasks) == {"succeeded": TASKS}
        assert {t["id"] for t in tasks} == set(ids)
        assert all(t["attempt_count"] == 1 for t in tasks), [
            t for t in tasks if t["attempt_count"] != 1
        ][:3]

        per_node: Counter[str] = Counter()
        for tid in ids[::10]:  # attempts in detail for a sample; the event counts below cover all
            detail = api1.get(f"/api/tasks/{tid}").json()
            assert [(a["state"], a["exit_code"]) for a in detail["attempts"]] == [("succeeded", 0)]
        for kind in ("task.assigned", "task.started", "task.exited", "task.succeeded"):
            evs = _all_events(api1, kind)
            counts = Counter(e["subject_id"] for e in evs)
            assert set(counts) == set(ids) and set(counts.values()) == {1}, (
                kind,
                [k for k, v in counts.items() if v != 1][:5],
            )
            if kind == "task.assigned":
                per_node = Counter(e["payload"]["node"] for e in evs)
        # Work went to nodes held by both instances, so delivery crossed instances.
        assert {n for n in per_node if n.startswith("one-")} and {
            n for n in per_node if n.startswith("two-")
        }, per_node


def _all_events(api, kind: str) -> list[dict]:  # type: ignore[no-untyped-def]
    out: list[dict] = []
    after = 0
    for _ in range(100):
        page = api.get("/api/events", params={"kind": kind, "after": after, "limit": 1000}).json()
        out += page["items"]
        if not page["items"]:
            return out
        after = page["last_id"]
    raise AssertionError("too many events")
