/** One experiment: sortable run comparison (params, last/best metrics, best direction per metric), metric chart across runs (run selection, smoothing, log scale), lines the agent skipped, sweep form. */
import { useMemo, useState, type ReactNode } from "react";
import { Link, useParams } from "react-router-dom";
import { EmptyState, ErrorBox, Loading, StateBadge, shortId } from "../../components/ui";
import { useAsync, useLiveEvents, useReloadOnChange, useThrottled, useTitle } from "../../state/hooks";
import { http } from "../http";
import { COLORS, MetricChart } from "./MetricChart";
import { type Goal, loadGoal, saveGoal } from "./metricView";
import { SweepForm } from "./SweepForm";
import type { ExperimentDetail, RunOut, SeriesPage } from "./types";

type SortKey = { kind: "param" | "last" | "best" | "state"; name: string };

function value(run: RunOut, key: SortKey, goalOf: (m: string) => Goal): string | number | boolean | null {
  if (key.kind === "state") return run.state;
  if (key.kind === "param") return run.params[key.name] ?? null;
  const m = run.metrics[key.name];
  if (!m) return null;
  return key.kind === "last" ? m.last : goalOf(key.name) === "min" ? m.min : m.max;
}

function fmt(v: number | undefined): string {
  if (v === undefined) return "—";
  const a = Math.abs(v);
  return a !== 0 && (a < 0.001 || a >= 1e5) ? v.toExponential(3) : String(Number(v.toPrecision(5)));
}

export function ExperimentPage() {
  const { experimentId = "" } = useParams();
  const detail = useAsync(() => http.get<ExperimentDetail>(`/api/research/experiments/${experimentId}`), [experimentId]);
  const [metric, setMetric] = useState("");
  const [chosenGoals, setChosenGoals] = useState<Record<string, Goal>>({});
  const goalOf = (m: string): Goal => chosenGoals[m] ?? loadGoal(m);
  const setGoal = (m: string, g: Goal) => {
    saveGoal(m, g);
    setChosenGoals((old) => ({ ...old, [m]: g }));
  };
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const [smoothing, setSmoothing] = useState(0);
  const [logScale, setLogScale] = useState(false);
  const [sort, setSort] = useState<{ key: SortKey; dir: 1 | -1 } | null>(null);
  const [message, setMessage] = useState("");
  const chosen = metric || detail.data?.metric_names[0] || "";
  const chart = useAsync(
    () => (chosen ? http.get<SeriesPage>(`/api/research/experiments/${experimentId}/metrics`, { name: chosen, points: 500 }) : Promise.resolve(null)),
    [experimentId, chosen],
  );
  // New runs or metrics (the detail reloaded on a live event): redraw the chart from fresh points.
  useReloadOnChange(detail.data, chart.reload);
  useTitle(detail.data ? detail.data.experiment.name : "Experiment");
  const reload = useThrottled(detail.reload, 1500);
  const runIds = new Set(detail.data?.runs.map((r) => r.task_id) ?? []);
  useLiveEvents((ev) => ev.subject_id === experimentId || (ev.subject_type === "task" && runIds.has(ev.subject_id)), reload);

  const runs = useMemo(() => {
    const list = [...(detail.data?.runs ?? [])];
    const pick = (m: string): Goal => chosenGoals[m] ?? loadGoal(m);
    if (sort) {
      list.sort((a, b) => {
        const va = value(a, sort.key, pick);
        const vb = value(b, sort.key, pick);
        if (va === null) return 1;
        if (vb === null) return -1;
        return (va < vb ? -1 : va > vb ? 1 : 0) * sort.dir;
      });
    }
    return list;
  }, [detail.data, sort, chosenGoals]);

  if (detail.error && !detail.data) return <div className="page"><ErrorBox error={detail.error} onRetry={detail.reload} /></div>;
  if (!detail.data) return <Loading />;
  const d = detail.data;
  const header = (label: string, key: SortKey, extra?: ReactNode) => {
    const active = sort && sort.key.kind === key.kind && sort.key.name === key.name;
    return (
      <th key={`${key.kind}-${key.name}`} aria-sort={active ? (sort!.dir === 1 ? "ascending" : "descending") : "none"}>
        <button type="button" className="btn-link" onClick={() => setSort({ key, dir: active && sort!.dir === 1 ? -1 : 1 })}>
          {label}{active ? (sort!.dir === 1 ? " ▲" : " ▼") : ""}
        </button>
        {extra}
      </th>
    );
  };
  const goalPicker = (m: string) => (
    <select
      className="goal-select"
      value={goalOf(m)}
      onChange={(e) => setGoal(m, e.target.value as Goal)}
      aria-label={`Best ${m} is`}
      data-testid={`goal-${m}`}
    >
      <option value="min">lowest</option>
      <option value="max">highest</option>
    </select>
  );
  const skippedTotal = d.runs.reduce((n, r) => n + (r.skipped_lines ?? 0), 0);
  const seriesIds = chart.data?.series.map((s) => s.task_id) ?? [];
  const toggleRun = (id: string) =>
    setHidden((old) => {
      const next = new Set(old);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const labels = Object.fromEntries(d.runs.map((r) => [r.task_id, Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(" ") || shortId(r.task_id)]));
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <p className="muted small"><Link to="/experiments">Experiments</Link></p>
          <h1>{d.experiment.name}</h1>
          <p className="muted small">{d.runs.length} runs</p>
        </div>
      </div>
      {skippedTotal > 0 && (
        <div className="alert alert-warn" role="status" data-testid="skipped-lines">
          The agents skipped {skippedTotal} malformed line{skippedTotal === 1 ? "" : "s"} of the runs' metrics files (not JSON objects, or
          too long). The runs below name the first few.
        </div>
      )}
      {message && <div className="alert alert-info" role="status">{message}</div>}
      <section className="card" aria-label="Runs">
        <div className="toolbar">
          <h2>Runs</h2>
          {d.metric_names.length > 0 && <span className="muted small">Best per metric: lowest or highest, chosen in its column (remembered in this browser).</span>}
        </div>
        {d.runs.length === 0 ? (
          <EmptyState title="No runs yet">Submit a sweep below, or a task with the research extension.</EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" data-testid="runs-table">
              <thead>
                <tr>
                  <th>Run</th>
                  {header("State", { kind: "state", name: "" })}
                  {d.param_names.map((p) => header(p, { kind: "param", name: p }))}
                  {d.metric_names.flatMap((m) => [header(`${m} last`, { kind: "last", name: m }), header(`${m} best`, { kind: "best", name: m }, goalPicker(m))])}
                </tr>
              </thead>
              <tbody>
                {runs.map((r) => (
                  <tr key={r.task_id} data-testid={`run-row-${r.task_id}`}>
                    <td>
                      <Link to={`/tasks/${r.task_id}`}>{r.name || shortId(r.task_id)}</Link>
                      {r.rejected_points > 0 && <div className="small alert-detail" title={r.last_rejection ?? ""}>{r.rejected_points} bad points rejected</div>}
                      {(r.skipped_lines ?? 0) > 0 && (
                        <details className="small skipped" data-testid={`skipped-${r.task_id}`}>
                          <summary>{r.skipped_lines} malformed line{r.skipped_lines === 1 ? "" : "s"} skipped</summary>
                          <ul className="mono">
                            {(r.skipped_samples ?? []).map((t, i) => <li key={i}>{t}</li>)}
                          </ul>
                        </details>
                      )}
                    </td>
                    <td><StateBadge state={r.state} /></td>
                    {d.param_names.map((p) => <td key={p} className="mono">{r.params[p] === undefined ? "—" : String(r.params[p])}</td>)}
                    {d.metric_names.flatMap((m) => [
                      <td key={`${m}-last`} className="num">{fmt(r.metrics[m]?.last)}</td>,
                      <td key={`${m}-best`} className="num" data-testid={`best-${m}`}>{fmt(goalOf(m) === "min" ? r.metrics[m]?.min : r.metrics[m]?.max)}</td>,
                    ])}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section className="card" aria-label="Metrics">
        <div className="toolbar">
          <h2>Metrics</h2>
          {d.metric_names.length > 0 && (
            <>
              <label className="inline-field">
                <span>Metric</span>
                <select value={chosen} onChange={(e) => setMetric(e.target.value)} aria-label="Metric">
                  {d.metric_names.map((m) => <option key={m}>{m}</option>)}
                </select>
              </label>
              <label className="inline-field">
                <span>Smoothing</span>
                <input
                  type="range"
                  min={0}
                  max={0.99}
                  step={0.01}
                  value={smoothing}
                  onChange={(e) => setSmoothing(Number(e.target.value))}
                  aria-label="Smoothing"
                  aria-valuetext={smoothing === 0 ? "off" : `EMA weight ${smoothing}`}
                />
                <output className="mono small">{smoothing === 0 ? "off" : smoothing.toFixed(2)}</output>
              </label>
              <label className="inline-field">
                <input type="checkbox" checked={logScale} onChange={(e) => setLogScale(e.target.checked)} />
                <span>Log scale</span>
              </label>
            </>
          )}
        </div>
        {!chosen && <p className="muted">No metrics reported yet.</p>}
        <ErrorBox error={chart.error} />
        {chart.data && <MetricChart page={chart.data} labels={labels} hidden={hidden} smoothing={smoothing} log={logScale} />}
        {seriesIds.length > 1 && (
          <fieldset className="run-picker" aria-label="Runs shown">
            <legend className="small">Runs shown</legend>
            {seriesIds.map((id, n) => (
              <label key={id} className="inline-field small">
                <input type="checkbox" checked={!hidden.has(id)} onChange={() => toggleRun(id)} data-testid={`show-${id}`} />
                <span className="legend-swatch" style={{ background: COLORS[n % COLORS.length], display: "inline-block", width: 10, height: 10 }} />
                <span>{labels[id] ?? shortId(id)}</span>
              </label>
            ))}
            <button type="button" className="btn-link small" onClick={() => setHidden(new Set())} disabled={hidden.size === 0}>
              Show all
            </button>
            <button type="button" className="btn-link small" onClick={() => setHidden(new Set(seriesIds))} disabled={hidden.size === seriesIds.length}>
              Hide all
            </button>
          </fieldset>
        )}
      </section>
      <SweepForm experimentId={experimentId} onSubmitted={(n) => { setMessage(`Submitted ${n} tasks.`); detail.reload(); }} />
    </div>
  );
}
