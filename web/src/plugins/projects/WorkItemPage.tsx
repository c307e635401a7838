/** A work item: its fields (editable), dependencies, and the compute runs linked to it (live states). */
import { BeijingDateInput } from "../../components/BeijingDateInput";
import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router-dom";
import { Time } from "../../components/Time";
import { ErrorBox, KeyValues, Loading, StateBadge, shortId } from "../../components/ui";
import { useAsync, useLiveEvents, useThrottled, useTitle } from "../../state/hooks";
import { http } from "../http";
import { STATUSES, type WorkItemDetail } from "./types";

export function WorkItemPage() {
  const { itemId = "" } = useParams();
  const detail = useAsync(() => http.get<WorkItemDetail>(`/api/projects/items/${itemId}`), [itemId]);
  const [error, setError] = useState<unknown>(null);
  const [taskId, setTaskId] = useState("");
  useTitle(detail.data ? detail.data.item.title : "Work item");
  const reload = useThrottled(detail.reload, 500);
  const taskIds = new Set(detail.data?.run_list.map((r) => r.task_id) ?? []);
  useLiveEvents((ev) => (ev.subject_type === "task" && taskIds.has(ev.subject_id)) || ev.subject_id === itemId, reload);

  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
      detail.reload();
    } catch (err) {
      setError(err);
    }
  };
  const link = (e: FormEvent) => {
    e.preventDefault();
    void act(() => http.post(`/api/projects/items/${itemId}/runs`, { task_id: taskId.trim() })).then(() => setTaskId(""));
  };
  if (detail.error && !detail.data) return <div className="page"><ErrorBox error={detail.error} onRetry={detail.reload} /></div>;
  if (!detail.data) return <Loading />;
  const { item, run_list } = detail.data;
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <p className="muted small"><Link to={`/projects/${item.project_id}`}>Project</Link></p>
          <h1>{item.milestone ? "◆ " : ""}{item.title}</h1>
        </div>
      </div>
      <ErrorBox error={error} />
      <section className="card">
        <KeyValues items={[
          ["Status", (
            <select aria-label="Status" value={item.status} onChange={(e) => void act(() => http.patch(`/api/projects/items/${item.id}`, { status: e.target.value }))}>
              {STATUSES.map((s) => <option key={s}>{s}</option>)}
            </select>
          )],
          ["Start (Beijing date)", (
            <BeijingDateInput label="Start date" value={item.start_date ?? ""} commitOn="blur"
                              onChange={(day) => void act(() => http.patch(`/api/projects/items/${item.id}`, { start_date: day || null }))} />
          )],
          ["Due (Beijing date)", (
            <BeijingDateInput label="Due date" value={item.due_date ?? ""} commitOn="blur"
                              onChange={(day) => void act(() => http.patch(`/api/projects/items/${item.id}`, { due_date: day || null }))} />
          )],
          ["Assignee", item.assignee ?? "—"],
          ["Estimate", item.estimate_hours != null ? `${item.estimate_hours} h` : "—"],
          ["Updated", <Time value={item.updated_at} mode="full" />],
        ]} />
        {item.description && <p>{item.description}</p>}
      </section>
      <section className="card" aria-label="Runs">
        <h2>Runs</h2>
        {run_list.length === 0 && <p className="muted">No task linked yet. Submit a task with this item, or link one below.</p>}
        {run_list.length > 0 && (
          <table className="table">
            <thead><tr><th>Task</th><th>State</th><th>Linked</th></tr></thead>
            <tbody>
              {run_list.map((r) => (
                <tr key={r.task_id} data-testid={`run-${r.task_id}`}>
                  <td><Link to={`/tasks/${r.task_id}`}>{r.name || shortId(r.task_id)}</Link></td>
                  <td><StateBadge state={r.state} /></td>
                  <td><Time value={r.linked_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <form className="toolbar" onSubmit={link} aria-label="Link a task">
          <label className="inline-field">
            <span>Task id</span>
            <input value={taskId} onChange={(e) => setTaskId(e.target.value)} required placeholder="task id" className="mono" />
          </label>
          <button type="submit" className="btn">Link task</button>
        </form>
        <p className="muted small">
          Or submit with <code>{`"extensions": {"projects": {"work_item_id": "${item.id}"}}`}</code>.
        </p>
      </section>
    </div>
  );
}
