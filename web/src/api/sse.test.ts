import { describe, expect, it } from "vitest";
import { SseParser, backoffDelay } from "./sse";

describe("SseParser", () => {
  it("parses events split across chunks", () => {
    const p = new SseParser();
    expect(p.feed("id: 7\nevent: task.started\nda")).toEqual([]);
    const msgs = p.feed('ta: {"a":1}\n\n: keepalive\n\nid: 8\ndata: x\ndata: y\n\n');
    expect(msgs).toEqual([
      { id: "7", event: "task.started", data: '{"a":1}' },
      { id: "8", event: "message", data: "x\ny" },
    ]);
    expect(p.lastId).toBe("8");
  });
  it("handles CRLF, including a CR at the chunk edge", () => {
    const p = new SseParser();
    expect(p.feed("event: end\r")).toEqual([]);
    expect(p.feed("\ndata: done\r\n\r\n")).toEqual([{ id: null, event: "end", data: "done" }]);
  });
  it("ignores an event with no data", () => {
    const p = new SseParser();
    expect(p.feed("event: ping\n\n")).toEqual([]);
    expect(p.feed("data: 1\n\n")).toEqual([{ id: null, event: "message", data: "1" }]);
  });
});

describe("backoffDelay", () => {
  it("grows to a cap with full jitter", () => {
    expect(backoffDelay(0, 1000, 30000, () => 0.999)).toBe(999);
    expect(backoffDelay(3, 1000, 30000, () => 0.5)).toBe(4000);
    expect(backoffDelay(50, 1000, 30000, () => 0.999)).toBe(29970);
    expect(backoffDelay(5, 1000, 30000, () => 0)).toBe(250);
  });
});
