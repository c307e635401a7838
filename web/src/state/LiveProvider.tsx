/** Owns the app-wide event feed and polls /health, exposing both through LiveContext. */
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { fetchHealth } from "../api/client";
import { EventFeed, type FeedState } from "./eventFeed";
import { LiveContext, type HealthState } from "./contexts";

const HEALTH_EVERY_MS = 10_000;

export function LiveProvider({ children }: { children: ReactNode }) {
  const feed = useMemo(() => new EventFeed(), []);
  const [feedState, setFeedState] = useState<FeedState>(feed.state);
  const [health, setHealth] = useState<HealthState>({ health: null, checkedAt: null });
  const ctlRef = useRef<AbortController | null>(null);

  useEffect(() => {
    const unwatch = feed.watch(setFeedState);
    feed.start();
    return () => {
      unwatch();
      feed.stop();
    };
  }, [feed]);

  const check = useCallback(() => {
    ctlRef.current?.abort();
    const ctl = new AbortController();
    ctlRef.current = ctl;
    fetchHealth(ctl.signal).then(
      (h) => setHealth({ health: h, checkedAt: Date.now() }),
      () => undefined,
    );
  }, []);

  useEffect(() => {
    check();
    const t = setInterval(check, HEALTH_EVERY_MS);
    return () => {
      clearInterval(t);
      ctlRef.current?.abort();
    };
  }, [check]);

  // The server answers /health again: reconnect the stream now rather than at the end of a long backoff.
  const healthy = health.health?.status === "ok";
  useEffect(() => {
    if (healthy) feed.retryNow();
  }, [healthy, feed]);

  // A stream that drops is often the first sign of trouble: ask /health at once. A stream back
  // up while /health last did not answer: ask again rather than show "Offline" until the next poll.
  const unreachable = useRef(false);
  unreachable.current = health.health?.unreachable === true;
  useEffect(() => {
    if (feedState.status === "down" || (feedState.status === "live" && unreachable.current)) check();
  }, [feedState.status, check]);

  const value = useMemo(() => ({ feed, feedState, health, recheckHealth: check }), [feed, feedState, health, check]);
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}
