/** One metric across runs: a line per run over steps (downsampled buckets drawn as avg with a min–max band). */
import { niceTicks } from "../../components/charts";
import type { SeriesPage } from "./types";

const COLORS = ["#3b6fd6", "#d9822b", "#2f9e6e", "#c2417a", "#7a5cc7", "#8a8f2b", "#2b8fa3", "#b04a3b"];
const W = 720;
const H = 260;
const PAD = { l: 56, r: 12, t: 12, b: 28 };

function fmt(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 0.001 || a >= 1e5) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

export function MetricChart({ page, labels }: { page: SeriesPage; labels: Record<string, string> }) {
  const pts = page.series.flatMap((s) => s.points);
  if (!pts.length) return <p className="muted">No points for {page.metric} yet.</p>;
  const x0 = Math.min(...pts.map((p) => p.step));
  const x1 = Math.max(...pts.map((p) => p.step_end), x0 + 1);
  let lo = Math.min(...pts.map((p) => p.min));
  let hi = Math.max(...pts.map((p) => p.max));
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  const yTicks = niceTicks(lo, hi);
  const y0 = yTicks[0];
  const y1 = yTicks[yTicks.length - 1];
  const sx = (v: number) => PAD.l + ((v - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (v: number) => H - PAD.b - ((v - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(x0 + f * (x1 - x0)));
  return (
    <figure className="metric-chart">
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={`${page.metric} by step`} data-testid="metric-chart">
        {yTicks.map((v, i) => (
          <g key={`y${i}`}>
            <line x1={PAD.l} x2={W - PAD.r} y1={sy(v)} y2={sy(v)} stroke="#eceef2" />
            <text x={PAD.l - 4} y={sy(v) + 3} fontSize="10" textAnchor="end" fill="#667" data-y-tick={v}>{fmt(v)}</text>
          </g>
        ))}
        {xTicks.map((v, i) => (
          <text key={`x${i}`} x={sx(v)} y={H - 8} fontSize="10" textAnchor="middle" fill="#667">{v}</text>
        ))}
        {page.series.map((s, n) => {
          const color = COLORS[n % COLORS.length];
          const mid = (p: (typeof s.points)[number]) => (p.step + p.step_end) / 2;
          const line = s.points.map((p, i) => `${i ? "L" : "M"} ${sx(mid(p)).toFixed(1)} ${sy(p.avg).toFixed(1)}`).join(" ");
          const band = s.downsampled
            ? s.points.map((p, i) => `${i ? "L" : "M"} ${sx(mid(p)).toFixed(1)} ${sy(p.max).toFixed(1)}`).join(" ") + " " +
              [...s.points].reverse().map((p) => `L ${sx(mid(p)).toFixed(1)} ${sy(p.min).toFixed(1)}`).join(" ") + " Z"
            : "";
          return (
            <g key={s.task_id} data-testid="metric-series" data-task={s.task_id} data-points={s.points.length}>
              {band && <path d={band} fill={color} opacity="0.15" />}
              <path d={line} fill="none" stroke={color} strokeWidth="1.6" />
              {s.points.length === 1 && <circle cx={sx(mid(s.points[0]))} cy={sy(s.points[0].avg)} r="3" fill={color} />}
            </g>
          );
        })}
      </svg>
      <figcaption className="legend">
        {page.series.map((s, n) => (
          <span key={s.task_id} className="legend-item">
            <span className="legend-swatch" style={{ background: COLORS[n % COLORS.length], display: "inline-block", width: 10, height: 10 }} />{" "}
            {labels[s.task_id] ?? s.name}
            {s.downsampled ? " (downsampled)" : ""}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
