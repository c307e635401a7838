/**
 * Live-following log viewer for one attempt: loads the pages so far, then follows the
 * log stream (resuming after the last seq with none missing below it on reconnect); a chunk
 * stored late (after a higher-numbered one) is placed by its seq. Fixed-height, virtualised rows
 * so streaming never shifts the page layout; search filters and highlights; download saves all.
 * Lines show their terminal colours (as spans: text is never read as HTML), error lines stand
 * out, and each line number is a permalink (#L120) that scrolls to and marks the line.
 */
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { isErrorLine, parseAnsi, stripAnsi } from "../api/ansi";
import { api, buildQuery } from "../api/client";
import { endpointPath } from "../api/endpoints";
import { backoffDelay, readSse } from "../api/sse";
import type { LogLine, Task } from "../api/types";
import { fileStamp, formatDateTime, formatTime } from "../time";
import { placeLate } from "./logRows";
import { CopyButton, ErrorBox } from "./ui";

const ROW_H = 20;
const VIEW_H = 420;
const MAX_ROWS = 50_000;
const PAGE = 1000;

interface Row {
  /** Line number in this attempt's output, from 1 (the permalink's #L<n>). */
  n: number;
  seq: number;
  stream: LogLine["stream"];
  ts: string;
  /** As written, escape sequences included (rendered through parseAnsi). */
  raw: string;
  /** Without escape sequences: what search and error detection read. */
  text: string;
  error: boolean;
}

type Phase = "loading" | "following" | "reconnecting" | "ended" | "idle" | "error";

function toRows(lines: LogLine[], firstN: number): Row[] {
  const out: Row[] = [];
  for (const l of lines) {
    const data = l.data.endsWith("\n") ? l.data.slice(0, -1) : l.data;
    for (const raw of data.split("\n")) {
      const text = stripAnsi(raw);
      out.push({ n: firstN + out.length, seq: l.seq, stream: l.stream, ts: l.ts, raw, text, error: isErrorLine(text) });
    }
  }
  return out;
}

/** The line a #L<n> hash points at, or null. */
function lineFromHash(hash: string): number | null {
  const m = /^#L(\d{1,9})$/.exec(hash);
  return m ? Number(m[1]) : null;
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
  const lineCount = useRef(0);
  const location = useLocation();
  const navigate = useNavigate();
  const target = lineFromHash(location.hash);
  const scrolledTo = useRef<number | null>(null);
  const liveRef = useRef(live);
  liveRef.current = live;

  const seen = useRef(new Set<number>());
  const contiguous = useRef(0);

  const append = useCallback((lines: LogLine[]) => {
    const fresh = lines.filter((l) => !seen.current.has(l.seq)).sort((a, b) => a.seq - b.seq);
    if (fresh.length === 0) return;
    for (const l of fresh) seen.current.add(l.seq);
    while (seen.current.has(contiguous.current + 1)) contiguous.current++;
    const tail = fresh.filter((l) => l.seq > lastSeq.current);
    // A chunk stored after a higher-numbered one (a resend after a failed store) goes in its
    // place by seq; the lines after it are renumbered.
    const late = fresh.filter((l) => l.seq < lastSeq.current);
    const lateRows = late.map((l) => toRows([l], 0));
    lineCount.current += lateRows.reduce((k, r) => k + r.length, 0);
    if (tail.length > 0) lastSeq.current = tail[tail.length - 1].seq;
    const added = toRows(tail, lineCount.current + 1);
    lineCount.current += added.length;
    setRows((old) => {
      const next = placeLate(old, lateRows).concat(added);
      if (next.length <= MAX_ROWS) return next;
      setDropped((d) => d + next.length - MAX_ROWS);
      return next.slice(next.length - MAX_ROWS);
    });
  }, []);

  useEffect(() => {
    const ctl = new AbortController();
    lastSeq.current = 0;
    seen.current = new Set();
    contiguous.current = 0;
    lineCount.current = 0;
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
      // Where a (re)connected stream starts: after the last seq with none missing below it (a
      // chunk stored late is then sent again), looking back at most one page.
      const resumeAfter = () => Math.max(contiguous.current, lastSeq.current - PAGE);
      let failures = 0;
      while (liveRef.current && !ctl.signal.aborted) {
        setPhase(failures ? "reconnecting" : "following");
        let ended = false;
        try {
          await readSse(
            endpointPath("taskLogStream", { id: task.id }) + buildQuery({ attempt: attemptNo, after: resumeAfter() }),
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
    if (el && follow && !needle && target === null) {
      el.scrollTop = el.scrollHeight;
      setScrollTop(el.scrollTop);
    }
  }, [visible.length, follow, needle, target]);

  // A permalink (#L120): once that line is loaded, stop following, scroll it to the upper third
  // of the view and keep it marked.
  useLayoutEffect(() => {
    const el = boxRef.current;
    if (!el || target === null || scrolledTo.current === target) return;
    const i = visible.findIndex((r) => r.n === target);
    if (i < 0) return;
    scrolledTo.current = target;
    setFollow(false);
    el.scrollTop = Math.max(0, i * ROW_H - VIEW_H / 3);
    setScrollTop(el.scrollTop);
  }, [target, visible]);
  const pickLine = (n: number) => {
    scrolledTo.current = n; // clicked: it is on screen already
    setFollow(false);
    navigate({ search: location.search, hash: `L${n}` }, { replace: true });
  };
  const permalink = target === null ? null : `${window.location.origin}${location.pathname}?attempt=${attemptNo}#L${target}`;
  const targetMissing = target !== null && phase !== "loading" && rows.length > 0 && !rows.some((r) => r.n === target);

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
      {permalink && (
        <div className="logs-permalink small" data-testid="logs-permalink">
          <span>Line {target}</span>
          <CopyButton text={permalink} label="Copy link to this line" />
          <button type="button" className="btn btn-small btn-ghost" onClick={() => navigate({ search: location.search, hash: "" }, { replace: true })}>
            Unmark
          </button>
          {targetMissing && <span className="muted">This attempt's log has no line {target} (it may not have been written yet).</span>}
        </div>
      )}
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
                id={`L${r.n}`}
                className={`log-row log-${r.stream}${r.error ? " log-error" : ""}${r.n === target ? " log-target" : ""}`}
                style={{ top: (first + i) * ROW_H, height: ROW_H }}
                data-testid="log-line"
                data-line={r.n}
              >
                <a
                  className="log-n"
                  href={`#L${r.n}`}
                  aria-label={`Line ${r.n}: link`}
                  onClick={(e) => {
                    e.preventDefault();
                    pickLine(r.n);
                  }}
                >
                  {r.n}
                </a>
                <span className="log-ts" title={`${r.stream} · ${formatDateTime(r.ts, { millis: true })}`}>
                  {formatTime(r.ts)}
                </span>
                <span className="log-text">{needle ? highlight(r.text, needle) : r.raw ? <AnsiText raw={r.raw} /> : " "}</span>
              </div>
            ))}
          </div>
        )}
      </div>
    </section>
  );
}

/** One line's terminal colours as spans (text nodes only: nothing is parsed as HTML). */
function AnsiText({ raw }: { raw: string }) {
  const segs = parseAnsi(raw);
  if (segs.length === 0) return <> </>;
  return (
    <>
      {segs.map((seg, i) => {
        const st = seg.style;
        if (!st) return seg.text;
        const cls = [st.fgClass, st.bgClass, st.bold && "ansi-bold", st.dim && "ansi-dim", st.italic && "ansi-italic", st.underline && "ansi-underline"].filter(Boolean).join(" ");
        return (
          <span key={i} className={cls || undefined} style={st.fg || st.bg ? { color: st.fg ?? undefined, backgroundColor: st.bg ?? undefined } : undefined}>
            {seg.text}
          </span>
        );
      })}
    </>
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
