/** Dashboard cards about the server itself: the last backup (from /health's `backup` check and the backup events) and every health check. */
import { useContext } from "react";
import { api } from "../api/client";
import { WARNING_PREFIX as WARNING, checkSentence } from "../api/healthReason";
import type { UnideskEvent } from "../api/types";
import { LiveContext } from "../state/contexts";
import { useAsync, useLiveEvents } from "../state/hooks";
import { isoInTextToBeijing } from "../time";
import { Time } from "./Time";
import { ErrorBox, StateBadge, formatBytes } from "./ui";

const PAGE = 1000;
const MAX_PAGES = 20;

/** The newest backup.succeeded and backup.failed events (events come oldest first, so page to the end). */
async function lastBackups(): Promise<{ ok: UnideskEvent | null; failed: UnideskEvent | null }> {
  let ok: UnideskEvent | null = null;
  let failed: UnideskEvent | null = null;
  let after = 0;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await api.events({ subject_type: "backup", after, limit: PAGE });
    for (const ev of page.items) {
      if (ev.kind === "backup.succeeded") ok = ev;
      else if (ev.kind === "backup.failed") failed = ev;
    }
    if (page.items.length < PAGE || page.last_id === null) break;
    after = page.last_id;
  }
  return { ok, failed };
}

export function BackupCard() {
  const { health } = useContext(LiveContext);
  const events = useAsync(() => lastBackups(), []);
  useLiveEvents((ev) => ev.subject_type === "backup", events.reload);
  const answer = health.health?.checks?.backup;
  // "warning: …": the server works but no backup exists and none is scheduled; never green.
  const warning = answer?.startsWith(WARNING) ? answer.slice(WARNING.length) : null;
  const check = warning !== null ? "ok" : answer;
  const ok = events.data?.ok ?? null;
  const failed = events.data?.failed ?? null;
  const failedLast = failed !== null && (ok === null || failed.id > ok.id);
  const none = warning !== null || (check === "ok" && events.data !== null && ok === null);
  const tone = check === undefined ? "neutral" : check !== "ok" ? "bad" : none ? "warn" : "ok";
  const label = check === undefined ? "unknown" : check !== "ok" ? "failing" : none ? "no backup yet" : ok ? "ok" : "checking";
  return (
    <section className={`card backup-card tone-${tone}`} aria-labelledby="backup-h" data-testid="backup-card" data-backup={label}>
      <div className="section-head">
        <h2 id="backup-h">Backups</h2>
        <StateBadge state={tone === "bad" ? "failed" : tone === "ok" ? "succeeded" : tone === "warn" ? "warning" : "pending"} label={label} />
      </div>
      {check === undefined && <p className="muted">{health.health ? "This server reports no backup check." : "Checking…"}</p>}
      {check !== undefined && check !== "ok" && (
        <p className="backup-reason" role="alert" data-testid="backup-reason">
          {isoInTextToBeijing(check)}
        </p>
      )}
      {ok ? (
        <p>
          Last backup <Time value={ok.ts} mode="full" />
          {typeof ok.payload.size === "number" && <> · {formatBytes(ok.payload.size)}</>}
          {typeof ok.payload.path === "string" && <span className="muted small mono break"> · {ok.payload.path.split("/").pop()}</span>}
        </p>
      ) : (
        check === "ok" && (
          <p className="muted" data-testid="backup-none">
            {warning !== null ? (
              <>
                No backup has been taken yet and none is scheduled. Run <code>unidesk-server backup</code>, or set <code>backup_daily_at</code> for a daily one.
              </>
            ) : (
              <>
                No backup has been taken yet: the daily schedule takes the first one. Run <code>unidesk-server backup</code> to take one now.
              </>
            )}
          </p>
        )
      )}
      {failedLast && failed && (
        <p className="muted small">
          The last attempt failed at <Time value={failed.ts} mode="full" />.
        </p>
      )}
      {events.error !== null && <ErrorBox error={events.error} onRetry={events.reload} />}
    </section>
  );
}

/** Every /health check with its answer ("ok" or the reason). */
export function HealthChecksCard() {
  const { health } = useContext(LiveContext);
  const h = health.health;
  const checks = Object.entries(h?.checks ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return (
    <section className="card" aria-labelledby="health-h" data-testid="health-card">
      <div className="section-head">
        <h2 id="health-h">Server health</h2>
        {h && <StateBadge state={h.status === "ok" ? "succeeded" : "failed"} label={h.status} />}
      </div>
      {checks.length === 0 ? (
        <p className="muted">{h ? (h.reasons[0] ?? "No checks reported.") : "Checking…"}</p>
      ) : (
        <ul className="checks">
          {checks.map(([name, answer]) => (
            <li key={name} data-check={name} className={answer === "ok" ? "check-ok" : answer.startsWith(WARNING) ? "check-warn" : "check-bad"}>
              <span className="check-name">{name.replace(/_/g, " ")}</span>
              <span className="check-answer">
                {answer === "ok" ? "ok" : answer.startsWith(WARNING) ? `Warning: ${answer.slice(WARNING.length)}.` : checkSentence(name, isoInTextToBeijing(answer))}
              </span>
            </li>
          ))}
        </ul>
      )}
      {h?.version && (
        <p className="muted small">
          Version {h.version}
          {h.commit ? <span className="mono"> · {h.commit.slice(0, 12)}</span> : null}
        </p>
      )}
    </section>
  );
}
