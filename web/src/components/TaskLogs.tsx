/**
 * Live-following log viewer for one attempt: loads the pages so far, then follows the
 * log stream (resuming after the last seq on reconnect). Fixed-height, virtualised rows
 * so streaming never shifts the page layout; search filters and highlights; download saves all.
 */
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { api, buildQuery } from "../api/client";
import { endpointPath } from "../api/endpoints";
import { backoffDelay, readSse } from "../api/sse";
import type { LogLine, Task } from "../api/types";
import { fileStamp, formatDateTime, formatTime } from "../time";
import { ErrorBox } from "./ui";

const ROW_H = 20;
const VIEW_H = 420;
const MAX_ROWS = 50_000;
const PAGE = 1000;

interface Row {
  seq: number;
  stream: LogLine["stream"];
  ts: string;
  text: string;
}

type Phase = "loading" | "following" | "reconnecting" | "ended" | "idle" | "error";

function toRows(lines: LogLine[]): Row[] {
  const out: Row[] = [];
  for (const l of lines) {
    const data = l.data.endsWith("\n") ? l.data.slice(0, -1) : l.data;
    for (const text of data.split("\n")) out.push({ seq: l.seq, stream: l.stream, ts: l.ts, text });
  }
  return out;
}

export function TaskLogs({ task, attemptNo, live }: { task: Task; attemptNo: number; live: boolean }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [dropped, setDropped] = useState(0);
  const [phase, setPhase] = useState<Phase>("loading");
  const [error, setError] = useState<unknown>(null);
  const [truncated, setTruncated] = useState(false);
  const [query, setQuery] = useState("");
  const [follow, setFollow] = useState(true);
  const [scrollTop, setScrollTop] = useState(0);
  const [downloading, setDownloading] = useState(false);
  const boxRef = useRef<HTMLDivElement>(null);
  const lastSeq = useRef(0);
  const liveRef = useRef(live);
  liveRef.current = live;

  const append = useCallback((lines: LogLine[]) => {
    const fresh = lines.filter((l) => l.seq > lastSeq.current);
    if (fresh.length === 0) return;
    lastSeq.current = fresh[fresh.length - 1].seq;
    setRows((old) => {
      const next = old.concat(toRows(fresh));
      if (next.length <= MAX_ROWS) return next;
      setDropped((d) => d + next.length - MAX_ROWS);
      return next.slice(next.length - MAX_ROWS);
    });
  }, []);

  useEffect(() => {
    const ctl = new AbortController();
    lastSeq.current = 0;
    setRows([]);
    setDropped(0);
    setTruncated(false);
    setPhase("loading");
    setError(null);
    (async () => {
      let after = 0;
      for (let page = 0; page < MAX_ROWS / PAGE; page++) {
        const res = await api.logs(task.id, { attempt: attemptNo, after, limit: PAGE }, ctl.signal);
        append(res.items);
        if (res.truncated) setTruncated(true);
        after = res.next_after;
        if (res.items.length < PAGE) break;
      }
      lastSeq.current = Math.max(lastSeq.current, after);
      let failures = 0;
      while (liveRef.current && !ctl.signal.aborted) {
        setPhase(failures ? "reconnecting" : "following");
        let ended = false;
        try {
          await readSse(
            endpointPath("taskLogStream", { id: task.id }) + buildQuery({ attempt: attemptNo, after: lastSeq.current }),
            {
              signal: ctl.signal,
              onOpen: () => {
                failures = 0;
                setPhase("following");
                setError(null);
              },
              onMessage: (msg) => {
                if (msg.event === "end") {
                  ended = true;
                  return;
                }
                try {
                  append([JSON.parse(msg.data) as LogLine]);
                } catch {
                  /* a malformed line is skipped; the download reads the stored log */
                }
              },
            },
          );
          if (ended) break;
        } catch (err) {
          if (ctl.signal.aborted) return;
          setError(err);
        }
        if (ended) break;
        setPhase("reconnecting");
        await new Promise((r) => setTimeout(r, backoffDelay(failures++, 1000, 15_000)));
      }
      if (!ctl.signal.aborted) setPhase(liveRef.current ? "ended" : "idle");
    })().catch((err: unknown) => {
      if (ctl.signal.aborted) return;
      setError(err);
      setPhase("error");
    });
    return () => ctl.abort();
  }, [task.id, attemptNo, append]);

  // When the attempt becomes final while following, the stream's `end` closes it; nothing else to do.
  const needle = query.trim().toLowerCase();
  const visible = useMemo(() => (needle ? rows.filter((r) => r.text.toLowerCase().includes(needle)) : rows), [rows, needle]);

  useLayoutEffect(() => {
    const el = boxRef.current;
    if (el && follow && !needle) {
      el.scrollTop = el.scrollHeight;
      setScrollTop(el.scrollTop);
    }
  }, [visible.length, follow, needle]);

  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - 20);
  const last = Math.min(visible.length, first + Math.ceil(VIEW_H / ROW_H) + 40);

  const download = async () => {
    setDownloading(true);
    try {
      const parts: string[] = [];
      let after = 0;
      for (;;) {
        const res = await api.logs(task.id, { attempt: attemptNo, after, limit: PAGE });
        for (const l of res.items) parts.push(l.data.endsWith("\n") ? l.data : l.data + "\n");
        after = res.next_after;
        if (res.items.length < PAGE) break;
      }
      const blob = new Blob(parts, { type: "text/plain;charset=utf-8" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      const base = (task.name || task.id.slice(0, 8)).replace(/[^A-Za-z0-9._-]+/g, "_");
      a.download = `${base}-attempt${attemptNo}-${fileStamp()}.log`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    } catch (err) {
      setError(err);
    } finally {
      setDownloading(false);
    }
  };

  const statusText: Record<Phase, string> = {
    loading: "Loading…",
    following: "Following live",
    reconnecting: "Reconnecting…",
    ended: "Attempt finished",
    idle: "Complete",
    error: "Failed to load",
  };

  return (
    <section className="logs" aria-label={`Logs of attempt ${attemptNo}`}>
      <div className="logs-bar">
        <span className={`logs-status logs-${phase}`} data-testid="logs-status" role="status">
          {statusText[phase]}
        </span>
        <span className="muted small" data-testid="logs-count">
          {needle ? `${visible.length} of ${rows.length} lines match` : `${rows.length} lines`}
        </span>
        <input
          type="search"
          className="logs-search"
          placeholder="Search logs…"
          aria-label="Search logs"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <label className="check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
        <button type="button" className="btn btn-small" onClick={() => void download()} disabled={downloading}>
          {downloading ? "Preparing…" : "Download"}
        </button>
      </div>
      {error !== null && <ErrorBox error={error} />}
      {(dropped > 0 || truncated) && (
        <div className="alert alert-info small">
          {dropped > 0 && `The first ${dropped} lines are not shown here. `}
          {truncated && "The server truncated this log. "}
          Download for everything stored.
        </div>
      )}
      <div
        ref={boxRef}
        className="logs-view"
        style={{ height: VIEW_H }}
        tabIndex={0}
        role="log"
        aria-live="off"
        data-testid="logs-view"
        onScroll={(e) => {
          const el = e.currentTarget;
          setScrollTop(el.scrollTop);
          const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW_H * 2;
          if (!atBottom && follow) setFollow(false);
          if (atBottom && !follow && !needle) setFollow(true);
        }}
      >
        {visible.length === 0 ? (
          <div className="logs-empty muted">
            {phase === "loading" ? "Loading logs…" : needle ? "No line matches." : phase === "following" ? "Waiting for output…" : "No output."}
          </div>
        ) : (
          <div className="logs-canvas" style={{ height: visible.length * ROW_H }}>
            {visible.slice(first, last).map((r, i) => (
              <div
                key={first + i}
                className={`log-row log-${r.stream}`}
                style={{ top: (first + i) * ROW_H, height: ROW_H }}
                data-testid="log-line"
              >
                <span className="log-ts" title={formatDateTime(r.ts)}>
                  {formatTime(r.ts)}
                </span>
                <span className="log-text">{needle ? highlight(r.text, needle) : r.text || " "}</span>
              </div>
            ))}
          </div>
        )}
      </div>
    </section>
  );
}

function highlight(text: string, needle: string) {
  const out: ReactNode[] = [];
  const lower = text.toLowerCase();
  let i = 0;
  for (let j = lower.indexOf(needle); j >= 0; j = lower.indexOf(needle, i)) {
    out.push(text.slice(i, j), <mark key={j}>{text.slice(j, j + needle.length)}</mark>);
    i = j + needle.length;
  }
  out.push(text.slice(i));
  return out;
}
