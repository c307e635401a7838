import { describe, expect, it } from "vitest";
import { sortTasks, tasksCsv } from "./taskTable";
import type { Task } from "./types";

const task = (over: Partial<Task>): Task =>
  ({
    id: "t",
    name: "n",
    state: "succeeded",
    reason: null,
    owner: "admin",
    code_commit_id: "a".repeat(40),
    env_commit_id: "b".repeat(40),
    resources: { cpus: 1, memory_mb: 256, gpus: 0, labels: {} },
    attempt_count: 1,
    created_at: "2026-11-27T10:00:00Z",
    started_at: "2026-11-27T10:01:00Z",
    finished_at: "2026-11-27T10:02:30Z",
    ...over,
  }) as Task;

describe("task table", () => {
  it("sorts by a column, never-started below every duration, ties in server order", () => {
    const a = task({ id: "a", name: "beta" });
    const b = task({ id: "b", name: "Alpha", started_at: null, finished_at: null });
    const c = task({ id: "c", name: "gamma", started_at: "2026-11-27T10:00:00Z" });
    expect(sortTasks([a, b, c], "name", "asc", 0).map((t) => t.id)).toEqual(["b", "a", "c"]);
    expect(sortTasks([a, b, c], "duration", "desc", 0).map((t) => t.id)).toEqual(["c", "a", "b"]);
  });
  it("writes CSV with Beijing times, quoting and no spreadsheet formulas", () => {
    const csv = tasksCsv([task({ name: '=cmd|"x",y' })]);
    const [head, row] = csv.trimEnd().split("\r\n");
    expect(head.split(",")).toContain("created_beijing");
    expect(row).toContain('"\'=cmd|""x"",y"');
    expect(row).toContain("2026-11-27 18:00:00,2026-11-27 18:01:00,2026-11-27 18:02:30,90");
  });
});
