/** Typed client for the UniDesk API: same origin, session cookie, problem+json errors as ApiError. */
import { ENDPOINTS, endpointPath, type EndpointName } from "./endpoints";
import type {
  ApiToken,
  Artifact,
  ArtifactCreate,
  ArtifactPage,
  ArtifactUpload,
  DownloadUrl,
  EventPage,
  Health,
  Items,
  LogPage,
  MaintenanceCreate,
  Node,
  NodeSample,
  NodeToken,
  Problem,
  Secret,
  Stats,
  Usage,
  Task,
  TaskLink,
  TaskCreate,
  RefResolved,
  ResolveRequest,
  TaskPage,
  TaskState,
  ApiTokenCreated,
  NodeTokenCreated,
  UnideskEvent,
  User,
  Me,
} from "./types";

/** An API call that failed: status 0 means the server could not be reached at all. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  constructor(status: number, message: string, problem: Problem | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

type Query = Record<string, string | number | boolean | null | undefined | (string | number)[]>;

export function buildQuery(query: Query | undefined): string {
  if (!query) return "";
  const sp = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => sp.append(key, String(v)));
    else sp.append(key, String(value));
  }
  const s = sp.toString();
  return s ? `?${s}` : "";
}

/** Turns a failed response into an ApiError carrying the server's problem detail. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let problem: Problem | null;
  const text = await res.text().catch(() => "");
  try {
    problem = text ? (JSON.parse(text) as Problem) : null;
  } catch {
    problem = null;
  }
  const detail =
    (problem && (typeof problem.detail === "string" && problem.detail ? problem.detail : problem.title)) ||
    (text && text.length < 300 ? text : "") ||
    res.statusText ||
    "request failed";
  return new ApiError(res.status, `${res.status}: ${detail}`, problem);
}

let unauthorizedHandler: (() => void) | null = null;

/** Called whenever the server answers 401 outside the login call (session expired or revoked). */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorizedHandler = handler;
}

interface CallOptions {
  params?: Record<string, string | number>;
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
}

export async function call<T>(name: EndpointName, opts: CallOptions = {}): Promise<T> {
  const [method] = ENDPOINTS[name];
  const url = endpointPath(name, opts.params) + buildQuery(opts.query);
  const init: RequestInit = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal: opts.signal,
  };
  if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "The server could not be reached.");
  }
  if (!res.ok) {
    const err = await errorFromResponse(res);
    if (res.status === 401 && name !== "login" && unauthorizedHandler) unauthorizedHandler();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get("content-type") ?? "";
  if (!type.includes("json")) return (await res.text()) as T;
  return (await res.json()) as T;
}

export interface TaskQuery {
  state?: TaskState[];
  owner?: string;
  q?: string;
  node?: string;
  limit?: number;
  cursor?: string | null;
  /** Also count every matching task (Page.total). */
  total?: boolean;
  /** Server-side order: a key, "-" first for descending (default "-created_at"). */
  sort?: string;
  /** Rows to skip (page jumps); cursors page on from there. */
  offset?: number;
}

export interface FileQuery {
  q?: string;
  /** Names starting with this (a folder: "runs/a/"). */
  prefix?: string;
  /** "/": one folder level (files directly in `prefix`, and its subfolders in `folders`). */
  delimiter?: "/";
  state?: "uploading" | "ready";
  /** "me" or a user id. */
  owner?: string;
  task_id?: string;
  limit?: number;
  cursor?: string | null;
}

export const api = {
  login: (username: string, password: string) =>
    call<{ user: Me }>("login", { body: { username, password } }),
  logout: () => call<void>("logout"),
  me: (signal?: AbortSignal) => call<Me>("me", { signal }),

  users: () => call<Items<User>>("users"),
  createUser: (body: { username: string; password: string; role: User["role"] }) => call<User>("userCreate", { body }),
  updateUser: (id: string, body: { role?: User["role"]; disabled?: boolean; password?: string }) =>
    call<User>("userUpdate", { params: { id }, body }),

  tokens: () => call<Items<ApiToken>>("tokens"),
  createToken: (name: string, expires_in_days?: number) =>
    call<ApiTokenCreated>("tokenCreate", { body: expires_in_days ? { name, expires_in_days } : { name } }),
  revokeToken: (id: string) => call<void>("tokenRevoke", { params: { id } }),
  nodeTokens: () => call<Items<NodeToken>>("nodeTokens"),
  createNodeToken: (name: string) => call<NodeTokenCreated>("nodeTokenCreate", { body: { name } }),
  revokeNodeToken: (id: string) => call<void>("nodeTokenRevoke", { params: { id } }),

  tasks: (q: TaskQuery, signal?: AbortSignal) =>
    call<TaskPage>("tasks", {
      query: { state: q.state, owner: q.owner, q: q.q, node: q.node, limit: q.limit ?? 50, cursor: q.cursor, total: q.total, sort: q.sort, offset: q.offset || undefined },
      signal,
    }),
  createTask: (body: TaskCreate) => call<Task>("taskCreate", { body }),
  resolveRef: (body: ResolveRequest, signal?: AbortSignal) => call<RefResolved>("gitResolve", { body, signal }),
  task: (id: string, signal?: AbortSignal) => call<Task>("task", { params: { id }, signal }),
  trace: (id: string, signal?: AbortSignal) => call<Items<UnideskEvent>>("taskTrace", { params: { id }, signal }),
  taskLinks: (id: string, signal?: AbortSignal) => call<Items<TaskLink>>("taskLinks", { params: { id }, signal }),
  cancelTask: (id: string) => call<Task>("taskCancel", { params: { id } }),
  retryTask: (id: string) => call<Task>("taskRetry", { params: { id } }),
  logs: (id: string, q: { attempt?: number; after?: number; limit?: number; tail?: number; stream?: "stdout" | "stderr" }, signal?: AbortSignal) =>
    call<LogPage>("taskLogs", { params: { id }, query: q, signal }),

  nodes: (signal?: AbortSignal) => call<Items<Node>>("nodes", { signal }),
  node: (id: string, signal?: AbortSignal) => call<Node>("node", { params: { id }, signal }),
  drain: (id: string) => call<Node>("nodeDrain", { params: { id } }),
  undrain: (id: string) => call<Node>("nodeUndrain", { params: { id } }),
  clearCaches: (id: string) => call<{ node_id: string; request_id: string }>("nodeClearCaches", { params: { id } }),
  deleteNode: (id: string) => call<void>("nodeDelete", { params: { id } }),
  samples: (id: string, since: string, step_s: number, signal?: AbortSignal) =>
    call<Items<NodeSample>>("nodeSamples", { params: { id }, query: { since, step_s }, signal }),

  events: (q: { after?: number; limit?: number; subject_type?: string; subject_id?: string; kind?: string }) =>
    call<EventPage>("events", { query: q }),
  stats: (signal?: AbortSignal) => call<Stats>("stats", { signal }),
  usage: (days: number, signal?: AbortSignal) => call<Usage>("usage", { query: { days }, signal }),

  maintenance: (id: string, body: MaintenanceCreate) => call<Task>("nodeMaintenance", { params: { id }, body }),

  files: (q: FileQuery, signal?: AbortSignal) =>
    call<ArtifactPage>("files", {
      query: {
        q: q.q,
        prefix: q.prefix,
        delimiter: q.delimiter,
        state: q.state,
        owner: q.owner,
        task_id: q.task_id,
        limit: q.limit ?? 50,
        cursor: q.cursor,
      },
      signal,
    }),
  file: (id: string, signal?: AbortSignal) => call<Artifact>("file", { params: { id }, signal }),
  fileByName: (name: string, signal?: AbortSignal) => call<Artifact>("fileByName", { params: { name }, signal }),
  createFile: (body: ArtifactCreate) => call<ArtifactUpload>("fileCreate", { body }),
  resumeFile: (id: string) => call<ArtifactUpload>("fileResume", { params: { id } }),
  completeFile: (id: string, parts: { part_number: number; etag: string }[] = []) =>
    call<Artifact>("fileComplete", { params: { id }, body: { parts } }),
  fileDownloadUrl: (id: string) => call<DownloadUrl>("fileDownload", { params: { id } }),
  deleteFile: (id: string) => call<void>("fileDelete", { params: { id } }),

  secrets: () => call<Items<Secret>>("secrets"),
  /** Create or replace; the value goes to the server and never comes back. */
  putSecret: (scope: Secret["scope"], name: string, value: string, project = "") =>
    scope === "project"
      ? call<Secret>("secretPutProject", { params: { project, name }, body: { value } })
      : call<Secret>(scope === "global" ? "secretPutGlobal" : "secretPutUser", { params: { name }, body: { value } }),
  deleteSecret: (id: string) => call<void>("secretDelete", { params: { id } }),
};

/** GET /health: a 503 still carries the health body (status "degraded"); unreachable is reported as such. */
/** How long /health may take before the server counts as not answering (a hung server keeps its event stream open). */
export const HEALTH_TIMEOUT_MS = 8_000;

/** A /health answer; `unreachable` when the server did not answer at all (down, or hung). */
export type HealthAnswer = Health & { unreachable?: true };

export async function fetchHealth(signal?: AbortSignal): Promise<HealthAnswer> {
  let res: Response;
  const timeout = AbortSignal.timeout(HEALTH_TIMEOUT_MS);
  try {
    res = await fetch(endpointPath("health"), {
      credentials: "same-origin",
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      cache: "no-store",
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    const reason = timeout.aborted ? `the server does not answer (no reply within ${HEALTH_TIMEOUT_MS / 1000} s)` : "the server cannot be reached";
    return { status: "degraded", reasons: [reason], version: "", commit: "", checks: {}, unreachable: true };
  }
  try {
    const body = (await res.json()) as Health;
    if (!res.ok && body.status !== "degraded") body.status = "degraded";
    return body;
  } catch {
    return { status: "degraded", reasons: [`/health answered ${res.status} without a health body`], version: "", commit: "", checks: {} };
  }
}

/** Message to show a person for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
