/** Submit a task: a form validated like the API validates it; server refusals show their detail. */
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";
import { ApiError, api } from "../api/client";
import { EMPTY_TASK_FORM, buildTaskCreate, formFromTask, type TaskFormErrors, type TaskFormValues } from "../api/taskForm";
import { ErrorBox } from "../components/ui";
import { useTitle } from "../state/hooks";

type Key = keyof TaskFormValues;

export function SubmitTaskPage() {
  useTitle("Submit task");
  const navigate = useNavigate();
  const [values, setValues] = useState<TaskFormValues>(EMPTY_TASK_FORM);
  const [errors, setErrors] = useState<TaskFormErrors>({});
  const [touched, setTouched] = useState<Partial<Record<Key, boolean>>>({});
  const [serverError, setServerError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  // "Edit & resubmit": /tasks/new?from=<task id> starts from that task's spec.
  const [params] = useSearchParams();
  const from = params.get("from");
  useEffect(() => {
    if (!from) return;
    const ctl = new AbortController();
    api.task(from, ctl.signal).then(
      (t) => setValues(formFromTask(t)),
      (err: unknown) => {
        if (!ctl.signal.aborted) setServerError(err);
      },
    );
    return () => ctl.abort();
  }, [from]);

  const set = <K extends Key>(k: K, v: TaskFormValues[K]) => {
    const next = { ...values, [k]: v };
    setValues(next);
    if (touched[k] || errors[k]) setErrors(buildTaskCreate(next).errors);
  };
  const blur = (k: Key) => {
    // Functional: a submit that moves the focus runs this blur after marking every field touched.
    setTouched((old) => ({ ...old, [k]: true }));
    setErrors(buildTaskCreate(values).errors);
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const { body, errors: errs } = buildTaskCreate(values);
    setErrors(errs);
    setTouched(Object.fromEntries(Object.keys(values).map((k) => [k, true])));
    if (!body) {
      const first = Object.keys(errs)[0];
      document.getElementById(`f-${first}`)?.focus();
      return;
    }
    setBusy(true);
    setServerError(null);
    api.createTask(body).then(
      (task) => navigate(`/tasks/${task.id}`),
      (err: unknown) => {
        setBusy(false);
        setServerError(err);
        // The server names the offending field in problem.field: show it there too.
        const field = err instanceof ApiError ? (err.problem?.field as string | undefined) : undefined;
        if (field && field in values) setErrors((old) => ({ ...old, [field]: err instanceof ApiError ? err.problem?.detail ?? err.message : "" }));
      },
    );
  };

  const field = (k: Key, label: string, input: ReactNode, hint?: string) => {
    const err = touched[k] ? errors[k] : undefined;
    return (
      <div className={`field${err ? " field-invalid" : ""}`}>
        <label className="field-label" htmlFor={`f-${k}`}>
          {label}
        </label>
        {input}
        {hint && !err && (
          <span className="field-hint" id={`h-${k}`}>
            {hint}
          </span>
        )}
        {err && (
          <span className="field-error" id={`e-${k}`} role="alert">
            {err}
          </span>
        )}
      </div>
    );
  };
  const text = (k: Key, props: Record<string, unknown> = {}) => (
    <input
      id={`f-${k}`}
      name={k}
      value={values[k] as string}
      onChange={(e) => set(k, e.target.value as never)}
      onBlur={() => blur(k)}
      aria-invalid={Boolean(touched[k] && errors[k])}
      aria-describedby={touched[k] && errors[k] ? `e-${k}` : `h-${k}`}
      {...props}
    />
  );
  const area = (k: Key, rows: number, placeholder: string) => (
    <textarea
      id={`f-${k}`}
      name={k}
      rows={rows}
      placeholder={placeholder}
      value={values[k] as string}
      onChange={(e) => set(k, e.target.value as never)}
      onBlur={() => blur(k)}
      aria-invalid={Boolean(touched[k] && errors[k])}
      aria-describedby={touched[k] && errors[k] ? `e-${k}` : `h-${k}`}
      spellCheck={false}
    />
  );
  const commit = { className: "mono", placeholder: "40 or 64 hex characters", spellCheck: false, autoComplete: "off" };

  return (
    <div className="page page-narrow">
      <div className="page-head">
        <h1>Submit a task</h1>
      </div>
      <form onSubmit={submit} noValidate className="form" aria-label="Submit a task">
        <fieldset>
          <legend>Code and environment</legend>
          {field("name", "Name (optional)", text("name", { placeholder: "e.g. train-resnet" }))}
          <div className="form-row">
            {field("code_repo_url", "Code repository URL", text("code_repo_url", { placeholder: "https://… or git@host:path", spellCheck: false }))}
            {field("code_commit_id", "Code commit", text("code_commit_id", commit), "The full commit id: tasks are pinned.")}
          </div>
          <div className="form-row">
            {field("env_repo_url", "Environment repository URL", text("env_repo_url", { placeholder: "https://… or git@host:path", spellCheck: false }))}
            {field("env_commit_id", "Environment commit", text("env_commit_id", commit))}
          </div>
          {field("dockerfile_path", "Dockerfile path", text("dockerfile_path", { className: "mono", spellCheck: false }), "Relative to the environment repository; no '..'.")}
        </fieldset>
        <fieldset>
          <legend>Command</legend>
          <div className="radio-row" role="radiogroup" aria-label="Command form">
            <label className="check">
              <input type="radio" name="command_mode" checked={values.command_mode === "shell"} onChange={() => set("command_mode", "shell")} /> Shell
              command (runs via <code>/bin/sh -c</code>)
            </label>
            <label className="check">
              <input type="radio" name="command_mode" checked={values.command_mode === "argv"} onChange={() => set("command_mode", "argv")} /> Exact
              arguments, one per line
            </label>
          </div>
          {field("command", "Command", area("command", 3, values.command_mode === "shell" ? "python train.py --epochs 3" : "python\ntrain.py\n--epochs\n3"))}
          {field("env", "Environment variables (optional)", area("env", 3, "KEY=value, one per line"), "Everyone can read these; put keys and tokens in secrets.")}
          {field(
            "secrets",
            "Secrets (optional)",
            area("secrets", 2, "WANDB_API_KEY=wandb"),
            "ENV=secret per line: the secret's value becomes variable ENV, masked as *** in logs. See Secrets.",
          )}
        </fieldset>
        <fieldset>
          <legend>Private repositories (optional)</legend>
          {field("code_credential", "Code repository credential", text("code_credential", { className: "mono", spellCheck: false, placeholder: "deploy-key" }), "A secret: an SSH private key, or user:token for https.")}
          {field("env_credential", "Environment repository credential", text("env_credential", { className: "mono", spellCheck: false }))}
          {field("known_hosts", "SSH known hosts", text("known_hosts", { className: "mono", spellCheck: false }), "A secret holding known_hosts lines; else the node's own. Host keys are always checked.")}
        </fieldset>
        <fieldset>
          <legend>Files</legend>
          {field(
            "inputs",
            "Inputs (optional)",
            area("inputs", 2, "dataset/train.csv -> /workspace/data/train.csv"),
            "One artifact per line (name or id, see Files), mounted read-only; add -> /path to mount it under /workspace or /inputs (default /inputs/<name>).",
          )}
          {field(
            "outputs",
            "Outputs (optional)",
            area("outputs", 2, "result.txt\ncheckpoints/*.pt"),
            "Paths or globs under /workspace/outputs, one per line; matching files become artifacts after a successful run.",
          )}
        </fieldset>
        <fieldset>
          <legend>Resources and policy</legend>
          <div className="form-row form-row-4">
            {field("cpus", "CPUs", text("cpus", { inputMode: "decimal" }))}
            {field("memory_mb", "Memory (MiB)", text("memory_mb", { inputMode: "numeric" }))}
            {field("gpus", "GPUs", text("gpus", { inputMode: "numeric" }))}
            {field("timeout_s", "Timeout (s)", text("timeout_s", { inputMode: "numeric" }))}
          </div>
          {field("labels", "Node labels required (optional)", area("labels", 2, "gpu=a100, one per line"))}
          <div className="form-row form-row-4">
            {field("priority", "Priority", text("priority", { inputMode: "numeric" }), "Higher runs first.")}
            {field("max_attempts", "Max attempts", text("max_attempts", { inputMode: "numeric" }))}
            <div className="field">
              <span className="field-label">Retry</span>
              <label className="check">
                <input type="checkbox" name="retry_on_failure" checked={values.retry_on_failure} onChange={(e) => set("retry_on_failure", e.target.checked)} /> Retry
                when the command fails
              </label>
            </div>
          </div>
        </fieldset>
        <ErrorBox error={serverError} />
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {busy ? "Submitting…" : "Submit task"}
          </button>
          <button type="button" className="btn btn-ghost" onClick={() => navigate(-1)}>
            Cancel
          </button>
        </div>
      </form>
    </div>
  );
}
