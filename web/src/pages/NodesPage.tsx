/** Nodes: state, labels, resources, GPUs, last heartbeat and running attempts, refreshed live. */
import { useEffect } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { api } from "../api/client";
import type { Node } from "../api/types";
import { NodeBadges, Runtimes, gpuSummary } from "../components/NodeBadges";
import { Time } from "../components/Time";
import { EmptyState, ErrorBox, Labels, Loading, formatMb } from "../components/ui";
import { isoInTextToBeijing } from "../time";
import { useLiveAsync, useLiveEvents, useNow, useThrottled, useTitle } from "../state/hooks";

const FILTERS = ["all", "online", "offline", "draining", "unhealthy"] as const;
type Filter = (typeof FILTERS)[number];

function matches(n: Node, f: Filter): boolean {
  if (f === "all") return true;
  if (f === "draining") return n.draining;
  if (f === "unhealthy") return Boolean(n.unhealthy_reason);
  return n.state === f;
}

export function NodesPage() {
  useTitle("Nodes");
  const [params, setParams] = useSearchParams();
  const filter = (FILTERS as readonly string[]).includes(params.get("state") ?? "") ? (params.get("state") as Filter) : "all";
  const nodes = useLiveAsync((signal) => api.nodes(signal), []);
  const now = useNow(5_000);
  const reload = useThrottled(nodes.reload, 1000);
  useLiveEvents((ev) => ev.subject_type === "node" || ev.kind.startsWith("task."), reload);
  // Heartbeats are not events: refresh them on a timer so "last heartbeat" stays true.
  useEffect(() => {
    const t = setInterval(nodes.reload, 15_000);
    return () => clearInterval(t);
  }, [nodes.reload]);

  const items = (nodes.data?.items ?? []).filter((n) => matches(n, filter));
  return (
    <div className="page">
      <div className="page-head">
        <h1>Nodes</h1>
      </div>
      <div className="toolbar" role="group" aria-label="Filter nodes by state">
        {FILTERS.map((f) => (
          <button
            key={f}
            type="button"
            className={`chip${filter === f ? " chip-on" : ""}`}
            aria-pressed={filter === f}
            onClick={() => setParams(f === "all" ? {} : { state: f })}
          >
            {f}
          </button>
        ))}
      </div>
      {nodes.error !== null && <ErrorBox error={nodes.error} onRetry={nodes.reload} />}
      {!nodes.data && nodes.loading && <Loading />}
      {nodes.data && items.length === 0 && (
        <EmptyState title={filter === "all" ? "No nodes have registered yet." : `No ${filter} nodes.`}>
          {filter === "all" && <p>An admin can issue a node token on the Admin page and start an agent with it.</p>}
        </EmptyState>
      )}
      {items.length > 0 && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="nodes-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">Runtimes</th>
                <th scope="col">Labels</th>
                <th scope="col">CPUs</th>
                <th scope="col">Memory</th>
                <th scope="col">GPUs</th>
                <th scope="col">Last heartbeat</th>
                <th scope="col">Running</th>
              </tr>
            </thead>
            <tbody>
              {items.map((n) => (
                <tr key={n.id} data-node-name={n.name}>
                  <td data-label="Name">
                    <Link to={`/nodes/${n.id}`}>{n.name}</Link>
                    <div className="muted small">{n.hostname}</div>
                  </td>
                  <td data-label="State">
                    <NodeBadges node={n} />
                    {n.unhealthy_reason && (
                      <div className="node-reason" data-testid="unhealthy-reason">
                        {isoInTextToBeijing(n.unhealthy_reason)}
                      </div>
                    )}
                  </td>
                  <td data-label="Runtimes">
                    <Runtimes runtimes={n.runtimes} />
                  </td>
                  <td data-label="Labels">
                    <Labels labels={n.labels} />
                  </td>
                  <td data-label="CPUs" className="num">
                    {n.cpus}
                    {n.usage?.cpu_percent != null && <div className="muted small">{n.usage.cpu_percent.toFixed(0)}% used</div>}
                  </td>
                  <td data-label="Memory" className="num">
                    {formatMb(n.memory_mb)}
                    {n.usage?.memory_used_mb != null && <div className="muted small">{formatMb(n.usage.memory_used_mb)} used</div>}
                  </td>
                  <td data-label="GPUs">{gpuSummary(n)}</td>
                  <td data-label="Last heartbeat" data-testid="heartbeat">
                    <Time value={n.last_heartbeat_at} mode="full" />
                    <div className="muted small">
                      <Time value={n.last_heartbeat_at} mode="relative" now={now} />
                    </div>
                  </td>
                  <td data-label="Running" className="num">{n.running_attempts.length}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
