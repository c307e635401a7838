import { describe, expect, it } from "vitest";
import { nextSort, pageWindow, parseSort, tasksCsv } from "./taskTable";
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
  it("reads and flips the server sort a header asks for", () => {
    expect(parseSort(null)).toEqual({ key: "created_at", dir: "desc" });
    expect(parseSort("name")).toEqual({ key: "name", dir: "asc" });
    expect(parseSort("-finished_at")).toEqual({ key: "finished_at", dir: "desc" });
    expect(parseSort("size")).toEqual({ key: "created_at", dir: "desc" });
    expect(nextSort(null, "name")).toBe("name");
    expect(nextSort("name", "name")).toBe("-name");
    expect(nextSort("-name", "name")).toBe("name");
    expect(nextSort(null, "created_at")).toBe("created_at");
    expect(nextSort("name", "priority")).toBe("-priority");
  });
  it("offers the first, the last and nearby page numbers", () => {
    expect(pageWindow(1, 1)).toEqual([1]);
    expect(pageWindow(1, 20)).toEqual([1, 2, 3, null, 20]);
    expect(pageWindow(10, 20)).toEqual([1, null, 8, 9, 10, 11, 12, null, 20]);
    expect(pageWindow(20, 20)).toEqual([1, null, 18, 19, 20]);
    expect(pageWindow(4, 6)).toEqual([1, 2, 3, 4, 5, 6]);
  });
  it("writes CSV with Beijing times, quoting and no spreadsheet formulas", () => {
    const csv = tasksCsv([task({ name: '=cmd|"x",y' })]);
    const [head, row] = csv.trimEnd().split("\r\n");
    expect(head.split(",")).toContain("created_beijing");
    expect(row).toContain('"\'=cmd|""x"",y"');
    expect(row).toContain("2026-11-27 18:00:00,2026-11-27 18:01:00,2026-11-27 18:02:30,90");
  });
});
