/** Interactive Gantt chart (SVG): bars, finish-to-start arrows, milestones, today line, drag to
 * move or resize (saved through the API), or from the keyboard (focusable bars: arrows move,
 * Shift+arrows move the due day, Alt+arrows the start day, each change announced), zoom by
 * day/week/month. Every date on it is a Beijing calendar day; the axis labels come from
 * web/src/time.ts via days.ts. */
import { useEffect, useRef, useState, type KeyboardEvent as ReactKeyboardEvent, type PointerEvent as ReactPointerEvent } from "react";
import { formatDate } from "../../time";
import { DAY_MS, addDays, dayStartMs, daysBetween, today, weekday } from "./days";
import type { Dependency, WorkItem } from "./types";

export type Zoom = "day" | "week" | "month";
const PX_PER_DAY: Record<Zoom, number> = { day: 36, week: 14, month: 4 };
const ROW = 30;
const HEAD = 34;
const LABEL_W = 200;
const EDGE = 7;

type DragMode = "move" | "start" | "end";
interface Drag {
  id: string;
  mode: DragMode;
  x0: number;
  delta: number;
}

export interface GanttProps {
  items: WorkItem[];
  dependencies: Dependency[];
  onChange: (item: WorkItem, dates: { start_date: string; due_date: string }) => Promise<void>;
  onOpen?: (item: WorkItem) => void;
}

/** What a bar's dates read as to a screen reader ("2026-12-04 to 2026-12-08"). */
function datesText(item: WorkItem, start: string, due: string): string {
  if (item.milestone) return `milestone on ${due}`;
  return start === due ? `on ${start}` : `${start} to ${due}`;
}

function span(item: WorkItem): [string, string] | null {
  const start = item.start_date ?? item.due_date;
  const due = item.due_date ?? item.start_date;
  return start && due ? [start, due] : null;
}

/** The dates a drag would give an item. */
export function draggedDates(start: string, due: string, mode: DragMode, delta: number, milestone: boolean): [string, string] {
  if (milestone || mode === "move") return [addDays(start, delta), addDays(due, delta)];
  if (mode === "start") {
    const s = addDays(start, delta);
    return daysBetween(s, due) < 0 ? [due, due] : [s, due];
  }
  const d = addDays(due, delta);
  return daysBetween(start, d) < 0 ? [start, start] : [start, d];
}

export function Gantt({ items, dependencies, onChange, onOpen }: GanttProps) {
  const [zoom, setZoom] = useState<Zoom>("day");
  const [drag, setDrag] = useState<Drag | null>(null);
  const [saving, setSaving] = useState<string | null>(null);
  const [announce, setAnnounce] = useState("");
  const [focusId, setFocusId] = useState<string | null>(null);
  const svgRef = useRef<SVGSVGElement>(null);
  // A bar keeps the keyboard focus across the re-render that follows its save.
  useEffect(() => {
    if (!focusId || saving) return;
    const el = svgRef.current?.querySelector<SVGGElement>(`[data-bar-id="${focusId}"]`);
    if (el && document.activeElement !== el) el.focus();
  });
  const ppd = PX_PER_DAY[zoom];
  const scheduled = items.filter((i) => span(i) !== null);
  const unscheduled = items.filter((i) => span(i) === null);
  const now = Date.now();
  const todayDay = today();
  const days = scheduled.flatMap((i) => span(i)!);
  const first = addDays(days.reduce((a, b) => (a < b ? a : b), todayDay), zoom === "day" ? -2 : -7);
  const last = addDays(days.reduce((a, b) => (a > b ? a : b), todayDay), zoom === "day" ? 5 : 21);
  const total = daysBetween(first, last) + 1;
  const width = LABEL_W + total * ppd;
  const height = HEAD + Math.max(1, scheduled.length) * ROW + 8;
  const x = (day: string) => LABEL_W + daysBetween(first, day) * ppd;

  const shown = (item: WorkItem): [string, string] => {
    const [s, d] = span(item)!;
    return drag && drag.id === item.id ? draggedDates(s, d, drag.mode, drag.delta, item.milestone) : [s, d];
  };
  const rowOf = new Map(scheduled.map((i, n) => [i.id, n]));

  const ticks: { day: string; label: string; major: boolean }[] = [];
  for (let n = 0; n < total; n++) {
    const day = addDays(first, n);
    if (zoom === "day") ticks.push({ day, label: day.slice(5), major: weekday(day) === 0 });
    else if (zoom === "week" && weekday(day) === 0) ticks.push({ day, label: day.slice(5), major: day.endsWith("-01") });
    else if (zoom === "month" && day.endsWith("-01")) ticks.push({ day, label: day.slice(0, 7), major: true });
  }

  const begin = (e: ReactPointerEvent<SVGElement>, item: WorkItem, mode: DragMode) => {
    if (saving) return;
    e.preventDefault();
    e.stopPropagation();
    (e.target as Element).setPointerCapture?.(e.pointerId);
    setDrag({ id: item.id, mode, x0: e.clientX, delta: 0 });
  };
  const move = (e: ReactPointerEvent<SVGSVGElement>) => {
    if (!drag) return;
    const delta = Math.round((e.clientX - drag.x0) / ppd);
    if (delta !== drag.delta) setDrag({ ...drag, delta });
  };
  const end = async () => {
    if (!drag) return;
    const item = items.find((i) => i.id === drag.id);
    const current = drag;
    if (!item || current.delta === 0) {
      setDrag(null);
      if (item && current.delta === 0 && current.mode === "move") onOpen?.(item);
      return;
    }
    const [s, d] = span(item)!;
    const [start_date, due_date] = draggedDates(s, d, current.mode, current.delta, item.milestone);
    setSaving(item.id);
    try {
      await onChange(item, { start_date, due_date });
    } finally {
      setSaving(null);
      setDrag(null);
    }
  };

  /** Arrows move a bar a day (Shift: its due day, Alt: its start day); Enter opens it. */
  const key = async (e: ReactKeyboardEvent<SVGGElement>, item: WorkItem) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      onOpen?.(item);
      return;
    }
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    e.preventDefault();
    if (saving) return;
    const mode: DragMode = e.shiftKey ? "end" : e.altKey ? "start" : "move";
    const [s, d] = span(item)!;
    const [start_date, due_date] = draggedDates(s, d, mode, e.key === "ArrowLeft" ? -1 : 1, item.milestone);
    if (start_date === s && due_date === d) return;
    setFocusId(item.id);
    setSaving(item.id);
    try {
      await onChange(item, { start_date, due_date });
      setAnnounce(`${item.title}: ${datesText(item, start_date, due_date)}.`);
    } finally {
      setSaving(null);
    }
  };

  const todayX = LABEL_W + ((now - dayStartMs(first)) / DAY_MS) * ppd;
  return (
    <div className="gantt">
      <div className="toolbar" role="group" aria-label="Zoom">
        {(["day", "week", "month"] as Zoom[]).map((z) => (
          <button key={z} type="button" className={`btn btn-small${zoom === z ? " btn-primary" : ""}`} aria-pressed={zoom === z} onClick={() => setZoom(z)}>
            {z[0].toUpperCase() + z.slice(1)}
          </button>
        ))}
        <span className="muted small" id="gantt-help">
          Drag a bar to move it, its ends to resize; or Tab to a bar and use the arrow keys (Shift: due day, Alt: start day, Enter: open).
          Dates are Beijing calendar days (UTC+8).
        </span>
      </div>
      <p className="sr-only" role="status" aria-live="polite" data-testid="gantt-announce">
        {announce}
      </p>
      <div className="gantt-scroll" style={{ overflowX: "auto" }}>
        <svg ref={svgRef} width={width} height={height} role="group" aria-label="Gantt chart" data-zoom={zoom}
             onPointerMove={move} onPointerUp={() => void end()} onPointerCancel={() => setDrag(null)} style={{ touchAction: "none", userSelect: "none" }}>
          <defs>
            <marker id="gantt-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" />
            </marker>
          </defs>
          {ticks.map((t) => (
            <g key={t.day} data-testid="gantt-tick">
              <line x1={x(t.day)} x2={x(t.day)} y1={HEAD - 6} y2={height} stroke={t.major ? "#c8ccd4" : "#eceef2"} />
              <text x={x(t.day) + 2} y={HEAD - 12} fontSize="10" fill="#667">{t.label}</text>
            </g>
          ))}
          {scheduled.map((item, n) => {
            const [s, d] = shown(item);
            const y = HEAD + n * ROW;
            const x1 = x(s);
            const w = (daysBetween(s, d) + 1) * ppd;
            const tone = item.status === "done" ? "#7fb98a" : item.status === "doing" ? "#5b8def" : "#9aa6b8";
            const focusable = {
              tabIndex: 0,
              role: "button",
              "aria-label": `${item.title}: ${datesText(item, s, d)}`,
              "aria-describedby": "gantt-help",
              "aria-keyshortcuts": "ArrowLeft ArrowRight Shift+ArrowLeft Shift+ArrowRight Alt+ArrowLeft Alt+ArrowRight Enter",
              "aria-busy": saving === item.id || undefined,
              "data-bar-id": item.id,
              className: "gantt-focus",
              onKeyDown: (e: ReactKeyboardEvent<SVGGElement>) => void key(e, item),
            };
            return (
              <g key={item.id} data-testid={`gantt-row-${item.id}`}>
                <text x={6} y={y + ROW / 2 + 4} fontSize="12" fill="#223" style={{ cursor: "pointer" }} onClick={() => onOpen?.(item)}>
                  {item.title.length > 26 ? item.title.slice(0, 25) + "…" : item.title}
                </text>
                {item.milestone ? (
                  <g data-testid={`gantt-bar-${item.id}`} data-start={s} data-due={d} {...focusable}>
                    <path className="gantt-milestone"
                          d={`M ${x1 + ppd / 2} ${y + 5} l 10 10 l -10 10 l -10 -10 z`} fill="#d9822b" style={{ cursor: "grab" }}
                          onPointerDown={(e) => begin(e, item, "move")}>
                      <title>{`${item.title}: ${d} (milestone)`}</title>
                    </path>
                  </g>
                ) : (
                  <g data-testid={`gantt-bar-${item.id}`} data-start={s} data-due={d} opacity={saving === item.id ? 0.6 : 1} {...focusable}>
                    <rect x={x1} y={y + 6} width={Math.max(w, 3)} height={ROW - 12} rx="4" fill={tone} style={{ cursor: "grab" }}
                          onPointerDown={(e) => begin(e, item, "move")}>
                      <title>{`${item.title}: ${s} → ${d}`}</title>
                    </rect>
                    <rect data-testid={`gantt-start-${item.id}`} x={x1 - 2} y={y + 6} width={EDGE} height={ROW - 12} fill="transparent"
                          style={{ cursor: "ew-resize" }} onPointerDown={(e) => begin(e, item, "start")} />
                    <rect data-testid={`gantt-end-${item.id}`} x={x1 + w - EDGE + 2} y={y + 6} width={EDGE} height={ROW - 12} fill="transparent"
                          style={{ cursor: "ew-resize" }} onPointerDown={(e) => begin(e, item, "end")} />
                  </g>
                )}
              </g>
            );
          })}
          {dependencies.map((dep) => {
            const a = items.find((i) => i.id === dep.predecessor_id);
            const b = items.find((i) => i.id === dep.successor_id);
            if (!a || !b || !rowOf.has(a.id) || !rowOf.has(b.id)) return null;
            const [, aDue] = shown(a);
            const [bStart] = shown(b);
            const ax = x(aDue) + ppd;
            const ay = HEAD + rowOf.get(a.id)! * ROW + ROW / 2;
            const bx = x(bStart);
            const by = HEAD + rowOf.get(b.id)! * ROW + ROW / 2;
            const late = daysBetween(aDue, bStart) < 1;
            const mid = Math.max(ax + 6, Math.min(bx - 6, ax + 12));
            return (
              <path key={`${a.id}-${b.id}`} data-testid="gantt-dependency" data-late={late || undefined}
                    d={`M ${ax} ${ay} H ${mid} V ${by} H ${bx - 1}`} fill="none" stroke={late ? "#d64545" : "#556"}
                    color={late ? "#d64545" : "#556"} strokeWidth="1.4" markerEnd="url(#gantt-arrow)" />
            );
          })}
          {todayX >= LABEL_W && todayX <= width && (
            <g data-testid="gantt-today">
              <line x1={todayX} x2={todayX} y1={HEAD - 8} y2={height} stroke="#d64545" strokeDasharray="4 3" />
              <text x={todayX + 3} y={height - 4} fontSize="10" fill="#d64545">today {formatDate(now)}</text>
            </g>
          )}
        </svg>
      </div>
      {unscheduled.length > 0 && (
        <p className="muted small">Not on the chart (no dates): {unscheduled.map((i) => i.title).join(", ")}</p>
      )}
    </div>
  );
}
