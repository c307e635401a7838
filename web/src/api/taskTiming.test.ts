import { describe, expect, it } from "vitest";
import { taskTiming } from "./taskTiming";

const created = "2026-11-27T10:00:00Z";
const now = Date.parse("2026-11-27T10:05:00Z");

describe("taskTiming", () => {
  it("counts a duration from the latest attempt's start, not creation", () => {
    expect(taskTiming({ created_at: created, started_at: "2026-11-27T10:04:00Z", finished_at: null }, now)).toEqual({ label: "Duration", text: "1m 00s", running: true });
  });
  it("labels a never-started task's time as waiting", () => {
    expect(taskTiming({ created_at: created, started_at: null, finished_at: null }, now)).toEqual({ label: "Waiting", text: "waiting 5m 00s", running: false });
    expect(taskTiming({ created_at: created, started_at: null, finished_at: "2026-11-27T10:02:00Z" }, now).text).toBe("waited 2m 00s");
  });
});
