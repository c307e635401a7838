/** Server-sent events over fetch (so status codes and problem details are visible), with a small parser. */
import { ApiError, errorFromResponse } from "./client";

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** Incremental text/event-stream parser (WHATWG rules: data lines joined by \n, comments ignored). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | null = null;
  /** The last id seen, kept across messages as the spec's "last event ID". */
  lastId: string | null = null;

  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    let idx: number;
    while ((idx = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, idx);
      const nl = this.buffer.startsWith("\r\n", idx) ? 2 : 1;
      // A lone trailing \r may be the first half of \r\n: wait for more input.
      if (this.buffer[idx] === "\r" && idx + 1 === this.buffer.length) break;
      this.buffer = this.buffer.slice(idx + nl);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const msg = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
      this.data = [];
      this.event = "";
      return msg;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) {
      this.id = value;
      this.lastId = value;
    }
    return null;
  }
}

/** The stream stayed silent past its keepalive deadline: the server (or the way to it) stopped answering. */
export class StreamStalledError extends ApiError {
  constructor(silentMs: number) {
    super(0, `the server does not answer: no keepalive for ${Math.round(silentMs / 1000)} s`);
    this.name = "StreamStalledError";
  }
}

/** How long a stream whose server sends a keepalive every keepaliveS seconds may stay silent: two missed, plus a second. */
export function stallAfterMs(keepaliveS: number): number {
  return Math.round(keepaliveS * 2000) + 1000;
}

export interface SseOptions {
  signal: AbortSignal;
  lastEventId?: string | null;
  /** Give up on a connect that gets no response headers within this time (default 15 s). */
  connectTimeoutMs?: number;
  onOpen?: () => void;
  onMessage: (msg: SseMessage) => void;
  /**
   * Read after every chunk: silence for longer than this many ms ends the stream with a
   * StreamStalledError (null: wait for ever, as before the server says it sends keepalives).
   */
  stallAfterMs?: () => number | null;
}

/** Reads one SSE response to its end. Throws ApiError for a non-2xx answer or a non-stream body. */
export async function readSse(url: string, opts: SseOptions): Promise<void> {
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (opts.lastEventId) headers["Last-Event-ID"] = opts.lastEventId;
  let res: Response;
  // A connect that hangs (a server half-way through stopping) must not leave the caller waiting forever.
  const connect = new AbortController();
  const onAbort = () => connect.abort();
  opts.signal.addEventListener("abort", onAbort);
  const timer = setTimeout(() => connect.abort(), opts.connectTimeoutMs ?? 15_000);
  try {
    res = await fetch(url, { headers, credentials: "same-origin", signal: connect.signal, cache: "no-store" });
  } catch (err) {
    if (opts.signal.aborted) throw err;
    if (connect.signal.aborted) throw new ApiError(0, "The server did not answer the stream request in time.");
    throw new ApiError(0, "The server could not be reached.");
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok) throw await errorFromResponse(res);
  if (!res.body) throw new ApiError(res.status, "The event stream answered without a body.");
  opts.onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  // Any bytes (an event or a ": ping" comment) show the server is there; silence past the
  // deadline cancels the read, which closes the connection.
  let stalled: number | null = null;
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(stallTimer);
    const ms = opts.stallAfterMs?.() ?? null;
    if (ms === null) return;
    stallTimer = setTimeout(() => {
      stalled = ms;
      void reader.cancel().catch(() => undefined);
    }, ms);
  };
  try {
    arm();
    for (;;) {
      const { value, done } = await reader.read();
      if (stalled !== null) throw new StreamStalledError(stalled);
      if (done) return;
      for (const msg of parser.feed(value)) opts.onMessage(msg);
      arm();
    }
  } finally {
    clearTimeout(stallTimer);
    opts.signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)], at least 250 ms. */
export function backoffDelay(attempt: number, baseMs = 1000, capMs = 30_000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.max(250, Math.floor(random() * ceiling));
}
