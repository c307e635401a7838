/** One project: board, list and Gantt views of its work items, a form to add items, CSV export. */
import { BeijingDateInput } from "../../components/BeijingDateInput";
import { useState, type FormEvent } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { EmptyState, ErrorBox, Loading, StateBadge } from "../../components/ui";
import { useAsync, useTitle } from "../../state/hooks";
import { fileStamp } from "../../time";
import { http, saveBlob } from "../http";
import { Gantt } from "./Gantt";
import { STATUSES, type ProjectDetail, type Status, type WorkItem } from "./types";

type View = "board" | "list" | "gantt";

function RunSummary({ runs }: { runs: Record<string, number> }) {
  const entries = Object.entries(runs);
  if (!entries.length) return <span className="muted">—</span>;
  return (
    <span className="runs">
      {entries.map(([state, n]) => <StateBadge key={state} state={state} label={`${n} ${state}`} />)}
    </span>
  );
}

function AddItemForm({ detail, onAdded }: { detail: ProjectDetail; onAdded: () => void }) {
  const [title, setTitle] = useState("");
  const [start, setStart] = useState("");
  const [due, setDue] = useState("");
  const [dependsOn, setDependsOn] = useState<string[]>([]);
  const [milestone, setMilestone] = useState(false);
  const [assignee, setAssignee] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await http.post(`/api/projects/${detail.project.id}/items`, {
        title, start_date: start || null, due_date: due || null, depends_on: dependsOn, milestone, assignee: assignee || null,
      });
      setTitle("");
      setStart("");
      setDue("");
      setDependsOn([]);
      setMilestone(false);
      onAdded();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-label="New work item">
      <h2>New work item</h2>
      <div className="form-row form-row-4">
        <label><span className="field-label">Title</span><input value={title} onChange={(e) => setTitle(e.target.value)} required maxLength={300} /></label>
        <label><span className="field-label">Start (Beijing date)</span><BeijingDateInput label="Start (Beijing date)" value={start} onChange={setStart} /></label>
        <label><span className="field-label">Due (Beijing date)</span><BeijingDateInput label="Due (Beijing date)" value={due} onChange={setDue} /></label>
        <label>
          <span className="field-label">Assignee</span>
          <select value={assignee} onChange={(e) => setAssignee(e.target.value)}>
            <option value="">—</option>
            {detail.members.map((m) => <option key={m.user_id} value={m.username}>{m.username}</option>)}
          </select>
        </label>
      </div>
      <div className="form-row">
        <label>
          <span className="field-label">Depends on (finish-to-start)</span>
          <select multiple value={dependsOn} onChange={(e) => setDependsOn(Array.from(e.target.selectedOptions, (o) => o.value))} aria-label="Depends on">
            {detail.items.map((i) => <option key={i.id} value={i.id}>{i.title}</option>)}
          </select>
        </label>
        <label className="check"><input type="checkbox" checked={milestone} onChange={(e) => setMilestone(e.target.checked)} /> Milestone</label>
      </div>
      <ErrorBox error={error} />
      <button className="btn btn-primary" type="submit">Add item</button>
    </form>
  );
}

export function ProjectPage() {
  const { projectId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const view = (params.get("view") as View) || "board";
  const navigate = useNavigate();
  const detail = useAsync(() => http.get<ProjectDetail>(`/api/projects/${projectId}`), [projectId]);
  const [error, setError] = useState<unknown>(null);
  useTitle(detail.data ? detail.data.project.name : "Project");

  const patch = async (item: WorkItem, body: Record<string, unknown>) => {
    setError(null);
    try {
      const updated = await http.patch<WorkItem>(`/api/projects/items/${item.id}`, body);
      detail.setData((d) => (d ? { ...d, items: d.items.map((i) => (i.id === updated.id ? updated : i)) } : d));
    } catch (err) {
      setError(err);
      detail.reload();
    }
  };
  const exportCsv = async () => {
    if (!detail.data) return;
    try {
      const blob = await http.blob(`/api/projects/${projectId}/export.csv`);
      const slug = detail.data.project.name.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "project";
      saveBlob(blob, `${slug}-items-${fileStamp()}.csv`);
    } catch (err) {
      setError(err);
    }
  };

  if (detail.error && !detail.data) return <div className="page"><ErrorBox error={detail.error} onRetry={detail.reload} /></div>;
  if (!detail.data) return <Loading />;
  const d = detail.data;
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <p className="muted small"><Link to="/projects">Projects</Link></p>
          <h1>{d.project.name}</h1>
          <p className="muted small">{d.project.done_count}/{d.project.item_count} done · members: {d.members.map((m) => m.username).join(", ")}</p>
        </div>
        <div className="actions">
          <button type="button" className="btn" onClick={() => void exportCsv()}>Export CSV</button>
        </div>
      </div>
      <div className="tabs" role="tablist">
        {(["board", "list", "gantt"] as View[]).map((v) => (
          <button key={v} role="tab" type="button" aria-selected={view === v} className={`btn btn-small${view === v ? " btn-primary" : ""}`}
                  onClick={() => setParams({ view: v })}>
            {v === "gantt" ? "Gantt" : v[0].toUpperCase() + v.slice(1)}
          </button>
        ))}
      </div>
      <ErrorBox error={error} />
      {d.items.length === 0 && <EmptyState title="No work items yet">Add the first one below.</EmptyState>}
      {view === "board" && d.items.length > 0 && (
        <div className="grid-3 board">
          {STATUSES.map((status) => (
            <section key={status} className="card" aria-label={status} data-testid={`column-${status}`}>
              <h2>{status}</h2>
              {d.items.filter((i) => i.status === status).map((i) => (
                <article key={i.id} className="board-card">
                  <Link to={`/projects/items/${i.id}`}>{i.milestone ? "◆ " : ""}{i.title}</Link>
                  <div className="muted small">{i.start_date ?? "?"} → {i.due_date ?? "?"}{i.assignee ? ` · ${i.assignee}` : ""}</div>
                  <RunSummary runs={i.runs} />
                  <div className="actions">
                    {STATUSES.filter((s) => s !== status).map((s: Status) => (
                      <button key={s} type="button" className="btn btn-small" onClick={() => void patch(i, { status: s })}>→ {s}</button>
                    ))}
                  </div>
                </article>
              ))}
            </section>
          ))}
        </div>
      )}
      {view === "list" && d.items.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr><th>Title</th><th>Status</th><th>Assignee</th><th>Start</th><th>Due</th><th className="num">Estimate (h)</th><th>Depends on</th><th>Runs</th></tr>
            </thead>
            <tbody>
              {d.items.map((i) => (
                <tr key={i.id}>
                  <td><Link to={`/projects/items/${i.id}`}>{i.milestone ? "◆ " : ""}{i.title}</Link></td>
                  <td><StateBadge state={i.status === "done" ? "succeeded" : i.status === "doing" ? "running" : "pending"} label={i.status} /></td>
                  <td>{i.assignee ?? "—"}</td>
                  <td className="mono">{i.start_date ?? "—"}</td>
                  <td className="mono">{i.due_date ?? "—"}</td>
                  <td className="num">{i.estimate_hours ?? "—"}</td>
                  <td>{i.depends_on.map((id) => d.items.find((x) => x.id === id)?.title ?? id).join(", ") || "—"}</td>
                  <td><RunSummary runs={i.runs} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {view === "gantt" && d.items.length > 0 && (
        <Gantt items={d.items} dependencies={d.dependencies} onChange={(item, dates) => patch(item, dates)}
               onOpen={(item) => navigate(`/projects/items/${item.id}`)} />
      )}
      <AddItemForm detail={d} onAdded={detail.reload} />
    </div>
  );
}
