/** Hand-rolled SVG charts (time series lines and stacked hourly bars) with Beijing-time axes. */
import { useEffect, useRef, useState, type ReactNode } from "react";
import { axisTicks, formatDateTime, formatTime } from "../time";

export interface Point {
  ms: number;
  v: number | null;
}

export interface Series {
  name: string;
  color: string;
  points: Point[];
}

function useWidth<T extends HTMLElement>(): [React.RefObject<T | null>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(600);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const ro = new ResizeObserver(([entry]) => setWidth(Math.max(200, Math.floor(entry.contentRect.width))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, width];
}

/** Round axis ticks covering [lo, hi]: steps of 1, 2, 2.5 or 5 × 10^k (0.25, 0.5 … never 0.2627). */
export function niceTicks(lo: number, hi: number, maxTicks = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, maxTicks - 1);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * pow >= raw) ?? 10) * pow;
  const start = Math.floor(lo / step + 1e-9) * step;
  const out: number[] = [];
  for (let v = start; v < hi + step - 1e-9 * step && out.length < 50; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A y-axis label that keeps the tick's own value (2.5 stays "2.5", never rounded onto another gridline). */
export function formatTick(v: number): string {
  return String(Number(v.toFixed(2)));
}

function niceMax(max: number): number {
  if (max <= 4) return 4; // keeps the five y ticks on whole numbers for small counts
  const pow = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= max) return m * pow;
  return 10 * pow;
}

const PAD = { left: 44, right: 12, top: 10, bottom: 24 };
/** About half the width of a time label ("12-01", "06:00") at the chart's font size. */
const X_LABEL_HALF = 18;

interface Frame {
  width: number;
  height: number;
  startMs: number;
  endMs: number;
  yMax: number;
  yFormat: (v: number) => string;
  children: ReactNode;
  hover: ReactNode;
  onMove: (ms: number | null) => void;
}

function ChartFrame({ width, height, startMs, endMs, yMax, yFormat, children, hover, onMove }: Frame) {
  const iw = width - PAD.left - PAD.right;
  const ih = height - PAD.top - PAD.bottom;
  const ticks = axisTicks(startMs, endMs, Math.max(2, Math.floor(iw / 80)));
  const x = (ms: number) => PAD.left + ((ms - startMs) / (endMs - startMs)) * iw;
  // Round gridlines (steps of 1, 2, 2.5 or 5 × 10^k), each labelled with its own value.
  const yTicks = niceTicks(0, yMax).filter((v) => v <= yMax * (1 + 1e-9));
  return (
    <svg
      width={width}
      height={height}
      className="chart-svg"
      onMouseMove={(e) => {
        const rect = (e.currentTarget as SVGSVGElement).getBoundingClientRect();
        const px = e.clientX - rect.left;
        if (px < PAD.left || px > width - PAD.right) return onMove(null);
        onMove(startMs + ((px - PAD.left) / iw) * (endMs - startMs));
      }}
      onMouseLeave={() => onMove(null)}
      aria-hidden="true"
    >
      {yTicks.map((v) => {
        const y = PAD.top + ih - (v / yMax) * ih;
        return (
          <g key={v}>
            <line x1={PAD.left} x2={width - PAD.right} y1={y} y2={y} className="chart-grid" />
            <text x={PAD.left - 6} y={y + 4} className="chart-label" textAnchor="end" data-y-tick={v}>
              {yFormat(v)}
            </text>
          </g>
        );
      })}
      {ticks.map((t) => {
        // A label centred on a tick at the chart's edge would be cut off ("06:0"): it ends (or starts) there instead.
        const px = x(t.ms);
        const anchor = px + X_LABEL_HALF > width ? "end" : px - X_LABEL_HALF < 0 ? "start" : "middle";
        return (
          <g key={t.ms}>
            <line x1={px} x2={px} y1={PAD.top + ih} y2={PAD.top + ih + 4} className="chart-axis" />
            <text x={px} y={height - 6} className="chart-label chart-xlabel" textAnchor={anchor}>
              {t.label}
            </text>
          </g>
        );
      })}
      <line x1={PAD.left} x2={width - PAD.right} y1={PAD.top + ih} y2={PAD.top + ih} className="chart-axis" />
      {children}
      {hover}
    </svg>
  );
}

interface LineChartProps {
  title: string;
  series: Series[];
  startMs: number;
  endMs: number;
  yMax?: number;
  yFormat?: (v: number) => string;
  height?: number;
  empty?: string;
}

/** Line chart over [startMs, endMs]; null values break the line (no invented data across gaps). */
export function LineChart({ title, series, startMs, endMs, yMax, yFormat = formatTick, height = 180, empty }: LineChartProps) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hoverMs, setHoverMs] = useState<number | null>(null);
  const all = series.flatMap((s) => s.points.map((p) => p.v).filter((v): v is number => v !== null));
  const max = yMax ?? niceMax(Math.max(0, ...all));
  const iw = width - PAD.left - PAD.right;
  const ih = height - PAD.top - PAD.bottom;
  const x = (ms: number) => PAD.left + ((ms - startMs) / (endMs - startMs)) * iw;
  const y = (v: number) => PAD.top + ih - (Math.min(v, max) / max) * ih;
  const paths = series.map((s) => {
    let d = "";
    let pen = false;
    const dots: { cx: number; cy: number }[] = [];
    const inRange = s.points.filter((p) => p.ms >= startMs && p.ms <= endMs);
    inRange.forEach((p, i) => {
      if (p.v === null) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${x(p.ms).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
      // A point with no neighbour draws no line: mark it, and always mark the latest value.
      const lonely = (i === 0 || inRange[i - 1].v === null) && (i === inRange.length - 1 || inRange[i + 1].v === null);
      if (lonely || i === inRange.length - 1) dots.push({ cx: x(p.ms), cy: y(p.v) });
    });
    return { s, d, dots };
  });
  let hover: ReactNode = null;
  let readout: ReactNode = null;
  if (hoverMs !== null && series.length > 0 && series[0].points.length > 0) {
    const ref0 = series[0].points.reduce((best, p) => (Math.abs(p.ms - hoverMs) < Math.abs(best.ms - hoverMs) ? p : best));
    hover = <line x1={x(ref0.ms)} x2={x(ref0.ms)} y1={PAD.top} y2={PAD.top + ih} className="chart-cursor" />;
    readout = (
      <span className="chart-readout">
        {formatDateTime(ref0.ms)}
        {series.map((s) => {
          const p = s.points.find((q) => q.ms === ref0.ms);
          return (
            <span key={s.name} style={{ color: s.color }}>
              {" "}
              {s.name}: {p && p.v !== null ? yFormat(p.v) : "—"}
            </span>
          );
        })}
      </span>
    );
  }
  const latest = series.map((s) => {
    const last = [...s.points].reverse().find((p) => p.v !== null);
    return `${s.name} ${last ? yFormat(last.v!) : "no data"}`;
  });
  return (
    <figure className="chart" ref={ref} aria-label={`${title}: latest ${latest.join(", ")}`}>
      <figcaption className="chart-head">
        <span className="chart-title">{title}</span>
        <span className="chart-legend">
          {readout ??
            series.map((s) => (
              <span key={s.name} className="legend-item">
                <span className="legend-swatch" style={{ background: s.color }} />
                {s.name}
              </span>
            ))}
        </span>
      </figcaption>
      {all.length === 0 ? (
        <div className="chart-empty" style={{ height }}>
          {empty ?? "No samples in this range."}
        </div>
      ) : (
        <ChartFrame width={width} height={height} startMs={startMs} endMs={endMs} yMax={max} yFormat={yFormat} hover={hover} onMove={setHoverMs}>
          {paths.map(({ s, d, dots }) => (
            <g key={s.name}>
              <path d={d} fill="none" stroke={s.color} strokeWidth={1.8} strokeLinejoin="round" />
              {dots.map((p) => (
                <circle key={p.cx} cx={p.cx} cy={p.cy} r={2.8} fill={s.color} />
              ))}
            </g>
          ))}
        </ChartFrame>
      )}
    </figure>
  );
}

export interface BarBucket {
  ms: number;
  values: number[];
}

interface BarChartProps {
  title: string;
  buckets: BarBucket[];
  bucketMs: number;
  startMs: number;
  endMs: number;
  keys: { name: string; color: string }[];
  height?: number;
}

/** Stacked bars, one per time bucket (e.g. tasks finished per hour). */
export function StackedBarChart({ title, buckets, bucketMs, startMs, endMs, keys, height = 180 }: BarChartProps) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hoverMs, setHoverMs] = useState<number | null>(null);
  const max = niceMax(Math.max(1, ...buckets.map((b) => b.values.reduce((a, c) => a + c, 0))));
  const iw = width - PAD.left - PAD.right;
  const ih = height - PAD.top - PAD.bottom;
  const x = (ms: number) => PAD.left + ((ms - startMs) / (endMs - startMs)) * iw;
  const bw = Math.max(2, (bucketMs / (endMs - startMs)) * iw - 2);
  const hovered = hoverMs === null ? null : buckets.find((b) => hoverMs >= b.ms && hoverMs < b.ms + bucketMs) ?? null;
  const total = buckets.reduce((a, b) => a + b.values.reduce((c, d) => c + d, 0), 0);
  return (
    <figure className="chart" ref={ref} aria-label={`${title}: ${total} in range`}>
      <figcaption className="chart-head">
        <span className="chart-title">{title}</span>
        <span className="chart-legend">
          {hovered ? (
            <span className="chart-readout">
              {formatTime(hovered.ms).slice(0, 5)}–{formatTime(hovered.ms + bucketMs).slice(0, 5)}
              {keys.map((k, i) => (
                <span key={k.name} style={{ color: k.color }}>
                  {" "}
                  {k.name}: {hovered.values[i]}
                </span>
              ))}
            </span>
          ) : (
            keys.map((k) => (
              <span key={k.name} className="legend-item">
                <span className="legend-swatch" style={{ background: k.color }} />
                {k.name}
              </span>
            ))
          )}
        </span>
      </figcaption>
      <ChartFrame width={width} height={height} startMs={startMs} endMs={endMs} yMax={max} yFormat={formatTick} hover={null} onMove={setHoverMs}>
        {buckets.map((b) => {
          let acc = 0;
          return (
            <g key={b.ms} className={hovered === b ? "bar-hover" : undefined}>
              {b.values.map((v, i) => {
                if (v <= 0) return null;
                const y0 = PAD.top + ih - (acc / max) * ih;
                acc += v;
                const y1 = PAD.top + ih - (acc / max) * ih;
                return <rect key={i} x={x(b.ms) + 1} y={y1} width={bw} height={y0 - y1} fill={keys[i].color} rx={1.5} />;
              })}
            </g>
          );
        })}
      </ChartFrame>
    </figure>
  );
}
