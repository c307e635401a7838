/** Admin-only host.ssh maintenance on a node: a probe, or one command with a hard timeout; each run is a task. */
import { useEffect, useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { api } from "../api/client";
import type { Node, Task } from "../api/types";
import { ErrorBox, StateBadge, shortId } from "./ui";

export const MAX_MAINTENANCE_TIMEOUT_S = 3600;

/** Mirrors the API: exec needs a command (at most 4096 characters, no NUL); timeout 1 to 3600 s. */
export function maintenanceErrors(op: "probe" | "exec", command: string, timeout: string): { command?: string; timeout?: string } {
  const errors: { command?: string; timeout?: string } = {};
  if (op === "exec") {
    if (!command.trim()) errors.command = "Give the command to run.";
    else if (command.length > 4096) errors.command = "At most 4096 characters.";
    else if (command.includes("\0")) errors.command = "NUL bytes are not allowed.";
  }
  const n = Number(timeout);
  if (!/^\d+$/.test(timeout.trim()) || n < 1 || n > MAX_MAINTENANCE_TIMEOUT_S) errors.timeout = `Whole seconds, 1 to ${MAX_MAINTENANCE_TIMEOUT_S}.`;
  return errors;
}

export function MaintenancePanel({ node }: { node: Node }) {
  const [op, setOp] = useState<"probe" | "exec">("probe");
  const [command, setCommand] = useState("");
  const [timeout, setTimeoutS] = useState("60");
  const [errors, setErrors] = useState<{ command?: string; timeout?: string }>({});
  const [serverError, setServerError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [started, setStarted] = useState<Task[]>([]);
  const offered = node.runtimes.includes("host.ssh");
  // Once a try was refused, messages follow the fields as they are edited (no stale errors).
  const [tried, setTried] = useState(false);
  useEffect(() => {
    if (tried) setErrors(maintenanceErrors(op, command, timeout));
  }, [tried, op, command, timeout]);
  const online = node.state === "online";

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const errs = maintenanceErrors(op, command, timeout);
    setErrors(errs);
    setTried(true);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setServerError(null);
    api.maintenance(node.id, { op, timeout_s: Number(timeout), ...(op === "exec" ? { command } : {}) }).then(
      (task) => {
        setBusy(false);
        setStarted((old) => [task, ...old].slice(0, 5));
      },
      (err: unknown) => {
        setBusy(false);
        setServerError(err);
      },
    );
  };

  return (
    <section className="card section maintenance" aria-labelledby="maint-h" data-testid="maintenance-panel">
      <h2 id="maint-h">Maintenance (host.ssh)</h2>
      <p className="muted small">
        Reaches this node's host OS over SSH from its agent. Only bounded operations: a probe (OS, uptime, disk, Docker
        and k3s presence) or one command with a hard timeout and an output cap. Each run is an audited task.
      </p>
      {!offered && (
        <p className="alert alert-info" data-testid="maintenance-unavailable">
          This node offers no <code>host.ssh</code> runtime: set <code>ssh_host</code>, <code>ssh_user</code>, <code>ssh_key_file</code> and{" "}
          <code>ssh_known_hosts</code> in its agent configuration.
        </p>
      )}
      {offered && !online && <p className="alert alert-info">The node is offline; maintenance needs its agent connected.</p>}
      <form className="form" onSubmit={submit} noValidate aria-label="Maintenance">
        <div className="radio-row" role="radiogroup" aria-label="Operation">
          <label className="check">
            <input type="radio" name="maint-op" checked={op === "probe"} onChange={() => setOp("probe")} /> Probe
          </label>
          <label className="check">
            <input type="radio" name="maint-op" checked={op === "exec"} onChange={() => setOp("exec")} /> Run a command
          </label>
        </div>
        {op === "exec" && (
          <div className={`field${errors.command ? " field-invalid" : ""}`}>
            <label className="field-label" htmlFor="maint-command">
              Command
            </label>
            <textarea id="maint-command" className="mono" rows={2} value={command} onChange={(e) => setCommand(e.target.value)} spellCheck={false} aria-invalid={Boolean(errors.command)} />
            {errors.command && (
              <span className="field-error" role="alert">
                {errors.command}
              </span>
            )}
          </div>
        )}
        <div className={`field field-short${errors.timeout ? " field-invalid" : ""}`}>
          <label className="field-label" htmlFor="maint-timeout">
            Timeout (s)
          </label>
          <input id="maint-timeout" inputMode="numeric" value={timeout} onChange={(e) => setTimeoutS(e.target.value)} aria-invalid={Boolean(errors.timeout)} />
          {errors.timeout && (
            <span className="field-error" role="alert">
              {errors.timeout}
            </span>
          )}
        </div>
        <ErrorBox error={serverError} />
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={busy || !offered || !online}>
            {busy ? "Starting…" : op === "probe" ? "Run probe" : "Run command"}
          </button>
        </div>
      </form>
      {started.length > 0 && (
        <ul className="plain-list" aria-label="Maintenance tasks started here" data-testid="maintenance-started">
          {started.map((t) => (
            <li key={t.id}>
              <StateBadge state={t.state} /> <Link to={`/tasks/${t.id}`}>{t.name || shortId(t.id)}</Link>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
