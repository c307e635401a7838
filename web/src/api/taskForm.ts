/** Client-side validation of the submit-task form, mirroring the server's TaskCreate rules. */
import { parseInputs, parseOutputs } from "./taskFiles";
import type { Task, TaskCreate } from "./types";

export interface TaskFormValues {
  name: string;
  code_repo_url: string;
  code_commit_id: string;
  env_repo_url: string;
  env_commit_id: string;
  dockerfile_path: string;
  command: string;
  /** "shell": the command string runs via /bin/sh -c; "argv": one argument per line. */
  command_mode: "shell" | "argv";
  env: string;
  cpus: string;
  memory_mb: string;
  gpus: string;
  labels: string;
  timeout_s: string;
  priority: string;
  max_attempts: string;
  retry_on_failure: boolean;
  /** "NAME" or "NAME -> /mount/path" per line. */
  inputs: string;
  /** One path or glob under /workspace/outputs per line. */
  outputs: string;
  /** ENV=secret-reference lines. */
  secrets: string;
  /** Secret references for a private code / env repository and ssh known_hosts. */
  code_credential: string;
  env_credential: string;
  known_hosts: string;
  /** Attach to a work item of the projects plugin (its id), or "". */
  work_item_id: string;
  /** Record as a run of an experiment of the research plugin (its id), or "". */
  experiment_id: string;
  /** The run's parameters, key=value per line (numbers and true/false are read as such). */
  run_params: string;
}

/** Commit ids that branch or tag fields resolved to (POST /api/git/resolve): the body carries these. */
export type ResolvedPins = Partial<Record<"code_commit_id" | "env_commit_id", string>>;

export const EMPTY_TASK_FORM: TaskFormValues = {
  name: "",
  code_repo_url: "",
  code_commit_id: "",
  env_repo_url: "",
  env_commit_id: "",
  dockerfile_path: "Dockerfile",
  command: "",
  command_mode: "shell",
  env: "",
  cpus: "1",
  memory_mb: "512",
  gpus: "0",
  labels: "",
  timeout_s: "3600",
  priority: "0",
  max_attempts: "3",
  retry_on_failure: false,
  inputs: "",
  outputs: "",
  secrets: "",
  code_credential: "",
  env_credential: "",
  known_hosts: "",
  work_item_id: "",
  experiment_id: "",
  run_params: "",
};

export type TaskFormErrors = Partial<Record<keyof TaskFormValues, string>>;

const COMMIT_RE = /^([0-9a-f]{40}|[0-9a-f]{64})$/;
const SCP_LIKE_RE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~-]\S*$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
/** Mirrors the server's SecretRef: NAME, global/NAME or project:<id>/NAME. */
export const SECRET_REF_RE = /^(?:(?:global|project:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})\/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function secretRefError(ref: string): string | null {
  if (!ref) return null;
  return SECRET_REF_RE.test(ref) ? null : "A secret name, global/NAME or project:<id>/NAME.";
}

/** Mirrors the server's check_repo_url; file:// is accepted here and left to the server's allow_file_urls setting. */
export function repoUrlError(url: string): string | null {
  if (!url) return "Required.";
  if (url !== url.trim() || /[\s\0]/.test(url)) return "No spaces or control characters.";
  if (url.startsWith("-")) return "Must not start with '-'.";
  if (url.split("/", 1)[0].includes("::")) return "Transport helpers like 'ext::' are not allowed.";
  if (SCP_LIKE_RE.test(url)) return null;
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/]*)(.*)$/i.exec(url);
  if (!m) return "Use an https://, ssh:// or git@host:path URL.";
  const scheme = m[1].toLowerCase();
  if (scheme === "file") return m[2] === "" && m[3].startsWith("/") ? null : "A file URL needs an absolute path (file:///…).";
  if (scheme !== "https" && scheme !== "ssh") return `Scheme '${scheme}' is not allowed; use https or ssh.`;
  const host = m[2].replace(/^[^@]*@/, "").replace(/:\d*$/, "");
  if (!host) return "The URL has no host.";
  return null;
}

/** A name git could take as a branch or tag (the server checks it again). */
// eslint-disable-next-line no-control-regex -- git refuses control characters in ref names; so does this
export const REF_RE = /^(?![-/.])(?!.*(?:\.\.|\/\/|@\{))[^\s~^:?*[\\\x00-\x1f\x7f]{1,255}(?<![/.]|\.lock)$/;

export function isCommitId(value: string): boolean {
  return COMMIT_RE.test(value);
}

/** A full commit id, or a branch/tag that has been resolved to one (`pinned`). */
export function commitError(commit: string, pinned?: string): string | null {
  if (!commit) return "Required.";
  if (COMMIT_RE.test(commit.toLowerCase())) return null;
  if (!REF_RE.test(commit)) return "A full commit id (40 or 64 hex characters), or a branch or tag name.";
  return pinned ? null : "A branch or tag: it is looked up when you leave the field, and the task is pinned to the commit it names.";
}

/** Mirrors check_dockerfile_path: relative POSIX path inside the env repository, no '..'. */
export function dockerfilePathError(path: string): string | null {
  if (!path) return "Required.";
  if (path.includes("\0") || path.includes("\\")) return "Use a relative POSIX path (forward slashes).";
  if (path.startsWith("/") || path.startsWith("~")) return "Must be relative to the environment repository.";
  if (path.split("/").some((seg) => seg === "..")) return "'..' is not allowed.";
  if (path.length > 1024) return "At most 1024 characters.";
  return null;
}

/** Parses KEY=VALUE lines (blank lines and # comments skipped). */
export function parsePairs(text: string, keyRe: RegExp, what: string): { value: Record<string, string>; error: string | null } {
  const value: Record<string, string> = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) return { value, error: `Line ${i + 1}: expected KEY=VALUE.` };
    const key = line.slice(0, eq).trim();
    if (!keyRe.test(key)) return { value, error: `Line ${i + 1}: invalid ${what} name '${key.slice(0, 40)}'.` };
    if (key in value) return { value, error: `Line ${i + 1}: '${key}' appears twice.` };
    value[key] = line.slice(eq + 1).trim();
  }
  return { value, error: null };
}

function intIn(text: string, min: number, max: number): number | null {
  if (!/^-?\d+$/.test(text.trim())) return null;
  const n = Number(text);
  return n >= min && n <= max ? n : null;
}

/** Validates the form; returns the request body when valid, else per-field messages. */
export function buildTaskCreate(v: TaskFormValues, pins: ResolvedPins = {}): { body: TaskCreate | null; errors: TaskFormErrors } {
  const errors: TaskFormErrors = {};
  const pinOf = (k: "code_commit_id" | "env_commit_id") => {
    const raw = v[k].trim();
    return COMMIT_RE.test(raw.toLowerCase()) ? raw.toLowerCase() : (pins[k] ?? "");
  };
  const codeCommit = pinOf("code_commit_id");
  const envCommit = pinOf("env_commit_id");
  const set = (k: keyof TaskFormValues, e: string | null) => {
    if (e) errors[k] = e;
  };
  if (v.name.length > 200) errors.name = "At most 200 characters.";
  set("code_repo_url", repoUrlError(v.code_repo_url.trim()));
  set("code_commit_id", commitError(v.code_commit_id.trim(), pins.code_commit_id));
  set("env_repo_url", repoUrlError(v.env_repo_url.trim()));
  set("env_commit_id", commitError(v.env_commit_id.trim(), pins.env_commit_id));
  set("dockerfile_path", dockerfilePathError(v.dockerfile_path.trim()));

  let command: string | string[] = v.command;
  if (v.command_mode === "argv") {
    command = v.command.split("\n").filter((a) => a.length > 0);
    if (command.length === 0) errors.command = "Give at least one argument.";
    else if (command.length > 1024) errors.command = "At most 1024 arguments.";
  } else if (!v.command.trim()) errors.command = "Required.";
  else if (v.command.length > 65536) errors.command = "At most 65536 characters.";

  const env = parsePairs(v.env, ENV_NAME_RE, "variable");
  if (env.error) errors.env = env.error;
  const labels = parsePairs(v.labels, LABEL_KEY_RE, "label");
  if (labels.error) errors.labels = labels.error;
  const inputs = parseInputs(v.inputs);
  if (inputs.error) errors.inputs = inputs.error;
  const outputs = parseOutputs(v.outputs);
  if (outputs.error) errors.outputs = outputs.error;
  const secrets = parsePairs(v.secrets, ENV_NAME_RE, "variable");
  if (secrets.error) errors.secrets = secrets.error;
  const badRef = Object.entries(secrets.value).find(([, ref]) => !SECRET_REF_RE.test(ref));
  if (!secrets.error && badRef) errors.secrets = `${badRef[0]}: ${secretRefError(badRef[1]) ?? "a secret reference is required."}`;
  const twice = Object.keys(secrets.value).find((k) => k in env.value);
  if (!errors.secrets && twice) errors.secrets = `${twice} is also an environment variable; name each variable once.`;
  set("code_credential", secretRefError(v.code_credential.trim()));
  set("env_credential", secretRefError(v.env_credential.trim()));
  set("known_hosts", secretRefError(v.known_hosts.trim()));

  const params = parsePairs(v.run_params, /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, "parameter");
  if (params.error) errors.run_params = params.error;
  if (v.run_params.trim() && !v.experiment_id) errors.run_params = "Choose an experiment for these parameters.";

  const cpus = Number(v.cpus);
  if (!v.cpus.trim() || !Number.isFinite(cpus) || cpus <= 0 || cpus > 1024) errors.cpus = "A number above 0, at most 1024.";
  const memory = intIn(v.memory_mb, 16, 4 * 1024 * 1024);
  if (memory === null) errors.memory_mb = "Whole MiB, 16 to 4194304.";
  const gpus = intIn(v.gpus, 0, 64);
  if (gpus === null) errors.gpus = "Whole number, 0 to 64.";
  const timeout = intIn(v.timeout_s, 1, 30 * 24 * 3600);
  if (timeout === null) errors.timeout_s = "Seconds, 1 to 2592000 (30 days).";
  const priority = intIn(v.priority, -1000, 1000);
  if (priority === null) errors.priority = "Whole number, -1000 to 1000.";
  const maxAttempts = intIn(v.max_attempts, 1, 20);
  if (maxAttempts === null) errors.max_attempts = "Whole number, 1 to 20.";

  if (Object.keys(errors).length > 0) return { body: null, errors };
  const body: TaskCreate = {
    code_repo_url: v.code_repo_url.trim(),
    code_commit_id: codeCommit,
    env_repo_url: v.env_repo_url.trim(),
    env_commit_id: envCommit,
    dockerfile_path: v.dockerfile_path.trim(),
    command,
    env: env.value,
    resources: { cpus, memory_mb: memory!, gpus: gpus!, labels: labels.value },
    timeout_s: timeout!,
    priority: priority!,
    max_attempts: maxAttempts!,
    retry_on_failure: v.retry_on_failure,
  };
  if (v.name.trim()) body.name = v.name.trim();
  if (inputs.value.length) body.inputs = inputs.value;
  if (outputs.value.length) body.outputs = outputs.value;
  if (Object.keys(secrets.value).length) body.secrets = secrets.value;
  const credentials: NonNullable<TaskCreate["credentials"]> = {};
  if (v.code_credential.trim()) credentials.code_repo = v.code_credential.trim();
  if (v.env_credential.trim()) credentials.env_repo = v.env_credential.trim();
  if (v.known_hosts.trim()) credentials.known_hosts = v.known_hosts.trim();
  if (Object.keys(credentials).length) body.credentials = credentials;
  const extensions: Record<string, Record<string, unknown>> = {};
  if (v.work_item_id) extensions.projects = { work_item_id: v.work_item_id };
  if (v.experiment_id) extensions.research = { experiment_id: v.experiment_id, params: Object.fromEntries(Object.entries(params.value).map(([k, x]) => [k, paramValue(x)])) };
  if (Object.keys(extensions).length) body.extensions = extensions;
  return { body, errors };
}

/** A run parameter as typed: a finite number or true/false when it reads as one, else the text. */
export function paramValue(text: string): string | number | boolean {
  if (text === "true" || text === "false") return text === "true";
  const n = Number(text);
  return text.trim() !== "" && Number.isFinite(n) ? n : text;
}

/** The form filled from an existing task ("Edit & resubmit", "Clone"): pins, command, env, resources, policy,
 * secret names, inputs (by artifact id, at the same mount path), outputs, repository credentials and the
 * work item / experiment it was attached to; all checked again at submit. */
export function formFromTask(t: Task): TaskFormValues {
  const extra = (t.extra ?? {}) as Record<string, unknown>;
  const creds = (extra.credentials ?? {}) as Record<string, { ref?: string } | undefined>;
  const ext = (extra.extensions ?? {}) as { projects?: { work_item_id?: string }; research?: { experiment_id?: string; params?: Record<string, unknown> } };
  const inputs = (Array.isArray(extra.inputs) ? extra.inputs : []) as { artifact_id?: string; path?: string }[];
  const outputs = (Array.isArray(extra.outputs) ? extra.outputs : []) as string[];
  const shell = t.command.length === 3 && (t.command[0] === "/bin/sh" || t.command[0] === "sh") && t.command[1] === "-c";
  const lines = (m: Record<string, string> | undefined) =>
    Object.entries(m ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
  return {
    ...EMPTY_TASK_FORM,
    name: t.name ?? "",
    code_repo_url: t.code_repo_url,
    code_commit_id: t.code_commit_id,
    env_repo_url: t.env_repo_url,
    env_commit_id: t.env_commit_id,
    dockerfile_path: t.dockerfile_path,
    command: shell ? t.command[2] : t.command.join("\n"),
    command_mode: shell ? "shell" : "argv",
    env: lines(t.env),
    cpus: String(t.resources.cpus),
    memory_mb: String(t.resources.memory_mb),
    gpus: String(t.resources.gpus),
    labels: lines(t.resources.labels),
    timeout_s: String(t.timeout_s),
    priority: String(t.priority),
    max_attempts: String(t.max_attempts),
    retry_on_failure: t.retry_on_failure,
    secrets: lines(t.secrets),
    inputs: inputs.filter((i) => i.artifact_id).map((i) => (i.path ? `${i.artifact_id} -> ${i.path}` : `${i.artifact_id}`)).join("\n"),
    outputs: outputs.join("\n"),
    code_credential: creds.code_repo?.ref ?? "",
    env_credential: creds.env_repo?.ref ?? "",
    known_hosts: creds.known_hosts?.ref ?? "",
    work_item_id: ext.projects?.work_item_id ?? "",
    experiment_id: ext.research?.experiment_id ?? "",
    run_params: Object.entries(ext.research?.params ?? {})
      .map(([k, v]) => `${k}=${String(v)}`)
      .join("\n"),
  };
}
