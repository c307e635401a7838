/** One pipeline: its DAG drawn live, a legend, the step table (tasks, files in and out), cancel / retry / rerun as the access policy allows. */
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { allows } from "../../api/access";
import type { UnideskEvent } from "../../api/types";
import { EventTrace } from "../../components/TaskTrace";
import { Time } from "../../components/Time";
import { ConfirmButton, ErrorBox, KeyValues, Loading, RawJson, StateBadge, formatBytes, shortId } from "../../components/ui";
import { useLiveAsync, useLiveEvents, useThrottled, useTitle } from "../../state/hooks";
import { http } from "../http";
import { type FileIn, countsText, filesIn, pointLabel, pointLook, stepLook } from "./dagModel";
import { PipelineDag, StepLegend } from "./PipelineDag";
import type { Pipeline, Step } from "./types";

const FINAL = ["succeeded", "failed", "cancelled"];
const RETRYABLE = ["failed", "cancelled"];

export function PipelinePage() {
  const { pipelineId = "" } = useParams();
  const navigate = useNavigate();
  const pipeline = useLiveAsync(() => http.get<Pipeline>(`/api/pipelines/${pipelineId}`), [pipelineId]);
  const reload = useThrottled(pipeline.reload, 400);
  const taskIds = new Set((pipeline.data?.steps ?? []).flatMap((s) => s.points.map((p) => p.task_id).filter((t): t is string => !!t)));
  useLiveEvents((ev) => ev.subject_id === pipelineId || (ev.subject_type === "task" && taskIds.has(ev.subject_id)), reload);
  useTitle(pipeline.data ? `Pipeline ${pipeline.data.name}` : "Pipeline");
  const [rerunOpen, setRerunOpen] = useState(false);
  const [traceOpen, setTraceOpen] = useState(false);

  const p = pipeline.data;
  if (!p) {
    return (
      <div className="page">
        <p className="muted small">
          <Link to="/pipelines">Pipelines</Link>
        </p>
        {pipeline.error ? <ErrorBox error={pipeline.error} onRetry={pipeline.reload} /> : <Loading />}
      </div>
    );
  }
  const final = FINAL.includes(p.state);
  const act = (path: string, body: unknown = {}) => http.post<Pipeline>(path, body);
  return (
    <div className="page" data-testid="pipeline-page">
      <div className="page-head">
        <div>
          <p className="muted small">
            <Link to="/pipelines">Pipelines</Link>
          </p>
          <h1>
            {p.name} <StateBadge state={p.state} />
          </h1>
        </div>
        <div className="actions">
          {!final && allows(p, "cancel") && (
            <ConfirmButton
              label="Cancel pipeline"
              confirmLabel="Yes, cancel it"
              warning="Running steps' tasks are cancelled and steps not started are skipped."
              onConfirm={() => act(`/api/pipelines/${p.id}/cancel`).then((x) => pipeline.setData(() => x))}
            />
          )}
          {final && allows(p, "rerun") && (
            <button type="button" className="btn" aria-expanded={rerunOpen} onClick={() => setRerunOpen(!rerunOpen)}>
              Rerun…
            </button>
          )}
        </div>
      </div>
      {rerunOpen && final && allows(p, "rerun") && <RerunForm pipelineId={p.id} onDone={(id) => navigate(`/pipelines/${id}`)} onCancel={() => setRerunOpen(false)} />}
      <ErrorBox error={pipeline.error} onRetry={pipeline.reload} />
      <section className="card" aria-label="Summary">
        <KeyValues
          items={[
            ["Owner", p.owner ?? "—"],
            ["Created", <Time key="c" value={p.created_at} mode="full" />],
            ["Finished", p.finished_at ? <Time key="f" value={p.finished_at} mode="full" /> : <span className="muted">not yet</span>],
            ["Steps", countsText(p.step_counts) || "—"],
            ["Id", <span key="id" className="mono small">{p.id}</span>],
          ]}
        />
      </section>
      <section className="card" aria-label="Graph">
        <div className="toolbar">
          <h2>Graph</h2>
          <StepLegend />
        </div>
        <PipelineDag pipeline={p} />
      </section>
      <section className="card" aria-label="Steps">
        <h2>Steps</h2>
        <div className="table-wrap">
          <table className="table table-cards" data-testid="steps-table">
            <thead>
              <tr>
                <th scope="col">Step</th>
                <th scope="col">State</th>
                <th scope="col">Depends on</th>
                <th scope="col">Tasks</th>
                <th scope="col">Files in</th>
                <th scope="col">Files out</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {p.steps.map((s) => (
                <StepRow
                  key={s.name}
                  step={s}
                  inputs={filesIn(p, s)}
                  canRetry={allows(p, "retry")}
                  onRetry={() => act(`/api/pipelines/${p.id}/steps/${encodeURIComponent(s.name)}/retry`).then((x) => pipeline.setData(() => x))}
                />
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <details className="card" data-testid="pipeline-trace" onToggle={(e) => setTraceOpen((e.target as HTMLDetailsElement).open)}>
        <summary>
          <strong>Trace</strong> <span className="muted small">the pipeline's events in order; each task's own trace is on its page</span>
        </summary>
        {traceOpen && <EventTrace subjectId={p.id} load={(id, signal) => http.get<{ items: UnideskEvent[] }>(`/api/pipelines/${id}/trace`, undefined, signal)} what="pipeline" />}
      </details>
      <RawJson value={p} label="Raw JSON" />
    </div>
  );
}

function StepRow({ step: s, inputs, canRetry, onRetry }: { step: Step; inputs: FileIn[]; canRetry: boolean; onRetry: () => Promise<unknown> }) {
  const look = stepLook(s.state);
  return (
    <tr id={`step-${s.name}`} data-step={s.name}>
      <td data-label="Step">
        <strong>{s.name}</strong>
        {s.when !== "on_success" && <div className="muted small">{s.when === "on_failure" ? "runs on failure" : "always runs"}</div>}
      </td>
      <td data-label="State">
        <span className={`badge badge-${look.tone}`} data-state={s.state}>
          <span aria-hidden="true">{look.icon}</span> {look.label}
        </span>
        {!!s.round && <div className="muted small">retried {s.round}×</div>}
        {s.reason && <div className="muted small" data-testid="step-reason">{s.reason}</div>}
      </td>
      <td data-label="Depends on" className="small">
        {s.depends_on.length ? s.depends_on.join(", ") : <span className="muted">—</span>}
      </td>
      <td data-label="Tasks" className="small">
        {s.points.length === 0 && <span className="muted">none yet</span>}
        <ul className="plain-list">
          {s.points.map((pt) => {
            const pl = pointLook(pt.task_state);
            return (
              <li key={pt.index}>
                {pt.task_id ? <Link to={`/tasks/${pt.task_id}`} className="mono">{shortId(pt.task_id)}</Link> : <span className="muted">{s.state === "skipped" || s.state === "cancelled" ? "no task" : "no task yet"}</span>}
                {s.matrix && <span className="mono"> {pointLabel(pt.params)}</span>}
                {pt.task_id && <span className="muted"> · {pl.label}</span>}
              </li>
            );
          })}
        </ul>
      </td>
      <td data-label="Files in" className="small">
        {inputs.length === 0 ? (
          <span className="muted">—</span>
        ) : (
          <ul className="plain-list">
            {inputs.map((i) => (
              <li key={`${i.from_step}/${i.path}`} className="mono" title={i.mount ? `in the container at ${i.mount}` : undefined}>
                {i.from_step}/{i.path}
                {i.artifact_ids.length > 1 && <span className="muted"> ×{i.artifact_ids.length}</span>}
              </li>
            ))}
          </ul>
        )}
      </td>
      <td data-label="Files out" className="small">
        {s.outputs.length === 0 ? (
          <span className="muted">—</span>
        ) : (
          <ul className="plain-list">
            {s.outputs.map((o) => (
              <li key={o.artifact_id} className="mono">
                {o.path}
                {s.matrix && <span className="muted"> (point {o.point})</span>} <span className="muted">{formatBytes(o.size)}</span>
              </li>
            ))}
          </ul>
        )}
      </td>
      <td data-label="Actions">
        {canRetry && RETRYABLE.includes(s.state) && <ConfirmButton label={`Retry ${s.name}`} tone="normal" confirmLabel="Run it again" onConfirm={onRetry} />}
      </td>
    </tr>
  );
}

function RerunForm({ pipelineId, onDone, onCancel }: { pipelineId: string; onDone: (id: string) => void; onCancel: () => void }) {
  const [code, setCode] = useState("");
  const [env, setEnv] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <form
      className="card"
      aria-label="Rerun pipeline"
      onSubmit={(e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        const body: Record<string, string> = {};
        if (code.trim()) body.code_commit_id = code.trim();
        if (env.trim()) body.env_commit_id = env.trim();
        http.post<Pipeline>(`/api/pipelines/${pipelineId}/rerun`, body).then(
          (x) => onDone(x.id),
          (err: unknown) => {
            setError(err);
            setBusy(false);
          },
        );
      }}
    >
      <p className="muted small">A new pipeline from the same spec; leave a commit empty to keep the pinned one.</p>
      <label className="field">
        <span>Code commit</span>
        <input className="mono" value={code} onChange={(e) => setCode(e.target.value)} placeholder="same as before" pattern="[0-9a-fA-F]{40}|[0-9a-fA-F]{64}" />
      </label>
      <label className="field">
        <span>Env commit</span>
        <input className="mono" value={env} onChange={(e) => setEnv(e.target.value)} placeholder="same as before" pattern="[0-9a-fA-F]{40}|[0-9a-fA-F]{64}" />
      </label>
      <ErrorBox error={error} />
      <div className="actions">
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? "Submitting…" : "Rerun pipeline"}
        </button>
        <button type="button" className="btn btn-ghost" onClick={onCancel}>
          Close
        </button>
      </div>
    </form>
  );
}
