/** Small building blocks: loading, empty and error states, badges, copy and confirm buttons. */
import { useEffect, useRef, useState, type ReactNode } from "react";
import { humanError } from "../api/humanError";
import { ApiError } from "../api/client";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children && <div className="empty-body">{children}</div>}
    </div>
  );
}

/** Shows an error as a sentence (humanError), with the technical detail (status, server detail) one click away. */
export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const { sentence, technical } = humanError(error);
  // Asking again cannot change a refusal (not found, not allowed, bad request): no Retry button for those.
  const final = error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
  return (
    <div className="alert alert-error" role="alert">
      <span className="alert-sentence" data-testid="error-sentence">
        {sentence}
      </span>
      {technical && (
        <details className="alert-detail">
          <summary>Details</summary>
          <span className="mono small" data-testid="error-technical">
            {technical}
          </span>
        </details>
      )}
      {onRetry && !final && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

const STATE_TONE: Record<string, string> = {
  pending: "neutral",
  assigned: "info",
  preparing: "info",
  running: "active",
  cancelling: "warn",
  succeeded: "ok",
  failed: "bad",
  cancelled: "muted",
  lost: "bad",
  online: "ok",
  offline: "muted",
  draining: "warn",
  unhealthy: "bad",
  revoked: "muted",
  active: "ok",
  disabled: "muted",
  ready: "ok",
  uploading: "info",
  warning: "warn",
};

export function StateBadge({ state, label }: { state: string; label?: string }) {
  return (
    <span className={`badge badge-${STATE_TONE[state] ?? "neutral"}`} data-state={state}>
      <span className="badge-dot" aria-hidden="true" />
      {label ?? state}
    </span>
  );
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-http deployments have no Clipboard API: copy through a selected textarea.
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.style.position = "fixed";
  ta.style.opacity = "0";
  document.body.appendChild(ta);
  ta.select();
  const ok = document.execCommand("copy");
  ta.remove();
  if (!ok) throw new Error("copy refused by the browser");
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [state, setState] = useState<"idle" | "done" | "failed">("idle");
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  return (
    <button
      type="button"
      className="btn btn-small btn-ghost copy-btn"
      aria-label={`${label}: ${text.length > 60 ? text.slice(0, 60) + "…" : text}`}
      onClick={() => {
        copyText(text).then(
          () => setState("done"),
          () => setState("failed"),
        );
        clearTimeout(timer.current);
        timer.current = setTimeout(() => setState("idle"), 1800);
      }}
    >
      <span aria-live="polite">{state === "done" ? "Copied" : state === "failed" ? "Copy failed" : label}</span>
    </button>
  );
}

/** A button that asks "Are you sure?" inline before running a destructive action; shows the server's error. */
export function ConfirmButton({
  label,
  confirmLabel,
  onConfirm,
  tone = "danger",
  disabled,
  warning,
  small,
}: {
  label: string;
  /** A compact button (table rows). */
  small?: boolean;
  /** Shown while asking for confirmation: what this action will break. */
  warning?: string;
  confirmLabel?: string;
  onConfirm: () => Promise<unknown>;
  tone?: "danger" | "normal";
  disabled?: boolean;
}) {
  const [phase, setPhase] = useState<"idle" | "ask" | "busy">("idle");
  const [error, setError] = useState<unknown>(null);
  const yesRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (phase === "ask") yesRef.current?.focus();
  }, [phase]);
  const cls = (tone === "danger" ? "btn btn-danger" : "btn") + (small ? " btn-small" : "");
  return (
    <span className="confirm">
      {phase === "idle" ? (
        <button type="button" className={cls} disabled={disabled} onClick={() => setPhase("ask")}>
          {label}
        </button>
      ) : (
        <span className="confirm-ask" role="group" aria-label={`Confirm ${label}`}>
          {warning && (
            <span className="confirm-warning" role="alert" data-testid="confirm-warning">
              {warning}
            </span>
          )}
          <button
            ref={yesRef}
            type="button"
            className={cls}
            disabled={phase === "busy"}
            onClick={() => {
              setPhase("busy");
              setError(null);
              onConfirm().then(
                () => setPhase("idle"),
                (err: unknown) => {
                  setError(err);
                  setPhase("idle");
                },
              );
            }}
          >
            {phase === "busy" ? "Working…" : (confirmLabel ?? `Yes, ${label.toLowerCase()}`)}
          </button>
          <button type="button" className="btn btn-ghost" disabled={phase === "busy"} onClick={() => setPhase("idle")}>
            Keep
          </button>
        </span>
      )}
      {error !== null && <ErrorBox error={error} />}
    </span>
  );
}

/** Raw JSON of an API object, opened explicitly: the only place raw ISO timestamps appear. */
export function RawJson({ value, label = "Raw JSON" }: { value: unknown; label?: string }) {
  const [open, setOpen] = useState(false);
  const text = open ? JSON.stringify(value, null, 2) : "";
  return (
    <section className="raw-json">
      <div className="raw-json-bar">
        <button type="button" className="btn btn-small btn-ghost" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? `Hide ${label.toLowerCase()}` : `Show ${label.toLowerCase()}`}
        </button>
        {open && <CopyButton text={text} label="Copy JSON" />}
      </div>
      {open && (
        <pre className="raw-json-body" data-raw-json tabIndex={0}>
          {text}
        </pre>
      )}
    </section>
  );
}

export function KeyValues({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="kv">
      {items.map(([k, v]) => (
        <div className="kv-row" key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

export function Labels({ labels }: { labels: Record<string, string> | null | undefined }) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return <span className="muted">none</span>;
  return (
    <span className="labels">
      {entries.map(([k, v]) => (
        <span className="label-chip" key={k}>
          {k}
          {v !== "" && <>={v}</>}
        </span>
      ))}
    </span>
  );
}

export function formatMb(mb: number | null | undefined): string {
  if (mb === null || mb === undefined || !Number.isFinite(mb)) return "—";
  if (mb >= 1024 * 1024) return `${(mb / 1024 / 1024).toFixed(1)} TiB`;
  if (mb >= 1024) return `${(mb / 1024).toFixed(1)} GiB`;
  return `${Math.round(mb)} MiB`;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}
