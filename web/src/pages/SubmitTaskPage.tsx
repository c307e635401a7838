/**
 * Submit a task: a form validated like the API validates it; server refusals show their detail. It
 * remembers the user's recent repositories, Dockerfiles and refs, resolves a branch or tag to the
 * commit the task is pinned to (shown before submitting), and attaches the task to a work item or
 * an experiment when those plugins are loaded.
 */
import { useCallback, useContext, useEffect, useRef, useState, type FormEvent, type ReactNode } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";
import { ApiError, api } from "../api/client";
import { humanError } from "../api/humanError";
import { loadMemory, remember, saveMemory } from "../api/submitMemory";
import { EMPTY_TASK_FORM, REF_RE, buildTaskCreate, formFromTask, isCommitId, repoUrlError, type ResolvedPins, type TaskFormErrors, type TaskFormValues } from "../api/taskForm";
import type { RefResolved } from "../api/types";
import { ExperimentPicker, WorkItemPicker, useAttachPlugins } from "../components/TaskAttachPickers";
import { ErrorBox, shortId } from "../components/ui";
import { AuthContext } from "../state/contexts";
import { useTitle } from "../state/hooks";

type Key = keyof TaskFormValues;
type CommitKey = "code_commit_id" | "env_commit_id";
const REPO_OF: Record<CommitKey, "code_repo_url" | "env_repo_url"> = { code_commit_id: "code_repo_url", env_commit_id: "env_repo_url" };
const CREDENTIAL_OF: Record<CommitKey, "code_credential" | "env_credential"> = { code_commit_id: "code_credential", env_commit_id: "env_credential" };

type Resolution = { state: "loading" } | { state: "ok"; r: RefResolved } | { state: "error"; error: unknown };

/** The resolution a commit field's current value needs: its repository and ref, or null (a commit id, or not a ref yet). */
function refOf(values: TaskFormValues, k: CommitKey): { key: string; repo: string; ref: string } | null {
  const ref = values[k].trim();
  const repo = values[REPO_OF[k]].trim();
  if (!ref || isCommitId(ref.toLowerCase()) || !REF_RE.test(ref) || repoUrlError(repo)) return null;
  return { key: `${repo}\n${ref}\n${values[CREDENTIAL_OF[k]].trim()}`, repo, ref };
}

export function SubmitTaskPage() {
  useTitle("Submit task");
  const navigate = useNavigate();
  const [values, setValues] = useState<TaskFormValues>(EMPTY_TASK_FORM);
  const [errors, setErrors] = useState<TaskFormErrors>({});
  const [touched, setTouched] = useState<Partial<Record<Key, boolean>>>({});
  const [serverError, setServerError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const { user } = useContext(AuthContext)!;
  const [memory] = useState(() => loadMemory(localStorage, user.username));
  const attach = useAttachPlugins();
  const [resolutions, setResolutions] = useState<Record<string, Resolution>>({});
  const valuesRef = useRef(values);
  valuesRef.current = values;
  // "Edit & resubmit": /tasks/new?from=<task id> starts from that task's spec; "Clone" (&clone=1) names it a copy.
  const [params] = useSearchParams();
  const from = params.get("from");
  const clone = params.get("clone") === "1";
  useEffect(() => {
    if (from) return;
    // A fresh form starts from what this user used last.
    setValues((v) => ({
      ...v,
      code_repo_url: memory.code_repos[0] ?? v.code_repo_url,
      env_repo_url: memory.env_repos[0] ?? v.env_repo_url,
      dockerfile_path: memory.dockerfiles[0] ?? v.dockerfile_path,
    }));
  }, [from, memory]);
  useEffect(() => {
    if (!from) return;
    const ctl = new AbortController();
    api.task(from, ctl.signal).then(
      (t) => {
        const v = formFromTask(t);
        setValues(clone ? { ...v, name: `${t.name || shortId(t.id)}-copy`.slice(0, 200) } : v);
      },
      (err: unknown) => {
        if (!ctl.signal.aborted) setServerError(err);
      },
    );
    return () => ctl.abort();
  }, [from, clone]);

  const pins: ResolvedPins = {};
  for (const k of ["code_commit_id", "env_commit_id"] as const) {
    const want = refOf(values, k);
    const res = want ? resolutions[want.key] : undefined;
    if (res?.state === "ok") pins[k] = res.r.commit;
  }
  /** Look a branch or tag up (once per repository and ref): the note under the field shows the commit. */
  const resolve = useCallback((k: CommitKey): Promise<Resolution | null> => {
    const v = valuesRef.current;
    const want = refOf(v, k);
    if (!want) return Promise.resolve(null);
    setResolutions((old) => ({ ...old, [want.key]: { state: "loading" } }));
    const credential = v[CREDENTIAL_OF[k]].trim() || undefined;
    return api.resolveRef({ repo_url: want.repo, ref: want.ref, credential }).then(
      (r): Resolution => {
        const res: Resolution = { state: "ok", r };
        setResolutions((old) => ({ ...old, [want.key]: res }));
        return res;
      },
      (error: unknown): Resolution => {
        const res: Resolution = { state: "error", error };
        setResolutions((old) => ({ ...old, [want.key]: res }));
        return res;
      },
    );
  }, []);

  const set = <K extends Key>(k: K, v: TaskFormValues[K]) => {
    const next = { ...values, [k]: v };
    setValues(next);
    if (touched[k] || errors[k]) setErrors(buildTaskCreate(next, pins).errors);
  };
  const blur = (k: Key) => {
    // Functional: a submit that moves the focus runs this blur after marking every field touched.
    setTouched((old) => ({ ...old, [k]: true }));
    setErrors(buildTaskCreate(values, pins).errors);
    if (k === "code_commit_id" || k === "code_repo_url" || k === "code_credential") void resolveIfNew("code_commit_id");
    if (k === "env_commit_id" || k === "env_repo_url" || k === "env_credential") void resolveIfNew("env_commit_id");
  };
  const resolveIfNew = (k: CommitKey) => {
    const want = refOf(valuesRef.current, k);
    if (want && !resolutions[want.key]) return resolve(k);
    return Promise.resolve(null);
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const { body, errors: errs } = buildTaskCreate(values, pins);
    setErrors(errs);
    setTouched(Object.fromEntries(Object.keys(values).map((k) => [k, true])));
    if (!body) {
      // A branch or tag not looked up yet: look it up now and show it; the person submits once they have seen it.
      const pending = (["code_commit_id", "env_commit_id"] as const).filter((k) => errs[k] && refOf(values, k) && resolutions[refOf(values, k)!.key]?.state !== "error");
      pending.forEach((k) => void resolve(k));
      const first = pending[0] ?? Object.keys(errs)[0];
      document.getElementById(`f-${first}`)?.focus();
      return;
    }
    setBusy(true);
    setServerError(null);
    api.createTask(body).then(
      (task) => {
        saveMemory(localStorage, user.username, remember(memory, body, { code: values.code_commit_id.trim(), env: values.env_commit_id.trim() }));
        navigate(`/tasks/${task.id}`);
      },
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
  const commit = { className: "mono", placeholder: "a branch, a tag or a full commit id", spellCheck: false, autoComplete: "off" };
  const note = (k: CommitKey) => {
    const want = refOf(values, k);
    const res = want ? resolutions[want.key] : undefined;
    if (!want || !res) return null;
    return (
      <span className={`ref-note${res.state === "error" ? " ref-note-error" : ""}`} data-testid={`resolved-${k}`} role={res.state === "error" ? "alert" : "status"}>
        {res.state === "loading" && `Looking up ${want.ref}…`}
        {res.state === "ok" && (
          <>
            {res.r.kind === "branch" ? "Branch" : res.r.kind === "tag" ? "Tag" : "Ref"} <code>{want.ref}</code> is commit{" "}
            <code className="mono" title={res.r.commit}>
              {res.r.commit.slice(0, 12)}
            </code>{" "}
            now: the task is pinned to this commit.
          </>
        )}
        {res.state === "error" && humanError(res.error).sentence}
      </span>
    );
  };
  const refsOf = (repo: string) => memory.refs[repo.trim()] ?? [];

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
            {field("code_repo_url", "Code repository URL", text("code_repo_url", { placeholder: "https://… or git@host:path", spellCheck: false, list: "dl-code-repos" }))}
            {field(
              "code_commit_id",
              "Code commit",
              <>
                {text("code_commit_id", { ...commit, list: "dl-code-refs" })}
                {note("code_commit_id")}
              </>,
              "A branch or tag is looked up here; the task is pinned to the commit.",
            )}
          </div>
          <div className="form-row">
            {field("env_repo_url", "Environment repository URL", text("env_repo_url", { placeholder: "https://… or git@host:path", spellCheck: false, list: "dl-env-repos" }))}
            {field(
              "env_commit_id",
              "Environment commit",
              <>
                {text("env_commit_id", { ...commit, list: "dl-env-refs" })}
                {note("env_commit_id")}
              </>,
            )}
          </div>
          {field("dockerfile_path", "Dockerfile path", text("dockerfile_path", { className: "mono", spellCheck: false, list: "dl-dockerfiles" }), "Relative to the environment repository; no '..'.")}
          <Datalist id="dl-code-repos" options={memory.code_repos} />
          <Datalist id="dl-env-repos" options={memory.env_repos} />
          <Datalist id="dl-dockerfiles" options={memory.dockerfiles} />
          <Datalist id="dl-code-refs" options={refsOf(values.code_repo_url)} />
          <Datalist id="dl-env-refs" options={refsOf(values.env_repo_url)} />
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
        {(attach.projects || attach.research) && (
          <fieldset>
            <legend>Attach (optional)</legend>
            {attach.projects && <WorkItemPicker value={values.work_item_id} onChange={(id) => set("work_item_id", id)} />}
            {attach.research && (
              <>
                <ExperimentPicker value={values.experiment_id} onChange={(id) => set("experiment_id", id)} />
                {values.experiment_id && field("run_params", "Run parameters (optional)", area("run_params", 2, "lr=0.01, one per line"), "Shown and compared on the experiment's runs.")}
              </>
            )}
          </fieldset>
        )}
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

function Datalist({ id, options }: { id: string; options: string[] }) {
  return (
    <datalist id={id}>
      {options.map((o) => (
        <option key={o} value={o} />
      ))}
    </datalist>
  );
}
