/** One metric across runs: a line per shown run over steps (downsampled buckets drawn as avg with a min–max band), optional EMA smoothing and log scale. */
import { niceTicks } from "../../components/charts";
import { ema, logTicks } from "./metricView";
import type { SeriesPage } from "./types";

export const COLORS = ["#3b6fd6", "#d9822b", "#2f9e6e", "#c2417a", "#7a5cc7", "#8a8f2b", "#2b8fa3", "#b04a3b"];
const W = 720;
const H = 260;
const PAD = { l: 56, r: 12, t: 12, b: 28 };

function fmt(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 0.001 || a >= 1e5) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

/** Round step ticks (whole steps only: 0, 50, 100 … never 37.5). */
export function stepTicks(x0: number, x1: number): number[] {
  return niceTicks(x0, x1).filter((v) => Number.isInteger(v) && v >= x0 && v <= x1);
}

interface Props {
  page: SeriesPage;
  labels: Record<string, string>;
  /** Runs (task ids) not drawn. */
  hidden?: ReadonlySet<string>;
  /** EMA weight, 0 (raw) to 0.99. */
  smoothing?: number;
  log?: boolean;
}

export function MetricChart({ page, labels, hidden = new Set(), smoothing = 0, log = false }: Props) {
  const shown = page.series
    .map((s, n) => ({ s, color: COLORS[n % COLORS.length] }))
    .filter(({ s }) => !hidden.has(s.task_id))
    .map(({ s, color }) => ({ s, color, points: log ? s.points.filter((p) => p.min > 0 && p.avg > 0) : s.points }));
  const pts = shown.flatMap((x) => x.points);
  const dropped = log ? shown.reduce((n, x) => n + x.s.points.length - x.points.length, 0) : 0;
  if (!pts.length) {
    return (
      <p className="muted" data-testid="metric-chart-empty">
        {page.series.every((s) => !s.points.length)
          ? `No points for ${page.metric} yet.`
          : shown.length === 0
            ? "Every run is hidden: choose runs to show below the chart."
            : `No positive values of ${page.metric} to draw on a log scale.`}
      </p>
    );
  }
  const x0 = Math.min(...pts.map((p) => p.step));
  const x1 = Math.max(...pts.map((p) => p.step_end), x0 + 1);
  let lo = Math.min(...pts.map((p) => p.min));
  let hi = Math.max(...pts.map((p) => p.max));
  let yTicks: number[];
  let tf = (v: number) => v;
  if (log) {
    lo = 10 ** Math.floor(Math.log10(lo));
    hi = 10 ** Math.max(Math.ceil(Math.log10(hi)), Math.log10(lo) + 1);
    yTicks = logTicks(lo, hi);
    tf = Math.log10;
  } else {
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    yTicks = niceTicks(lo, hi);
    lo = yTicks[0];
    hi = yTicks[yTicks.length - 1];
  }
  const sx = (v: number) => PAD.l + ((v - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (v: number) => H - PAD.b - ((tf(v) - tf(lo)) / (tf(hi) - tf(lo))) * (H - PAD.t - PAD.b);
  const xTicks = stepTicks(x0, x1);
  const path = (xs: number[], ys: number[]) => xs.map((x, i) => `${i ? "L" : "M"} ${sx(x).toFixed(1)} ${sy(ys[i]).toFixed(1)}`).join(" ");
  return (
    <figure className="metric-chart">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        width="100%"
        role="img"
        aria-label={`${page.metric} by step${log ? ", log scale" : ""}${smoothing > 0 ? `, smoothed ${smoothing}` : ""}`}
        data-testid="metric-chart"
        data-log={log ? "true" : "false"}
      >
        {yTicks.map((v, i) => (
          <g key={`y${i}`}>
            <line x1={PAD.l} x2={W - PAD.r} y1={sy(v)} y2={sy(v)} stroke="#eceef2" />
            <text x={PAD.l - 4} y={sy(v) + 3} fontSize="10" textAnchor="end" fill="#667" data-y-tick={v}>{fmt(v)}</text>
          </g>
        ))}
        {xTicks.map((v) => (
          <text key={`x${v}`} x={sx(v)} y={H - 8} fontSize="10" textAnchor="middle" fill="#667" data-x-tick={v}>{v}</text>
        ))}
        {shown.map(({ s, color, points }) => {
          const mid = points.map((p) => (p.step + p.step_end) / 2);
          const avg = points.map((p) => p.avg);
          const band = s.downsampled && points.length
            ? path(mid, points.map((p) => p.max)) + " " + [...points].reverse().map((p) => `L ${sx((p.step + p.step_end) / 2).toFixed(1)} ${sy(p.min).toFixed(1)}`).join(" ") + " Z"
            : "";
          const smooth = smoothing > 0 && points.length > 1 ? ema(avg, smoothing) : null;
          return (
            <g key={s.task_id} data-testid="metric-series" data-task={s.task_id} data-points={points.length} data-smoothed={smooth ? "true" : "false"}>
              {band && <path d={band} fill={color} opacity="0.15" />}
              <path d={path(mid, avg)} fill="none" stroke={color} strokeWidth={smooth ? 1 : 1.6} opacity={smooth ? 0.3 : 1} />
              {smooth && <path d={path(mid, smooth)} fill="none" stroke={color} strokeWidth="1.8" data-testid="metric-smoothed" />}
              {points.length === 1 && <circle cx={sx(mid[0])} cy={sy(avg[0])} r="3" fill={color} />}
            </g>
          );
        })}
      </svg>
      {dropped > 0 && (
        <figcaption className="muted small">
          {dropped} point{dropped === 1 ? "" : "s"} at or below zero not drawn on the log scale.
        </figcaption>
      )}
      <figcaption className="legend">
        {shown.map(({ s, color }) => (
          <span key={s.task_id} className="legend-item">
            <span className="legend-swatch" style={{ background: color, display: "inline-block", width: 10, height: 10 }} />{" "}
            {labels[s.task_id] ?? s.name}
            {s.downsampled ? " (downsampled)" : ""}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
