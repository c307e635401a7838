/** Tasks: filter by state/owner/name, cursor pagination, rows kept current from the event stream. */
import { useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { api } from "../api/client";
import { pendingReasonText } from "../api/pendingReason";
import { SORT_KEYS, sortTasks, tasksCsv, type SortDir, type SortKey } from "../api/taskTable";
import { taskTiming } from "../api/taskTiming";
import { fileStamp } from "../time";
import { TASK_STATES, type Task, type TaskState } from "../api/types";
import { Time } from "../components/Time";
import { EmptyState, ErrorBox, Loading, StateBadge, shortId } from "../components/ui";
import { useAsync, useLiveEvents, useNow, useReloadOnReconnect, useThrottled, useTitle } from "../state/hooks";

const PAGE_SIZE = 50;
/** Export walks at most this many pages of 500 (10,000 tasks). */
const EXPORT_MAX_PAGES = 20;
/** The states of a task that holds a node right now ("Running now"). */
const RUNNING_NOW: readonly TaskState[] = ["assigned", "preparing", "running", "cancelling"];

export function TasksPage() {
  useTitle("Tasks");
  const [params, setParams] = useSearchParams();
  const states = params.getAll("state").filter((s): s is TaskState => (TASK_STATES as readonly string[]).includes(s));
  const owner = params.get("owner") ?? "";
  const runningNow = states.length === RUNNING_NOW.length && RUNNING_NOW.every((s) => states.includes(s));
  const q = params.get("q") ?? "";
  const cursor = params.get("cursor");
  const [cursorStack, setCursorStack] = useState<string[]>([]);
  const [qDraft, setQDraft] = useState(q);
  const now = useNow(10_000);
  useEffect(() => setQDraft(q), [q]);

  const key = JSON.stringify([states, owner, q, cursor]);
  const tasks = useAsync((signal) => api.tasks({ state: states, owner: owner || undefined, q: q || undefined, cursor, limit: PAGE_SIZE, total: true }, signal), [key]);

  const update = (patch: Record<string, string | string[] | null>, keepCursor = false) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) {
      next.delete(k);
      if (Array.isArray(v)) v.forEach((x) => next.append(k, x));
      else if (v) next.set(k, v);
    }
    if (!keepCursor) {
      next.delete("cursor");
      setCursorStack([]);
    }
    setParams(next);
  };

  // Live: the first page reloads (new tasks appear at the top); later pages refresh only the rows they show.
  const reload = useThrottled(tasks.reload, 800);
  useLiveEvents(
    (ev) => ev.subject_type === "task",
    (ev) => {
      if (!cursor) return reload();
      if (tasks.data?.items.some((t) => t.id === ev.subject_id)) {
        api.task(ev.subject_id).then(
          (fresh) => tasks.setData((old) => old && { ...old, items: old.items.map((t) => (t.id === fresh.id ? fresh : t)) }),
          () => undefined,
        );
      }
    },
  );
  useReloadOnReconnect(tasks.reload);

  const sortKey = (SORT_KEYS as readonly string[]).includes(params.get("sort") ?? "") ? (params.get("sort") as SortKey) : null;
  const sortDir: SortDir = params.get("dir") === "asc" ? "asc" : "desc";
  const rows = tasks.data ? (sortKey ? sortTasks(tasks.data.items, sortKey, sortDir, now) : tasks.data.items) : [];
  const sortBy = (key: SortKey) => {
    const next = new URLSearchParams(params);
    next.set("sort", key);
    next.set("dir", sortKey === key && sortDir === "asc" ? "desc" : "asc");
    setParams(next, { replace: true });
  };
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);
  const exportCsv = async () => {
    setExporting(true);
    setExportError(null);
    try {
      const all: Task[] = [];
      let next: string | null = null;
      for (let i = 0; i < EXPORT_MAX_PAGES; i++) {
        const page = await api.tasks({ state: states, owner: owner || undefined, q: q || undefined, cursor: next, limit: 500 });
        all.push(...page.items);
        next = page.next_cursor;
        if (!next) break;
      }
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([tasksCsv(all)], { type: "text/csv;charset=utf-8" }));
      a.download = `tasks-${fileStamp()}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    } catch (err) {
      setExportError(err);
    } finally {
      setExporting(false);
    }
  };

  const toggleState = (s: TaskState) =>
    update({ state: states.includes(s) ? states.filter((x) => x !== s) : [...states, s] });

  return (
    <div className="page">
      <div className="page-head">
        <h1>Tasks</h1>
        <div className="actions">
          <button type="button" className="btn" onClick={exportCsv} disabled={exporting}>
            {exporting ? "Exporting…" : "Export CSV"}
          </button>
          <Link to="/tasks/new" className="btn btn-primary">
            Submit task
          </Link>
        </div>
      </div>
      <div className="filters">
        <div className="toolbar" role="group" aria-label="Filter by state">
          <button
            type="button"
            className={`chip chip-running${runningNow ? " chip-on" : ""}`}
            aria-pressed={runningNow}
            onClick={() => update({ state: runningNow ? [] : [...RUNNING_NOW] })}
          >
            Running now
          </button>
          {TASK_STATES.map((s) => (
            <button
              key={s}
              type="button"
              className={`chip${states.includes(s) ? " chip-on" : ""}`}
              aria-pressed={states.includes(s)}
              onClick={() => toggleState(s)}
            >
              {s}
            </button>
          ))}
          {states.length > 0 && (
            <button type="button" className="chip chip-clear" onClick={() => update({ state: [] })}>
              all states
            </button>
          )}
        </div>
        <div className="toolbar">
          <label className="inline-field">
            <span>Owner</span>
            <select value={owner} onChange={(e) => update({ owner: e.target.value })}>
              <option value="">anyone</option>
              <option value="me">me</option>
            </select>
          </label>
          <form
            role="search"
            className="inline-field"
            onSubmit={(e) => {
              e.preventDefault();
              update({ q: qDraft.trim() });
            }}
          >
            <label htmlFor="task-q">Name</label>
            <input id="task-q" type="search" placeholder="contains…" value={qDraft} onChange={(e) => setQDraft(e.target.value)} />
            <button type="submit" className="btn btn-small">
              Filter
            </button>
          </form>
        </div>
      </div>
      {tasks.error !== null && <ErrorBox error={tasks.error} onRetry={tasks.reload} />}
      <ErrorBox error={exportError} />
      {tasks.data && typeof tasks.data.total === "number" && (
        <p className="muted small" data-testid="tasks-count" aria-live="polite">
          {tasks.data.total} {tasks.data.total === 1 ? "task" : "tasks"}
          {states.length || owner || q ? " match these filters" : ""}
          {!(cursor && cursorStack.length === 0) && ` · page ${cursorStack.length + 1} of ${Math.max(1, Math.ceil(tasks.data.total / PAGE_SIZE))}`}
          {sortKey && " · sorted within this page"}
        </p>
      )}
      {!tasks.data && tasks.loading && <Loading />}
      {tasks.data && tasks.data.items.length === 0 && (
        <EmptyState title={states.length || owner || q ? "No tasks match these filters." : "No tasks yet."}>
          <Link to="/tasks/new">Submit a task</Link>
        </EmptyState>
      )}
      {tasks.data && tasks.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="tasks-table">
            <thead>
              <tr>
                <SortHeader label="Task" k="name" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <SortHeader label="State" k="state" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <SortHeader label="Owner" k="owner" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <th scope="col">Node</th>
                <th scope="col">Commit</th>
                <th scope="col">Resources</th>
                <th scope="col">Attempts</th>
                <SortHeader label="Created" k="created" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <SortHeader label="Duration" k="duration" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
              </tr>
            </thead>
            <tbody>
              {rows.map((t) => (
                <TaskRow key={t.id} task={t} now={now} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="pager">
        <button
          type="button"
          className="btn"
          disabled={!cursor}
          onClick={() => {
            const stack = [...cursorStack];
            const prev = stack.pop() ?? null;
            setCursorStack(stack);
            update({ cursor: prev }, true);
          }}
        >
          ← Newer
        </button>
        <button
          type="button"
          className="btn"
          disabled={!tasks.data?.next_cursor}
          onClick={() => {
            setCursorStack([...cursorStack, cursor ?? ""]);
            update({ cursor: tasks.data!.next_cursor }, true);
          }}
        >
          Older →
        </button>
      </div>
    </div>
  );
}

function SortHeader({ label, k, sortKey, dir, onSort }: { label: string; k: SortKey; sortKey: SortKey | null; dir: SortDir; onSort: (k: SortKey) => void }) {
  const on = sortKey === k;
  return (
    <th scope="col" aria-sort={on ? (dir === "asc" ? "ascending" : "descending") : "none"}>
      <button type="button" className="th-sort" onClick={() => onSort(k)}>
        {label}
        <span aria-hidden="true">{on ? (dir === "asc" ? " ▲" : " ▼") : ""}</span>
      </button>
    </th>
  );
}

function TaskRow({ task: t, now }: { task: Task; now: number }) {
  const timing = taskTiming(t, now);
  return (
    <tr data-task-id={t.id}>
      <td data-label="Task">
        <Link to={`/tasks/${t.id}`}>{t.name || shortId(t.id)}</Link>
        <div className="muted small mono">{shortId(t.id)}</div>
      </td>
      <td data-label="State">
        <StateBadge state={t.state} />
        {t.reason && t.reason !== t.state && <div className="muted small">{t.reason}</div>}
        {pendingReasonText(t) && (
          <div className="muted small" data-testid="pending-reason">
            {pendingReasonText(t)}
          </div>
        )}
      </td>
      <td data-label="Owner">{t.owner ?? "—"}</td>
      <td data-label="Node" className="small" data-testid="task-node">
        {t.node_name ?? <span className="muted">—</span>}
      </td>
      <td data-label="Commit" className="mono small" title={t.code_commit_id}>
        {t.code_commit_id.slice(0, 10)}
      </td>
      <td data-label="Resources" className="small">
        {t.resources.cpus} CPU · {t.resources.memory_mb} MiB{t.resources.gpus ? ` · ${t.resources.gpus} GPU` : ""}
      </td>
      <td data-label="Attempts" className="num">
        {t.attempt_count}/{t.max_attempts}
      </td>
      <td data-label="Created">
        <Time value={t.created_at} now={now} />
      </td>
      <td data-label="Duration" className="num" data-testid="task-timing">
        {timing.label === "Duration" ? timing.text : <span className="muted" title="Not started yet: time since it was submitted">{timing.text}</span>}
      </td>
    </tr>
  );
}
