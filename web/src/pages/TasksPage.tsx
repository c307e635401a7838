/** Tasks: filter by state/owner/name, sorted by the server, paged by cursor or page number, rows kept current from the event stream. */
import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { api } from "../api/client";
import { pendingReasonText } from "../api/pendingReason";
import { DEFAULT_SORT, nextSort, pageWindow, parseSort, tasksCsv, type SortDir, type SortKey } from "../api/taskTable";
import { taskTiming } from "../api/taskTiming";
import { fileStamp } from "../time";
import { TASK_STATES, type Task, type TaskState } from "../api/types";
import { Time } from "../components/Time";
import { EmptyState, ErrorBox, Loading, StateBadge, shortId } from "../components/ui";
import { useLiveAsync, useLiveEvents, useNow, useThrottled, useTitle } from "../state/hooks";

const PAGE_SIZE = 50;
/** Export walks at most this many pages of 500 (10,000 tasks). */
const EXPORT_MAX_PAGES = 20;
/** The deepest offset the server pages to (GET /api/tasks offset); deeper pages are reached by cursor. */
const MAX_OFFSET = 100_000;
/** The states of a task that holds a node right now ("Running now"). */
const RUNNING_NOW: readonly TaskState[] = ["assigned", "preparing", "running", "cancelling"];

export function TasksPage() {
  useTitle("Tasks");
  const [params, setParams] = useSearchParams();
  // Memoised on the URL (useSearchParams keeps one object per location), so the list reloads
  // when a filter changes and not on every render.
  const states = useMemo(
    () => params.getAll("state").filter((s): s is TaskState => (TASK_STATES as readonly string[]).includes(s)),
    [params],
  );
  const owner = params.get("owner") ?? "";
  const runningNow = states.length === RUNNING_NOW.length && RUNNING_NOW.every((s) => states.includes(s));
  const q = params.get("q") ?? "";
  const cursor = params.get("cursor");
  const sort = params.get("sort") || DEFAULT_SORT;
  const { key: sortKey, dir: sortDir } = parseSort(sort);
  const pageNo = Math.max(1, Number.parseInt(params.get("page") ?? "1", 10) || 1);
  const [qDraft, setQDraft] = useState(q);
  const now = useNow(10_000);
  useEffect(() => setQDraft(q), [q]);

  const filters = useMemo(() => ({ state: states, owner: owner || undefined, q: q || undefined, sort }), [states, owner, q, sort]);
  // A cursor pages on from where the last page ended; a page number without one jumps by offset.
  const tasks = useLiveAsync(
    (signal) => api.tasks({ ...filters, cursor, offset: cursor ? 0 : (pageNo - 1) * PAGE_SIZE, limit: PAGE_SIZE, total: true }, signal),
    [filters, cursor, pageNo],
  );
  const pages = tasks.data && typeof tasks.data.total === "number" ? Math.max(1, Math.ceil(tasks.data.total / PAGE_SIZE)) : null;
  const firstPage = !cursor && pageNo === 1;

  const update = (patch: Record<string, string | string[] | null>, keepPage = false) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) {
      next.delete(k);
      if (Array.isArray(v)) v.forEach((x) => next.append(k, x));
      else if (v) next.set(k, v);
    }
    if (!keepPage) {
      next.delete("cursor");
      next.delete("page");
    }
    setParams(next);
  };
  const goTo = (page: number, cur: string | null = null) =>
    update({ page: page > 1 ? String(page) : null, cursor: page > 1 ? cur : null }, true);

  // Live: the first page reloads (new tasks appear at the top); later pages refresh only the rows they show.
  const reload = useThrottled(tasks.reload, 800);
  useLiveEvents(
    (ev) => ev.subject_type === "task",
    (ev) => {
      if (firstPage) return reload();
      if (tasks.data?.items.some((t) => t.id === ev.subject_id)) {
        api.task(ev.subject_id).then(
          (fresh) => tasks.setData((old) => old && { ...old, items: old.items.map((t) => (t.id === fresh.id ? fresh : t)) }),
          () => undefined,
        );
      }
    },
  );

  const rows: Task[] = tasks.data?.items ?? [];
  const sortBy = (k: SortKey) => update({ sort: nextSort(sort, k) === DEFAULT_SORT ? null : nextSort(sort, k) });
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);
  const exportCsv = async () => {
    setExporting(true);
    setExportError(null);
    try {
      const all: Task[] = [];
      let next: string | null = null;
      for (let i = 0; i < EXPORT_MAX_PAGES; i++) {
        const page = await api.tasks({ ...filters, cursor: next, limit: 500 });
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
          {pages !== null && ` · page ${pageNo} of ${pages}`}
          {sort !== DEFAULT_SORT && ` · sorted by ${SORT_LABEL[sortKey]}, ${sortDir === "asc" ? "ascending" : "descending"}`}
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
                <th scope="col">Owner</th>
                <th scope="col">Node</th>
                <th scope="col">Commit</th>
                <th scope="col">Resources</th>
                <SortHeader label="Priority" k="priority" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <th scope="col">Attempts</th>
                <SortHeader label="Created" k="created_at" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <SortHeader label="Started" k="started_at" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <SortHeader label="Finished" k="finished_at" sortKey={sortKey} dir={sortDir} onSort={sortBy} />
                <th scope="col">Duration</th>
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
      {tasks.data && (pages === null || pages > 1 || cursor) && (
        <nav className="pager" aria-label="Pages">
          <button type="button" className="btn" disabled={firstPage} onClick={() => goTo(1)}>
            « First
          </button>
          <button
            type="button"
            className="btn"
            disabled={firstPage || !tasks.data.prev_cursor}
            onClick={() => goTo(pageNo - 1, tasks.data!.prev_cursor ?? null)}
          >
            ← Previous
          </button>
          {pages !== null &&
            pageWindow(pageNo, pages).map((p, i) =>
              p === null ? (
                <span key={`gap-${i}`} className="muted" aria-hidden="true">
                  …
                </span>
              ) : (
                <button
                  key={p}
                  type="button"
                  className={`btn btn-page${p === pageNo ? " btn-primary" : ""}`}
                  aria-current={p === pageNo ? "page" : undefined}
                  aria-label={`Page ${p}`}
                  disabled={(p - 1) * PAGE_SIZE > MAX_OFFSET}
                  onClick={() => goTo(p)}
                >
                  {p}
                </button>
              ),
            )}
          <button type="button" className="btn" disabled={!tasks.data.next_cursor} onClick={() => goTo(pageNo + 1, tasks.data!.next_cursor)}>
            Next →
          </button>
          <button
            type="button"
            className="btn"
            disabled={pages === null || pageNo >= pages || (pages - 1) * PAGE_SIZE > MAX_OFFSET}
            onClick={() => pages !== null && goTo(pages)}
          >
            Last »
          </button>
        </nav>
      )}
    </div>
  );
}

const SORT_LABEL: Record<SortKey, string> = {
  name: "name",
  state: "state",
  priority: "priority",
  created_at: "submission time",
  started_at: "start time",
  finished_at: "finish time",
};

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
      <td data-label="Priority" className="num">
        {t.priority}
      </td>
      <td data-label="Attempts" className="num">
        {t.attempt_count}/{t.max_attempts}
      </td>
      <td data-label="Created">
        <Time value={t.created_at} now={now} />
      </td>
      <td data-label="Started">
        <Time value={t.started_at ?? null} now={now} />
      </td>
      <td data-label="Finished">
        <Time value={t.finished_at} now={now} />
      </td>
      <td data-label="Duration" className="num" data-testid="task-timing">
        {timing.label === "Duration" ? timing.text : <span className="muted" title="Not started yet: time since it was submitted">{timing.text}</span>}
      </td>
    </tr>
  );
}
