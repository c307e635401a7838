/** Small React hooks shared by the pages: async loading, a ticking clock, live events, document title. */
import { useCallback, useContext, useEffect, useRef, useState } from "react";
import type { UnideskEvent } from "../api/types";
import { LiveContext } from "./contexts";

export interface AsyncState<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  /** Reload in the background: the current data stays on screen until the new answer arrives. */
  reload: () => void;
  setData: (fn: (old: T | null) => T | null) => void;
}

/** Runs loader on mount and whenever deps change; aborts stale requests. */
export function useAsync<T>(loader: (signal: AbortSignal) => Promise<T>, deps: unknown[]): AsyncState<T> {
  const [data, setDataState] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loaderRef = useRef(loader);
  loaderRef.current = loader;
  const lastDeps = useRef<unknown[] | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    // New parameters (another task, other filters): the old answer is not shown as if it were theirs.
    const changed = lastDeps.current !== null && (lastDeps.current.length !== deps.length || deps.some((d, i) => !Object.is(d, lastDeps.current![i])));
    lastDeps.current = deps;
    if (changed) {
      setDataState(null);
      setError(null);
    }
    setLoading(true);
    loaderRef
      .current(ctl.signal)
      .then((d) => {
        if (ctl.signal.aborted) return;
        setDataState(d);
        setError(null);
      })
      .catch((err: unknown) => {
        if (ctl.signal.aborted) return;
        setError(err);
      })
      .finally(() => {
        if (!ctl.signal.aborted) setLoading(false);
      });
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the caller's deps (checked at each call site: eslint.config.js names useAsync to the rule) plus the reload counter; the loader is read through loaderRef, so it is never stale
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const setData = useCallback((fn: (old: T | null) => T | null) => setDataState(fn), []);
  return { data, error, loading, reload, setData };
}

/** Current time in epoch ms, refreshed every intervalMs (for "3 min ago" texts). */
export function useNow(intervalMs = 15_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
}

/** Calls handler for each live event accepted by filter. */
export function useLiveEvents(filter: (ev: UnideskEvent) => boolean, handler: (ev: UnideskEvent) => void): void {
  const { feed } = useContext(LiveContext);
  const ref = useRef({ filter, handler });
  ref.current = { filter, handler };
  useEffect(
    () =>
      feed.subscribe((ev) => {
        if (ref.current.filter(ev)) ref.current.handler(ev);
      }),
    [feed],
  );
}

/** Calls fn at most once per waitMs, trailing edge (batches bursts of live events into one reload). */
export function useThrottled(fn: () => void, waitMs = 700): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
  }, []);
  return useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      ref.current();
    }, waitMs);
  }, [waitMs]);
}

/**
 * Calls reload when value changes from one it already had (not on the first value): for a load
 * that must be redone when something outside its inputs changes (a task becoming final, a
 * reloaded parent), keeping what is on screen until the new answer arrives.
 */
export function useReloadOnChange(value: unknown, reload: () => void): void {
  const previous = useRef(value);
  useEffect(() => {
    if (Object.is(previous.current, value)) return;
    const had = previous.current;
    previous.current = value;
    if (had !== null && had !== undefined) reload();
  }, [value, reload]);
}

/** How long a first load waits for the live stream to open before loading anyway. */
const STREAM_WAIT_MS = 3000;

/**
 * useAsync for a view kept current by live events: the load starts once the stream is open (so
 * no event falls between the answer and the stream), and reloads only when the stream reconnects
 * after that load: one request per page load, not one before the stream opens and one after.
 */
export function useLiveAsync<T>(loader: (signal: AbortSignal) => Promise<T>, deps: unknown[]): AsyncState<T> {
  const { feed, feedState } = useContext(LiveContext);
  const seen = useRef<number | null>(null);
  const state = useAsync(
    async (signal) => {
      await feed.settled(STREAM_WAIT_MS, signal);
      if (signal.aborted) throw new DOMException("aborted", "AbortError");
      seen.current = feed.state.generation;
      return loader(signal);
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the caller's deps, checked at its call site (eslint.config.js names useLiveAsync to the rule); useAsync always runs its latest loader, so loader and feed are never stale
    deps,
  );
  const { reload } = state;
  useEffect(() => {
    if (seen.current !== null && feedState.generation > seen.current) reload();
  }, [feedState.generation, reload]);
  return state;
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · UniDesk` : "UniDesk";
  }, [title]);
}
