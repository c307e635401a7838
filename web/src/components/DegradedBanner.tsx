/** The banner that says, loudly, when what's on screen may not be current. */
import { useContext } from "react";
import { reasonSentence } from "../api/healthReason";
import { LiveContext } from "../state/contexts";
import { useNow } from "../state/hooks";
import { formatTime, isoInTextToBeijing } from "../time";

export function DegradedBanner() {
  const { feed, feedState, health } = useContext(LiveContext);
  const now = useNow(1000);
  const problems: string[] = [];
  const h = health.health;
  if (h && h.status !== "ok") {
    if (h.reasons.length === 0) problems.push("The server reports itself degraded without a reason.");
    for (const r of h.reasons) problems.push(reasonSentence(isoInTextToBeijing(r)));
  }
  const streamDown = feedState.status === "down";
  if (streamDown) {
    const since = feedState.downSince ? ` since ${formatTime(feedState.downSince)}` : "";
    const retry = feedState.retryAt ? Math.max(0, Math.ceil((feedState.retryAt - now) / 1000)) : null;
    problems.push(
      `Live updates are disconnected${since} (${feedState.error ?? "stream closed"}). ` +
        `What you see may be out of date${retry !== null ? `; reconnecting in ${retry} s` : ""}.`,
    );
  }
  if (problems.length === 0) return null;
  return (
    <div className="degraded" role="alert" data-testid="degraded-banner">
      <strong className="degraded-title">Degraded</strong>
      <div className="degraded-body">
        {problems.map((p) => (
          <p key={p.slice(0, 40)}>{p}</p>
        ))}
      </div>
      {streamDown && (
        <button type="button" className="btn btn-small" onClick={() => feed.retryNow()}>
          Reconnect now
        </button>
      )}
    </div>
  );
}

/** A small live/stale/offline indicator for page headers, announced to screen readers when it changes. */
export function LiveIndicator() {
  const { feedState, health } = useContext(LiveContext);
  // A hung server keeps the event stream open: its keepalives stopping (within seconds), or
  // /health not answering, turns the indicator off too.
  const offline = health.health?.unreachable === true || (feedState.status === "down" && feedState.stalled);
  const label = offline ? "Offline" : feedState.status === "live" ? "Live" : feedState.status === "connecting" ? "Connecting…" : "Stale";
  const tone = offline ? "down" : feedState.status;
  return (
    <span
      className={`live-dot live-${tone}`}
      title={offline ? "The server does not answer" : "Event stream status"}
      data-testid="live-indicator"
      data-live={offline ? "offline" : feedState.status}
      role="status"
      aria-live="polite"
      aria-label={`Live updates: ${label}`}
    >
      <span aria-hidden="true" className="live-pulse" />
      {label}
    </span>
  );
}
