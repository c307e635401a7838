/** Pipelines: filter by state, cursor pages, sort the page by a column, rows kept current from the event stream. */
import { useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { Time } from "../../components/Time";
import { EmptyState, ErrorBox, Loading, StateBadge, shortId } from "../../components/ui";
import { useLiveAsync, useLiveEvents, useNow, useThrottled, useTitle } from "../../state/hooks";
import { http } from "../http";
import { countsText } from "./dagModel";
import { PIPELINE_SORT_KEYS, sortPipelines, type PipelineSortKey } from "./listSort";
import { PIPELINE_STATES, type PipelinePage, type PipelineState } from "./types";

const PAGE_SIZE = 50;

export function PipelineListPage() {
  useTitle("Pipelines");
  const [params, setParams] = useSearchParams();
  const stateParam = params.get("state");
  const state = (PIPELINE_STATES as readonly string[]).includes(stateParam ?? "") ? (stateParam as PipelineState) : null;
  const cursor = params.get("cursor");
  const [cursorStack, setCursorStack] = useState<string[]>([]);
  const now = useNow(15_000);
  const list = useLiveAsync(() => http.get<PipelinePage>("/api/pipelines", { limit: PAGE_SIZE, cursor, state }), [state, cursor]);
  const reload = useThrottled(list.reload, 800);
  useLiveEvents((ev) => ev.kind.startsWith("pipeline.") || ev.kind.startsWith("step."), reload);

  const sortKey = (PIPELINE_SORT_KEYS as readonly string[]).includes(params.get("sort") ?? "") ? (params.get("sort") as PipelineSortKey) : null;
  const sortDir = params.get("dir") === "asc" ? "asc" : "desc";
  const rows = list.data ? (sortKey ? sortPipelines(list.data.items, sortKey, sortDir) : list.data.items) : [];
  const set = (patch: Record<string, string | null>, keepCursor = false) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!keepCursor) {
      next.delete("cursor");
      setCursorStack([]);
    }
    setParams(next);
  };
  const sortBy = (k: PipelineSortKey) => set({ sort: k, dir: sortKey === k && sortDir === "asc" ? "desc" : "asc" }, true);
  const header = (label: string, k: PipelineSortKey) => {
    const on = sortKey === k;
    return (
      <th scope="col" aria-sort={on ? (sortDir === "asc" ? "ascending" : "descending") : "none"}>
        <button type="button" className="th-sort" onClick={() => sortBy(k)}>
          {label}
          <span aria-hidden="true">{on ? (sortDir === "asc" ? " ▲" : " ▼") : ""}</span>
        </button>
      </th>
    );
  };

  return (
    <div className="page">
      <div className="page-head">
        <h1>Pipelines</h1>
      </div>
      <div className="toolbar" role="group" aria-label="Filter by state">
        {PIPELINE_STATES.map((s) => (
          <button key={s} type="button" className={`chip${state === s ? " chip-on" : ""}`} aria-pressed={state === s} onClick={() => set({ state: state === s ? null : s })}>
            {s}
          </button>
        ))}
        {state && (
          <button type="button" className="chip chip-clear" onClick={() => set({ state: null })}>
            all states
          </button>
        )}
      </div>
      <ErrorBox error={list.error} onRetry={list.reload} />
      {!list.data && list.loading && <Loading />}
      {list.data && list.data.items.length === 0 && (
        <EmptyState title={state ? `No ${state} pipelines.` : "No pipelines yet."}>
          Submit one with <code>unidesk pipeline submit pipeline.yml</code> or <code>POST /api/pipelines</code>.
        </EmptyState>
      )}
      {rows.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="pipelines-table">
            <thead>
              <tr>
                {header("Pipeline", "name")}
                {header("State", "state")}
                {header("Owner", "owner")}
                <th scope="col">Steps</th>
                {header("Created", "created")}
                <th scope="col">Finished</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((p) => (
                <tr key={p.id} data-pipeline-id={p.id}>
                  <td data-label="Pipeline">
                    <Link to={`/pipelines/${p.id}`}>{p.name || shortId(p.id)}</Link>
                    <div className="muted small mono">{shortId(p.id)}</div>
                  </td>
                  <td data-label="State">
                    <StateBadge state={p.state} />
                  </td>
                  <td data-label="Owner">{p.owner ?? "—"}</td>
                  <td data-label="Steps" className="small" data-testid="pipeline-step-counts">
                    {countsText(p.step_counts) || "—"}
                  </td>
                  <td data-label="Created">
                    <Time value={p.created_at} now={now} />
                  </td>
                  <td data-label="Finished">{p.finished_at ? <Time value={p.finished_at} now={now} /> : <span className="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {sortKey && rows.length > 0 && <p className="muted small">Sorted within this page.</p>}
      {/* Only when there is another page to go to (two greyed buttons under "No pipelines yet" said nothing). */}
      {(cursor || list.data?.next_cursor) && (
        <div className="pager">
          <button
            type="button"
            className="btn"
            disabled={!cursor}
            onClick={() => {
              const stack = [...cursorStack];
              const prev = stack.pop() ?? null;
              setCursorStack(stack);
              set({ cursor: prev }, true);
            }}
          >
            ← Newer
          </button>
          <button
            type="button"
            className="btn"
            disabled={!list.data?.next_cursor}
            onClick={() => {
              setCursorStack([...cursorStack, cursor ?? ""]);
              set({ cursor: list.data!.next_cursor }, true);
            }}
          >
            Older →
          </button>
        </div>
      )}
    </div>
  );
}
