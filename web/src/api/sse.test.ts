import { afterEach, describe, expect, it, vi } from "vitest";
import { SseParser, StreamStalledError, backoffDelay, readSse, stallAfterMs } from "./sse";

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

/** A text/event-stream answer that writes each chunk after its delay (ms), then ends if asked. */
function streamAnswer(chunks: [number, string][], end: boolean): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(ctl) {
      for (const [delay, text] of chunks) {
        await new Promise((r) => setTimeout(r, delay));
        ctl.enqueue(enc.encode(text));
      }
      if (end) ctl.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

describe("readSse keepalive deadline", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("ends a stream that goes silent past its deadline with StreamStalledError", async () => {
    vi.stubGlobal("fetch", () => Promise.resolve(streamAnswer([[0, 'event: hello\ndata: {"keepalive_s": 0.02}\n\n']], false)));
    const seen: string[] = [];
    const done = readSse("/s", { signal: new AbortController().signal, stallAfterMs: () => 60, onMessage: (m) => seen.push(m.event) });
    await expect(done).rejects.toBeInstanceOf(StreamStalledError);
    await expect(done).rejects.toThrow("the server does not answer");
    expect(seen).toEqual(["hello"]);
  });

  it("keeps a stream whose keepalive comments come in time", async () => {
    const pings: [number, string][] = Array.from({ length: 8 }, () => [25, ": ping\r\n\r\n"]);
    vi.stubGlobal("fetch", () => Promise.resolve(streamAnswer([[0, "event: hello\ndata: {}\n\n"], ...pings], true)));
    const seen: string[] = [];
    await readSse("/s", { signal: new AbortController().signal, stallAfterMs: () => 400, onMessage: (m) => seen.push(m.event) });
    expect(seen).toEqual(["hello"]); // comments are not messages
  });

  it("waits for ever when the server names no keepalive", async () => {
    vi.stubGlobal("fetch", () => Promise.resolve(streamAnswer([[0, "data: 1\n\n"], [150, "data: 2\n\n"]], true)));
    const seen: string[] = [];
    await readSse("/s", { signal: new AbortController().signal, stallAfterMs: () => null, onMessage: (m) => seen.push(m.data) });
    expect(seen).toEqual(["1", "2"]);
  });

  it("allows two missed keepalives and a second", () => {
    expect(stallAfterMs(2)).toBe(5000);
  });
});
