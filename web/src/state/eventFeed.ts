/**
 * One live connection to /api/events/stream for the whole app: reconnects with
 * full-jitter backoff and resumes after the last event id it saw, so nothing is missed.
 */
import { endpointPath } from "../api/endpoints";
import { ApiError, buildQuery, errorMessage } from "../api/client";
import { StreamStalledError, backoffDelay, readSse, stallAfterMs } from "../api/sse";
import type { UnideskEvent } from "../api/types";

export type FeedStatus = "connecting" | "live" | "down";

export interface FeedState {
  status: FeedStatus;
  /** Increases on every (re)connect: views reload then, since they may have missed changes while down. */
  generation: number;
  /** When the stream last went down (epoch ms), null while live. */
  downSince: number | null;
  /** The stream went down because the server stopped sending its keepalives (it does not answer). */
  stalled: boolean;
  error: string | null;
  /** When the next reconnect attempt is due (epoch ms), while down. */
  retryAt: number | null;
  lastId: number | null;
}

type Listener = (ev: UnideskEvent) => void;

export class EventFeed {
  private listeners = new Set<Listener>();
  private stateListeners = new Set<(s: FeedState) => void>();
  private abort: AbortController | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private stopped = true;
  private openedAt = 0;
  state: FeedState = { status: "connecting", generation: 0, downSince: null, stalled: false, error: null, retryAt: null, lastId: null };

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Reconnect now (the "retry" button), skipping the backoff wait. */
  retryNow(): void {
    if (this.stopped || this.state.status !== "down") return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort?.abort();
    void this.connect();
  }

  /**
   * Resolves once the stream has opened (or failed) at least once, or after timeoutMs: a page that
   * loads after this misses no event, so it need not load again when the stream first opens.
   */
  settled(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.state.generation > 0 || this.state.status === "down") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unwatch();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const unwatch = this.watch((s) => {
        if (s.generation > 0 || s.status === "down") queueMicrotask(done);
      });
      signal?.addEventListener("abort", done);
    });
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  watch(fn: (s: FeedState) => void): () => void {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  private set(patch: Partial<FeedState>): void {
    this.state = { ...this.state, ...patch };
    for (const fn of this.stateListeners) fn(this.state);
  }

  private async connect(): Promise<void> {
    const ctl = new AbortController();
    this.abort = ctl;
    if (this.state.status !== "down") this.set({ status: "connecting" });
    const url = endpointPath("eventStream") + buildQuery({ after: this.state.lastId ?? undefined });
    let error: string;
    let shuttingDown = false;
    let stalled = false;
    // Set by the server's hello: how long this stream may be silent before it counts as stalled.
    let stallMs: number | null = null;
    try {
      await readSse(url, {
        signal: ctl.signal,
        stallAfterMs: () => stallMs,
        onOpen: () => {
          this.openedAt = Date.now();
          this.set({ status: "live", generation: this.state.generation + 1, downSince: null, stalled: false, error: null, retryAt: null });
        },
        onMessage: (msg) => {
          if (msg.event === "shutdown") {
            // The server is stopping: its last message says so, then the stream ends.
            shuttingDown = true;
            return;
          }
          if (msg.event === "hello") {
            const hello = JSON.parse(msg.data) as { cursor?: number; keepalive_s?: number };
            const keepalive = Number(hello.keepalive_s);
            if (keepalive > 0) stallMs = stallAfterMs(keepalive);
            if (this.state.lastId === null) {
              const cursor = Number(hello.cursor);
              if (Number.isFinite(cursor)) this.state = { ...this.state, lastId: cursor };
            }
            return;
          }
          let ev: UnideskEvent;
          try {
            ev = JSON.parse(msg.data) as UnideskEvent;
          } catch {
            return;
          }
          if (typeof ev.id === "number") this.state = { ...this.state, lastId: ev.id };
          for (const fn of this.listeners) fn(ev);
        },
      });
      error = shuttingDown ? "the server is shutting down" : "the server closed the event stream";
    } catch (err) {
      if (ctl.signal.aborted) return;
      error = errorMessage(err);
      // Sticky while down: a reconnect that then times out is the same silent server.
      stalled = err instanceof StreamStalledError || (this.state.status === "down" && this.state.stalled);
      if (err instanceof ApiError && err.status === 401) {
        // Signed out: the auth layer redirects; do not spin.
        this.set({ status: "down", downSince: this.state.downSince ?? Date.now(), error, retryAt: null });
        return;
      }
    }
    if (this.stopped || ctl.signal.aborted) return;
    // A stream that stayed up a while starts the backoff afresh; one that drops at once keeps growing it.
    if (this.openedAt && Date.now() - this.openedAt > 10_000) this.failures = 0;
    this.openedAt = 0;
    const delay = backoffDelay(this.failures++);
    this.set({ status: "down", downSince: this.state.downSince ?? Date.now(), stalled, error, retryAt: Date.now() + delay });
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }
}
