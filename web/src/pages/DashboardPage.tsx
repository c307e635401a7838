/** Dashboard: nodes by state, tasks by state, tasks finished per hour, recent failures. */
import { Link } from "react-router-dom";
import { api } from "../api/client";
import { TASK_STATES } from "../api/types";
import { BackupCard, HealthChecksCard } from "../components/BackupCard";
import { UsageCard } from "../components/UsageCard";
import { StackedBarChart } from "../components/charts";
import { Time } from "../components/Time";
import { EmptyState, ErrorBox, Loading, StateBadge, shortId } from "../components/ui";
import { useLiveAsync, useLiveEvents, useNow, useThrottled, useTitle } from "../state/hooks";
import { toMs } from "../time";

const HOUR = 3_600_000;

export function DashboardPage() {
  useTitle("Dashboard");
  const stats = useLiveAsync((signal) => api.stats(signal), []);
  const now = useNow(30_000);
  const reload = useThrottled(stats.reload, 1500);
  useLiveEvents((ev) => ev.subject_type === "task" || ev.subject_type === "node", reload);

  const s = stats.data;
  const endMs = Math.ceil(now / HOUR) * HOUR;
  const startMs = endMs - 24 * HOUR;
  return (
    <div className="page">
      <div className="page-head">
        <h1>Dashboard</h1>
      </div>
      {stats.error !== null && <ErrorBox error={stats.error} onRetry={stats.reload} />}
      {!s && stats.loading && <Loading />}
      {s && (
        <>
          <section aria-labelledby="nodes-h" className="section">
            <h2 id="nodes-h">Nodes</h2>
            <div className="stat-grid">
              <StatCard to="/nodes?state=online" label="Online" value={s.nodes.online} tone="ok" />
              <StatCard to="/nodes?state=offline" label="Offline" value={s.nodes.offline} tone="muted" />
              <StatCard to="/nodes?state=draining" label="Draining" value={s.nodes.draining} tone="warn" />
              <StatCard to="/nodes?state=unhealthy" label="Unhealthy" value={s.nodes.unhealthy} tone="bad" />
            </div>
          </section>
          <section aria-labelledby="tasks-h" className="section">
            <h2 id="tasks-h">Tasks by state</h2>
            <div className="stat-grid stat-grid-wide">
              {TASK_STATES.map((st) => (
                <StatCard key={st} to={`/tasks?state=${st}`} label={st} value={s.tasks[st] ?? 0} tone={st} />
              ))}
            </div>
          </section>
          <section className="section card">
            <StackedBarChart
              title="Tasks finished per hour (last 24 h)"
              bucketMs={HOUR}
              startMs={startMs}
              endMs={endMs}
              keys={[
                { name: "succeeded", color: "var(--ok)" },
                { name: "failed", color: "var(--bad)" },
              ]}
              buckets={s.finished_per_hour.map((b) => ({ ms: toMs(b.hour), values: [b.succeeded, b.failed] }))}
            />
          </section>
          <div className="grid-2 section">
            <BackupCard />
            <HealthChecksCard />
          </div>
          <div className="section">
            <UsageCard />
          </div>
          <section aria-labelledby="fail-h" className="section">
            <h2 id="fail-h">Recent failures</h2>
            {s.recent_failures.length === 0 ? (
              <EmptyState title="No recent failures." />
            ) : (
              <div className="table-wrap">
                <table className="table">
                  <thead>
                    <tr>
                      <th scope="col">Task</th>
                      <th scope="col">State</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Owner</th>
                      <th scope="col">Finished</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.recent_failures.map((t) => (
                      <tr key={t.id}>
                        <td>
                          <Link to={`/tasks/${t.id}`}>{t.name || shortId(t.id)}</Link>
                        </td>
                        <td>
                          <StateBadge state={t.state} />
                        </td>
                        <td className="truncate" title={t.message ?? ""}>
                          {t.reason ?? "—"}
                          {t.message ? <span className="muted"> · {t.message}</span> : null}
                        </td>
                        <td>{t.owner ?? "—"}</td>
                        <td>
                          <Time value={t.finished_at ?? t.updated_at} now={now} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
    </div>
  );
}

function StatCard({ to, label, value, tone }: { to: string; label: string; value: number; tone: string }) {
  return (
    <Link to={to} className={`stat-card tone-${tone}`} data-testid={`stat-${label}`}>
      <span className="stat-value">{value}</span>
      <span className="stat-label">{label}</span>
    </Link>
  );
}
