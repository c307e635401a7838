/** One node: identity, resources, utilisation charts from heartbeat samples, caches, drain/undrain, delete, raw JSON. */
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { allows } from "../api/access";
import { api } from "../api/client";
import type { Node, NodeSample } from "../api/types";
import { BeijingDateTimeInput } from "../components/BeijingDateTimeInput";
import { LineChart, type Series } from "../components/charts";
import { MaintenancePanel } from "../components/MaintenancePanel";
import { NodeCaches } from "../components/NodeCaches";
import { NodeBadges, Runtimes } from "../components/NodeBadges";
import { Time } from "../components/Time";
import { ConfirmButton, ErrorBox, KeyValues, Labels, Loading, RawJson, formatMb, shortId } from "../components/ui";
import { useAsync, useLiveAsync, useLiveEvents, useNow, useThrottled, useTitle } from "../state/hooks";
import { isoInTextToBeijing, toApiIso, toMs } from "../time";

const RANGES = [
  { label: "1 h", ms: 3_600_000, step: 60 },
  { label: "6 h", ms: 6 * 3_600_000, step: 120 },
  { label: "24 h", ms: 24 * 3_600_000, step: 600 },
];
const GPU_COLORS = ["#7c4dff", "#00a3a3", "#e07a00", "#d6336c", "#2f9e44", "#1c7ed6", "#ae3ec9", "#f08c00"];

export function NodeDetailPage() {
  const { id = "" } = useParams();
  const navigate = useNavigate();
  const node = useLiveAsync((signal) => api.node(id, signal), [id]);
  const [range, setRange] = useState(RANGES[0]);
  const [since, setSince] = useState<string | null>(null);
  const now = useNow(5_000);
  const reload = useThrottled(node.reload, 800);
  useLiveEvents((ev) => ev.subject_id === id || ev.kind.startsWith("task."), reload);
  useEffect(() => {
    const t = setInterval(node.reload, 15_000);
    return () => clearInterval(t);
  }, [node.reload]);
  useTitle(node.data ? `Node ${node.data.name}` : "Node");

  const n = node.data;
  if (!n) {
    return (
      <div className="page">
        <Breadcrumb name={shortId(id)} />
        {node.error !== null ? <ErrorBox error={node.error} onRetry={node.reload} /> : <Loading />}
      </div>
    );
  }
  const act = (p: Promise<Node>) => p.then((updated) => node.setData(() => updated));
  return (
    <div className="page">
      <Breadcrumb name={n.name} />
      <div className="page-head">
        <h1>
          {n.name} <NodeBadges node={n} />
        </h1>
        <div className="actions">
          {n.draining
            ? allows(n, "undrain") && <ConfirmButton label="Undrain" tone="normal" onConfirm={() => act(api.undrain(n.id))} />
            : allows(n, "drain") && <ConfirmButton label="Drain" tone="normal" onConfirm={() => act(api.drain(n.id))} />}
          {allows(n, "delete") && <ConfirmButton label="Delete" onConfirm={() => api.deleteNode(n.id).then(() => navigate("/nodes"))} />}
        </div>
      </div>
      {node.error !== null && <ErrorBox error={node.error} onRetry={node.reload} />}
      {n.unhealthy_reason && (
        <div className="alert alert-error unhealthy-alert" role="alert" data-testid="unhealthy-reason">
          <strong>Unhealthy:</strong> <span className="alert-detail">{isoInTextToBeijing(n.unhealthy_reason)}</span>
          <span className="muted small">The node gets no new work until its agent reports healthy again.</span>
        </div>
      )}
      <div className="grid-2">
        <section className="card">
          <h2>Node</h2>
          <KeyValues
            items={[
              ["Hostname", n.hostname ?? "—"],
              ["OS", n.os ?? "—"],
              ["Agent", n.agent_version ?? "—"],
              ["Runtimes", <Runtimes runtimes={n.runtimes} />],
              ["Labels", <Labels labels={n.labels} />],
              [
                "Last heartbeat",
                <span data-testid="heartbeat">
                  <Time value={n.last_heartbeat_at} mode="full" /> (<Time value={n.last_heartbeat_at} mode="relative" now={now} />)
                </span>,
              ],
              ["Connected", <Time value={n.connected_at} mode="full" />],
              ["Registered", <Time value={n.created_at} mode="full" />],
            ]}
          />
        </section>
        <section className="card">
          <h2>Resources</h2>
          <KeyValues
            items={[
              ["CPUs", `${n.cpus} (${n.free?.cpus ?? "—"} free)`],
              ["Memory", `${formatMb(n.memory_mb)} (${formatMb(n.free?.memory_mb)} free)`],
              ["Disk free", formatMb(n.usage?.disk_free_mb)],
              [
                "GPUs",
                n.gpus.length === 0 ? (
                  "none"
                ) : (
                  <ul className="plain-list">
                    {n.gpus.map((g) => (
                      <li key={g.index}>
                        #{g.index} {g.model} · {formatMb(g.memory_mb)}
                      </li>
                    ))}
                  </ul>
                ),
              ],
              [
                "Running attempts",
                n.running_attempts.length === 0 ? (
                  "none"
                ) : (
                  <ul className="plain-list">
                    {n.running_attempts.map((a) => (
                      <li key={`${a.task_id}-${a.attempt_no}`}>
                        <Link to={`/tasks/${a.task_id}`}>{shortId(a.task_id)}</Link> attempt {a.attempt_no}
                      </li>
                    ))}
                  </ul>
                ),
              ],
            ]}
          />
        </section>
      </div>
      <section className="section">
        <div className="section-head">
          <h2>Utilisation</h2>
          <div className="toolbar" role="group" aria-label="Chart range">
            {RANGES.map((r) => (
              <button
                key={r.label}
                type="button"
                className={`chip${range === r && !since ? " chip-on" : ""}`}
                aria-pressed={range === r && !since}
                onClick={() => {
                  setRange(r);
                  setSince(null);
                }}
              >
                {r.label}
              </button>
            ))}
            <BeijingDateTimeInput id="samples-since" label="Since" value={since} onChange={setSince} max={toApiIso(now)} />
          </div>
        </div>
        {since ? (
          <NodeCharts node={n} fixedStartMs={toMs(since)} rangeMs={0} stepS={stepFor(now - toMs(since))} />
        ) : (
          <NodeCharts node={n} rangeMs={range.ms} stepS={range.step} />
        )}
      </section>
      <NodeCaches node={n} admin={allows(n, "clear_caches")} />
      {allows(n, "maintenance") && <MaintenancePanel node={n} />}
      <RawJson value={n} />
    </div>
  );
}

function Breadcrumb({ name }: { name: string }) {
  return (
    <nav aria-label="Breadcrumb" className="breadcrumb">
      <Link to="/nodes">Nodes</Link> / <span aria-current="page">{name}</span>
    </nav>
  );
}

function NodeCharts({ node, rangeMs, stepS, fixedStartMs }: { node: Node; rangeMs: number; stepS: number; fixedStartMs?: number }) {
  const samples = useAsync(
    (signal) => api.samples(node.id, toApiIso(fixedStartMs ?? Date.now() - rangeMs), stepS, signal),
    [node.id, rangeMs, stepS, fixedStartMs],
  );
  // Every 30 s the window moves on: reload in the background (the chart stays on screen).
  const { reload: reloadSamples } = samples;
  useEffect(() => {
    const t = setInterval(reloadSamples, 30_000);
    return () => clearInterval(t);
  }, [reloadSamples]);
  const endMs = Date.now();
  const startMs = Math.min(fixedStartMs ?? endMs - rangeMs, endMs - 60_000);
  if (samples.error !== null) return <ErrorBox error={samples.error} onRetry={samples.reload} />;
  if (!samples.data) return <Loading label="Loading samples…" />;
  const items: NodeSample[] = samples.data.items;
  const pts = (f: (s: NodeSample) => number | null) => withGaps(items, stepS).map((s) => ({ ms: s.ms, v: s.sample ? f(s.sample) : null }));
  const cpu: Series[] = [{ name: "CPU", color: "var(--accent)", points: pts((s) => s.cpu_percent) }];
  const mem: Series[] = [
    {
      name: "Memory",
      color: "#00a3a3",
      points: pts((s) => (s.memory_used_mb != null && s.memory_total_mb ? (100 * s.memory_used_mb) / s.memory_total_mb : null)),
    },
  ];
  const gpus: Series[] = node.gpus.map((g, i) => ({
    name: `GPU ${g.index}`,
    color: GPU_COLORS[i % GPU_COLORS.length],
    points: pts((s) => s.gpus.find((x) => x.index === g.index)?.util_percent ?? null),
  }));
  const pct = (v: number) => `${Math.round(v)}%`;
  return (
    <div className="charts-row">
      <div className="card">
        <LineChart title="CPU utilisation" series={cpu} startMs={startMs} endMs={endMs} yMax={100} yFormat={pct} />
      </div>
      <div className="card">
        <LineChart title="Memory used" series={mem} startMs={startMs} endMs={endMs} yMax={100} yFormat={pct} />
      </div>
      <div className="card">
        {gpus.length === 0 ? (
          <div className="chart">
            <div className="chart-head">
              <span className="chart-title">GPU utilisation</span>
            </div>
            <div className="chart-empty" style={{ height: 180 }}>
              This node reports no GPUs.
            </div>
          </div>
        ) : (
          <LineChart title="GPU utilisation" series={gpus} startMs={startMs} endMs={endMs} yMax={100} yFormat={pct} />
        )}
      </div>
    </div>
  );
}

/** Sample step for a custom range: about 300 points, never under a minute. */
function stepFor(rangeMs: number): number {
  return Math.max(60, Math.ceil(rangeMs / 1000 / 300 / 60) * 60);
}

/** Inserts an empty point where samples are missing for over two steps, so lines break instead of bridging gaps. */
function withGaps(items: NodeSample[], stepS: number): { ms: number; sample: NodeSample | null }[] {
  const out: { ms: number; sample: NodeSample | null }[] = [];
  let prev: number | null = null;
  for (const s of items) {
    const ms = toMs(s.ts);
    if (prev !== null && ms - prev > 2.5 * stepS * 1000) out.push({ ms: prev + stepS * 1000, sample: null });
    out.push({ ms, sample: s });
    prev = ms;
  }
  return out;
}
