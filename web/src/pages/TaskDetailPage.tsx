/** One task: code/env pins with copy buttons, resources, attempts, logs, trace, cancel/retry, raw JSON. */
import { useState, type KeyboardEvent, type ReactNode } from "react";
import { failureSentence } from "../api/humanError";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { api } from "../api/client";
import { allows } from "../api/access";
import { pendingReasonText } from "../api/pendingReason";
import { taskTiming } from "../api/taskTiming";
import { FINAL_ATTEMPT_STATES, FINAL_TASK_STATES, type Task } from "../api/types";
import { TaskArtifacts } from "../components/TaskArtifacts";
import { TaskLinks } from "../components/TaskLinks";
import { TaskLogs } from "../components/TaskLogs";
import { TaskTrace } from "../components/TaskTrace";
import { Time } from "../components/Time";
import { ConfirmButton, CopyButton, ErrorBox, KeyValues, Labels, Loading, RawJson, StateBadge, shortId } from "../components/ui";
import { useAsync, useLiveAsync, useLiveEvents, useNow, useThrottled, useTitle } from "../state/hooks";
import { elapsedMs, formatDuration } from "../time";

const TABS = ["logs", "trace", "attempts", "json"] as const;
type Tab = (typeof TABS)[number];
const TAB_LABEL: Record<Tab, string> = { logs: "Logs", trace: "Trace", attempts: "Attempts", json: "Raw JSON" };

export function TaskDetailPage() {
  const { id = "" } = useParams();
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const tab: Tab = (TABS as readonly string[]).includes(params.get("tab") ?? "") ? (params.get("tab") as Tab) : "logs";
  const task = useLiveAsync((signal) => api.task(id, signal), [id]);
  const now = useNow(1000);
  const reload = useThrottled(task.reload, 400);
  useLiveEvents((ev) => ev.subject_id === id, reload);
  useTitle(task.data ? `Task ${task.data.name || shortId(task.data.id)}` : "Task");
  const pickedAttempt = Number.parseInt(params.get("attempt") ?? "", 10) || null;
  const [detailsOpen, setDetailsOpen] = useState(() => localStorage.getItem(DETAILS_KEY) !== "closed");
  const toggleDetails = () => {
    localStorage.setItem(DETAILS_KEY, detailsOpen ? "closed" : "open");
    setDetailsOpen(!detailsOpen);
  };

  const t = task.data;
  if (!t) {
    return (
      <div className="page">
        <Breadcrumb label={shortId(id)} />
        {task.error !== null ? <ErrorBox error={task.error} onRetry={task.reload} /> : <Loading />}
      </div>
    );
  }
  const final = FINAL_TASK_STATES.includes(t.state);
  const timing = taskTiming(t, now);
  const attempts = t.attempts ?? [];
  const latestNo = attempts.length ? attempts[attempts.length - 1].attempt_no : null;
  const attemptNo = pickedAttempt !== null && attempts.some((a) => a.attempt_no === pickedAttempt) ? pickedAttempt : latestNo;
  const attempt = attempts.find((a) => a.attempt_no === attemptNo) ?? null;
  const setPickedAttempt = (n: number) => {
    const p = new URLSearchParams(params);
    if (n === latestNo) p.delete("attempt");
    else p.set("attempt", String(n));
    setParams(p, { replace: true });
  };
  const setTab = (next: Tab) => {
    const p = new URLSearchParams(params);
    p.set("tab", next);
    setParams(p, { replace: true });
  };
  const onTabKey = (e: KeyboardEvent) => {
    const i = TABS.indexOf(tab);
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const next = TABS[(i + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
      setTab(next);
      document.getElementById(`tab-${next}`)?.focus();
      e.preventDefault();
    }
  };

  // Once an attempt exists, what people come for is its log: it comes before the details (and stays
  // there when the task ends, so the log does not jump under the reader). Before that, the details.
  const logsFirst = attempts.length > 0;
  const logsBlock = (
    <section className="task-logs-block" data-testid="task-tabs">
        <div className="tabs" role="tablist" aria-label="Task details" onKeyDown={onTabKey}>
          {TABS.map((name) => (
            <button
              key={name}
              id={`tab-${name}`}
              role="tab"
              type="button"
              aria-selected={tab === name}
              aria-controls={`panel-${name}`}
              tabIndex={tab === name ? 0 : -1}
              className={`tab${tab === name ? " tab-on" : ""}`}
              onClick={() => setTab(name)}
            >
              {TAB_LABEL[name]}
              {name === "attempts" && ` (${attempts.length})`}
            </button>
          ))}
        </div>
        <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="tabpanel">
          {tab === "logs" &&
            (attemptNo === null || !attempt ? (
              <div className="empty">
                <p className="empty-title">No attempt yet.</p>
                <p className="muted">Logs appear here once a node picks the task up{t.state === "pending" ? " (it is pending)" : ""}.</p>
              </div>
            ) : (
              <>
                {attempts.length > 1 && (
                  <label className="inline-field">
                    <span>Attempt</span>
                    <select value={attemptNo} onChange={(e) => setPickedAttempt(Number(e.target.value))}>
                      {attempts.map((a) => (
                        <option key={a.attempt_no} value={a.attempt_no}>
                          #{a.attempt_no} · {a.state} · {a.node_name}
                        </option>
                      ))}
                    </select>
                  </label>
                )}
                <TaskLogs key={`${t.id}:${attemptNo}`} task={t} attemptNo={attemptNo} live={!FINAL_ATTEMPT_STATES.includes(attempt.state)} />
              </>
            ))}
          {tab === "trace" && <TaskTrace taskId={t.id} />}
          {tab === "attempts" && <AttemptsTable task={t} now={now} />}
          {tab === "json" && <RawJson value={t} label="Raw JSON" />}
        </div>
    </section>
  );
  return (
    <div className="page">
      <Breadcrumb label={t.name || shortId(t.id)} />
      <div className="page-head">
        <h1>
          {t.name || shortId(t.id)} <StateBadge state={t.state} />
        </h1>
        <div className="actions">
          <Link to={`/tasks/new?from=${t.id}`} className="btn" title="The submit form filled from this task, to change and submit as a new task">
            Edit &amp; resubmit
          </Link>
          <Link to={`/tasks/new?from=${t.id}&clone=1`} className="btn" title="The same spec, attachments included, named as a copy">
            Clone
          </Link>
          {!final && allows(t, "cancel") && (
            <ConfirmButton label="Cancel task" confirmLabel="Yes, cancel it" onConfirm={() => api.cancelTask(t.id).then((x) => task.setData(() => ({ ...x, attempts: x.attempts ?? t.attempts })))} />
          )}
          {final && allows(t, "retry") && (
            <ConfirmButton label="Retry" tone="normal" confirmLabel="Submit again" onConfirm={() => api.retryTask(t.id).then((x) => navigate(`/tasks/${x.id}`))} />
          )}
        </div>
      </div>
      <TaskLinks taskId={t.id} />
      {task.error !== null && <ErrorBox error={task.error} onRetry={task.reload} />}
      {pendingReasonText(t) && (
        <div className="alert alert-info" data-testid="pending-reason">
          <strong>Pending: </strong>
          {pendingReasonText(t)}
        </div>
      )}
      {t.state === "failed" ? (
        <FailureBanner task={t} attemptNo={attemptNo} />
      ) : (
        (t.message || (t.unschedulable_reason && !pendingReasonText(t))) && (
          <div className="alert alert-info">
            {t.reason && <strong>{t.reason}: </strong>}
            {t.message ?? t.unschedulable_reason}
          </div>
        )
      )}
      {logsFirst && logsBlock}
      <section className="task-details" aria-label="Task details">
        <button type="button" className="details-toggle" aria-expanded={detailsOpen} aria-controls="task-details-body" onClick={toggleDetails}>
          {detailsOpen ? "▾" : "▸"} Details <span className="muted small">summary, code &amp; environment, resources, command{t.extra?.kind !== "host.ssh" ? ", files" : ""}</span>
        </button>
        {detailsOpen && (
          <div id="task-details-body">
      <div className="grid-3">
            <section className="card">
              <h2>Summary</h2>
              <KeyValues
                items={[
                  ["State", <span data-testid="task-state">{t.state}{t.reason && t.reason !== t.state ? ` (${t.reason})` : ""}</span>],
                  ["Owner", t.owner ?? "—"],
                  ["Created", <Time value={t.created_at} mode="full" />],
                  ["Updated", <Time value={t.updated_at} mode="full" />],
                  ["Finished", <Time value={t.finished_at} mode="full" />],
                  ["Started", <Time value={t.started_at ?? null} mode="full" />],
                  [timing.label, <span data-testid="task-timing">{timing.text}</span>],
                  ["ID", <span className="mono small">{t.id}</span>],
                ]}
              />
            </section>
            {t.extra?.kind === "host.ssh" ? (
              <section className="card">
                <h2>Maintenance</h2>
                <MaintenanceMeta task={t} />
              </section>
            ) : (
              <section className="card">
                <h2>Code &amp; environment</h2>
                <MetaList task={t} />
              </section>
            )}
            <section className="card">
              <h2>Resources &amp; policy</h2>
              <KeyValues
                items={[
                  ["CPUs", t.resources.cpus],
                  ["Memory", `${t.resources.memory_mb} MiB`],
                  ["GPUs", t.resources.gpus],
                  ["Labels", <Labels labels={t.resources.labels} />],
                  ["Timeout", formatDuration(t.timeout_s * 1000)],
                  ["Priority", t.priority],
                  ["Account", t.account ?? "(default)"],
                  ["Attempts", `${t.attempt_count} of ${t.max_attempts}${t.retry_on_failure ? ", retries on failure" : ""}`],
                ]}
              />
            </section>
          </div>
          <section className="card section">
            <h2>Command</h2>
            <div className="command-line">
              <code className="mono">{t.command.map(shellQuote).join(" ")}</code>
              <CopyButton text={t.command.map(shellQuote).join(" ")} />
            </div>
            {Object.keys(t.env).length > 0 && (
              <KeyValues items={Object.entries(t.env).map(([k, v]) => [k, <span className="mono">{v}</span>])} />
            )}
            {(Object.keys(t.secrets ?? {}).length > 0 || credentialRefs(t).length > 0) && (
              <div data-testid="task-secrets">
                <h3>Secrets used</h3>
                <p className="muted small">Names only: values never leave the secret store except into this task's container, masked as *** in its logs.</p>
                <KeyValues
                  items={[
                    ...Object.entries(t.secrets ?? {}).map(([k, ref]): [string, ReactNode] => [k, <span className="mono">secret {ref}</span>]),
                    ...credentialRefs(t).map(([what, ref]): [string, ReactNode] => [what, <span className="mono">secret {ref}</span>]),
                  ]}
                />
              </div>
            )}
          </section>
          {t.extra?.kind !== "host.ssh" && <TaskArtifacts task={t} />}
          </div>
        )}
      </section>

      {!logsFirst && logsBlock}
    </div>
  );
}

function Breadcrumb({ label }: { label: string }) {
  return (
    <nav aria-label="Breadcrumb" className="breadcrumb">
      <Link to="/tasks">Tasks</Link> / <span aria-current="page">{label}</span>
    </nav>
  );
}

/** The five items that pin what ran: code repo and commit, env repo and commit, Dockerfile path. */
function MetaList({ task: t }: { task: Task }) {
  const items: [string, string][] = [
    ["Code repository", t.code_repo_url],
    ["Code commit", t.code_commit_id],
    ["Env repository", t.env_repo_url],
    ["Env commit", t.env_commit_id],
    ["Dockerfile", t.dockerfile_path],
  ];
  return (
    <dl className="kv meta-list" data-testid="task-meta">
      {items.map(([k, v]) => (
        <div className="kv-row" key={k}>
          <dt>{k}</dt>
          <dd className="meta-value">
            <span className="mono break" title={v}>
              {v}
            </span>
            <CopyButton text={v} label="Copy" />
          </dd>
        </div>
      ))}
    </dl>
  );
}

/** A host.ssh task: which node's host, what operation, and its bounds (it has no code or environment). */
function MaintenanceMeta({ task: t }: { task: Task }) {
  const params = (t.extra.params ?? {}) as Record<string, string>;
  const nodeId = typeof t.extra.node_id === "string" ? t.extra.node_id : null;
  return (
    <KeyValues
      items={[
        ["Kind", <span className="mono">host.ssh</span>],
        ["Operation", params.op ?? "—"],
        ["Command", params.command ? <span className="mono break">{params.command}</span> : "—"],
        ["Timeout", params.timeout_s ? `${params.timeout_s} s` : "—"],
        ["Node", nodeId ? <Link to={`/nodes/${nodeId}`}>{shortId(nodeId)}</Link> : "—"],
      ]}
    />
  );
}

function AttemptsTable({ task: t, now }: { task: Task; now: number }) {
  const attempts = t.attempts ?? [];
  if (attempts.length === 0) return <p className="muted">No attempts yet.</p>;
  return (
    <div className="table-wrap">
      <table className="table">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">State</th>
            <th scope="col">Node</th>
            <th scope="col">Stage</th>
            <th scope="col">Exit</th>
            <th scope="col">GPUs</th>
            <th scope="col">Assigned</th>
            <th scope="col">Started</th>
            <th scope="col">Finished</th>
            <th scope="col">Ran for</th>
          </tr>
        </thead>
        <tbody>
          {attempts.map((a) => (
            <tr key={a.attempt_no}>
              <td className="num">{a.attempt_no}</td>
              <td>
                <StateBadge state={a.state} />
                {a.reason && <div className="muted small">{a.reason}{a.message ? `: ${a.message}` : ""}</div>}
              </td>
              <td>{a.node_id ? <Link to={`/nodes/${a.node_id}`}>{a.node_name ?? shortId(a.node_id)}</Link> : (a.node_name ?? "—")}</td>
              <td>{a.stage ?? "—"}</td>
              <td className="num">{a.exit_code ?? "—"}</td>
              <td>{a.gpu_indices.length ? a.gpu_indices.join(", ") : "—"}</td>
              <td>
                <Time value={a.assigned_at} now={now} />
              </td>
              <td>
                <Time value={a.started_at} now={now} />
              </td>
              <td>
                <Time value={a.finished_at} now={now} />
              </td>
              <td className="num">{a.started_at ? formatDuration(elapsedMs(a.started_at, a.finished_at, now)) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

const CREDENTIAL_LABELS: Record<string, string> = {
  code_repo: "Code repository credential",
  env_repo: "Env repository credential",
  known_hosts: "SSH known hosts",
};

/** The credential references a task names (from `extra.credentials`): [label, reference]. */
function credentialRefs(t: Task): [string, string][] {
  const creds = (t.extra?.credentials ?? {}) as Record<string, unknown>;
  const out: [string, string][] = [];
  for (const [key, label] of Object.entries(CREDENTIAL_LABELS)) {
    const ref = (creds[key] as { ref?: string } | undefined)?.ref;
    if (ref) out.push([label, ref]);
  }
  const registries = (creds.registries ?? {}) as Record<string, { ref?: string }>;
  for (const [host, r] of Object.entries(registries)) if (r?.ref) out.push([`Registry ${host}`, r.ref]);
  return out;
}

/** The failed attempt's last stderr lines, inside the failure banner (what usually says why). */
function LastStderr({ taskId, attemptNo }: { taskId: string; attemptNo: number }) {
  const tail = useAsync((signal) => api.logs(taskId, { attempt: attemptNo, tail: 20, stream: "stderr" }, signal), [taskId, attemptNo]);
  const lines = (tail.data?.items ?? []).map((l) => l.data).join("").split("\n").filter((l) => l.trim() !== "").slice(-STDERR_LINES);
  if (lines.length === 0) return null;
  return (
    <div className="failure-stderr">
      <div className="small">Last lines of stderr:</div>
      <pre className="mono small" data-testid="failure-stderr">
        {lines.join("\n")}
      </pre>
    </div>
  );
}

const STDERR_LINES = 10;
/** localStorage key: whether the task page's details section is open (it is, unless closed). */
const DETAILS_KEY = "unidesk.taskDetails";

/** A failed task: why, as a sentence (the raw reason one click away), then its last stderr lines. */
function FailureBanner({ task: t, attemptNo }: { task: Task; attemptNo: number | null }) {
  const latest = (t.attempts ?? []).find((a) => a.attempt_no === attemptNo) ?? null;
  // The attempt's own reason says more than the task's summary when the node reported one.
  const h = failureSentence(t.reason ?? latest?.reason, t.message ?? latest?.message);
  return (
    <div className="alert alert-error" data-testid="failure-banner">
      <strong>Failed: </strong>
      <span data-testid="failure-sentence">{h.sentence}</span>
      {h.technical && (
        <details className="alert-detail">
          <summary>Details</summary>
          <code className="mono small" data-testid="failure-raw">
            {h.technical}
          </code>
        </details>
      )}
      {attemptNo !== null && <LastStderr key={`${t.id}:${attemptNo}`} taskId={t.id} attemptNo={attemptNo} />}
    </div>
  );
}
