/** A task's Trace: its events in order, as a timeline, appended live from the event stream. */
import { useRef } from "react";
import { api } from "../api/client";
import type { UnideskEvent } from "../api/types";
import { useLiveAsync, useLiveEvents } from "../state/hooks";
import { formatDateTime, formatDuration, formatTime, toMs } from "../time";
import { EmptyState, ErrorBox, Loading } from "./ui";

const ISO_LIKE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/** Payload values for people: timestamps shown in Beijing time, objects compacted. */
function payloadText(value: unknown): string {
  if (typeof value === "string") return ISO_LIKE.test(value) ? formatDateTime(value) : value;
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") {
    const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === "string" && ISO_LIKE.test(v) ? formatDateTime(v) : v));
    return text.length > 200 ? text.slice(0, 200) + "…" : text;
  }
  return String(value);
}

function tone(kind: string): string {
  if (/(succeeded|online|undrained)$/.test(kind)) return "ok";
  if (/(failed|lost|offline|unhealthy|unschedulable|error)$/.test(kind)) return "bad";
  if (/(cancel|cancelled|cancel_requested|draining|retried)/.test(kind)) return "warn";
  if (/(started|running)$/.test(kind)) return "active";
  return "info";
}

export function TaskTrace({ taskId }: { taskId: string }) {
  return <EventTrace subjectId={taskId} load={(id, signal) => api.trace(id, signal)} what="task" />;
}

/** Any subject's events as the same timeline (a pipeline's trace too): loaded once, appended live. */
export function EventTrace({ subjectId, load, what }: { subjectId: string; load: (subjectId: string, signal: AbortSignal) => Promise<{ items: UnideskEvent[] }>; what: string }) {
  // Loaded again for another subject; a new load function on each render of the parent is no
  // reason to, so the latest one is read through a ref.
  const loadRef = useRef(load);
  loadRef.current = load;
  const trace = useLiveAsync((signal) => loadRef.current(subjectId, signal), [subjectId]);
  useLiveEvents(
    (ev) => ev.subject_id === subjectId,
    (ev) =>
      trace.setData((old) => {
        if (!old || old.items.some((e) => e.id === ev.id)) return old;
        return { items: [...old.items, ev].sort((a, b) => a.id - b.id) };
      }),
  );
  if (trace.error !== null) return <ErrorBox error={trace.error} onRetry={trace.reload} />;
  if (!trace.data) return <Loading label="Loading trace…" />;
  const items = trace.data.items;
  if (items.length === 0) return <EmptyState title={`No events recorded for this ${what} yet.`} />;
  const t0 = toMs(items[0].ts);
  return (
    <ol className="trace" data-testid="trace">
      {items.map((ev: UnideskEvent, i) => {
        const ms = toMs(ev.ts);
        const gap = i > 0 ? ms - toMs(items[i - 1].ts) : 0;
        const entries = Object.entries(ev.payload ?? {});
        return (
          <li key={ev.id} className={`trace-item tone-${tone(ev.kind)}`} data-kind={ev.kind}>
            <span className="trace-dot" aria-hidden="true" />
            <div className="trace-main">
              <div className="trace-line">
                <span className="trace-kind">{ev.kind}</span>
                <time className="trace-time" title={formatDateTime(ev.ts)}>
                  {formatTime(ev.ts)}
                </time>
                <span className="trace-offset muted">
                  +{formatDuration(ms - t0)}
                  {i > 0 && gap > 0 && <> (Δ {formatDuration(gap)})</>}
                </span>
                {ev.actor && <span className="trace-actor muted">by {ev.actor}</span>}
              </div>
              {entries.length > 0 && (
                <dl className="trace-payload">
                  {entries.map(([k, v]) => (
                    <div key={k}>
                      <dt>{k}</dt>
                      <dd>{payloadText(v)}</dd>
                    </div>
                  ))}
                </dl>
              )}
            </div>
          </li>
        );
      })}
    </ol>
  );
}
