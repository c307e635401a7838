/** Types of the UniDesk HTTP API (see /schema/openapi.json); timestamps are ISO 8601 UTC strings. */

export type Role = "admin" | "member";

export interface User {
  id: string;
  username: string;
  role: Role;
  created_at: string;
  disabled: boolean;
}

/** GET /api/auth/me and the login answer: the user and the admin-only actions the access policy allows them, by kind ("node": ["drain", …]). */
export type Me = User & { allowed_actions: Record<string, string[]> };

export interface ApiToken {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface NodeToken {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  /** The server's own local agent's token: revoking it takes this machine's node offline. */
  server_local?: boolean;
}

export interface TokenCreated<T> {
  token: T;
  secret: string;
}

export const TASK_STATES = [
  "pending",
  "assigned",
  "preparing",
  "running",
  "cancelling",
  "succeeded",
  "failed",
  "cancelled",
] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const FINAL_TASK_STATES: readonly TaskState[] = ["succeeded", "failed", "cancelled"];

export type AttemptState = "assigned" | "preparing" | "running" | "succeeded" | "failed" | "cancelled" | "lost";
export const FINAL_ATTEMPT_STATES: readonly AttemptState[] = ["succeeded", "failed", "cancelled", "lost"];

export interface Resources {
  cpus: number;
  memory_mb: number;
  gpus: number;
  labels: Record<string, string>;
  gpu_model?: string | null;
  gpu_memory_mb?: number | null;
}

export interface TaskCreate {
  name?: string;
  code_repo_url: string;
  code_commit_id: string;
  env_repo_url: string;
  env_commit_id: string;
  dockerfile_path: string;
  command: string | string[];
  env?: Record<string, string>;
  resources?: Partial<Resources>;
  timeout_s?: number;
  priority?: number;
  max_attempts?: number;
  retry_on_failure?: boolean;
  inputs?: TaskInput[];
  outputs?: string[];
  /** Environment variable → secret reference (NAME, global/NAME, project:<id>/NAME). */
  secrets?: Record<string, string>;
  credentials?: TaskCredentials;
}

/** Secrets the node uses to fetch code and build the env (never put in the container). */
export interface TaskCredentials {
  code_repo?: string;
  env_repo?: string;
  known_hosts?: string;
  registries?: Record<string, string>;
}

/** A secret's metadata; no route ever returns its value. */
export interface Secret {
  id: string;
  scope: "user" | "project" | "global";
  name: string;
  project: string | null;
  owner_id: string | null;
  /** How a task names it. */
  ref: string;
  created_by: string;
  updated_by: string;
  created_at: string;
  updated_at: string;
}

/** An artifact (id or name) a task reads, mounted read-only at `path` (default /inputs/<last part of the name>). */
export interface TaskInput {
  artifact: string;
  path?: string | null;
}

/** What the server pinned at submit, in `Task.extra.inputs`. */
export interface PinnedInput {
  artifact_id: string;
  name: string;
  path: string;
  sha256: string;
  size: number;
}

export interface Attempt {
  attempt_no: number;
  node_id: string | null;
  node_name: string | null;
  state: AttemptState;
  stage: string | null;
  reason: string | null;
  message: string | null;
  exit_code: number | null;
  gpu_indices: number[];
  assigned_at: string | null;
  acked_at: string | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface Task {
  id: string;
  name: string | null;
  state: TaskState;
  reason: string | null;
  message: string | null;
  unschedulable_reason: string | null;
  owner_id: string;
  owner: string | null;
  code_repo_url: string;
  code_commit_id: string;
  env_repo_url: string;
  env_commit_id: string;
  dockerfile_path: string;
  command: string[];
  env: Record<string, string>;
  resources: Resources;
  timeout_s: number;
  priority: number;
  max_attempts: number;
  retry_on_failure: boolean;
  attempt_count: number;
  /** Why a pending task waits (no_node_fits, waiting_for_resources, over_quota, held_for_reservation, retry_backoff). */
  pending_reason: string | null;
  pending_detail: Record<string, unknown> | null;
  /** Waiting tasks ranked ahead of this one (waiting_for_resources / held_for_reservation only). */
  ranked_ahead: number | null;
  /** A retry in backoff starts no earlier than this. */
  not_before: string | null;
  expected_duration_s: number | null;
  avoid_node_ids: string[];
  /** Server-side extras: `inputs` (PinnedInput[]), `outputs` (patterns), `kind` ("host.ssh"), plugin fields. */
  extra: Record<string, unknown>;
  /** Environment variable → the secret reference it was given (names only, never values). */
  secrets?: Record<string, string>;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  /** When the latest attempt started running (null while none has started). */
  started_at?: string | null;
  /** The node of the latest attempt (null before any). */
  node_name?: string | null;
  attempts?: Attempt[];
  /** What the caller may do beyond reading (cancel, retry, delete, change), from the server's access policy. */
  allowed_actions?: string[];
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
  /** The page before this one (GET /api/tasks; null on the first page). */
  prev_cursor?: string | null;
  /** How many match on every page (GET /api/tasks with total=true). */
  total?: number | null;
}

export interface Items<T> {
  items: T[];
}

export type LogStream = "stdout" | "stderr" | "build" | "system";

export interface LogLine {
  seq: number;
  stream: LogStream;
  data: string;
  ts: string;
}

export interface LogPage {
  items: LogLine[];
  next_after: number;
  truncated: boolean;
  attempt_no: number | null;
}

export interface GpuInfo {
  index: number;
  model: string;
  memory_mb: number;
  uuid: string;
}

export interface GpuUsage {
  index: number;
  util_percent: number | null;
  memory_used_mb: number | null;
}

/** One node cache as its agent's heartbeat reports it: git repositories, input files, env images. */
export interface NodeCache {
  name: "git" | "inputs" | "images" | string;
  bytes: number;
  cap_bytes: number;
  entries: number;
}

export interface NodeUsage {
  cpu_percent: number | null;
  memory_used_mb: number | null;
  memory_total_mb: number | null;
  disk_free_mb: number | null;
  gpus: GpuUsage[];
  caches?: NodeCache[];
}

export interface Node {
  id: string;
  /** What the caller may do to this node (drain, undrain, delete, maintenance, clear_caches), from the server's access policy. */
  allowed_actions?: string[];
  name: string;
  state: "online" | "offline";
  draining: boolean;
  unhealthy_reason: string | null;
  hostname: string | null;
  os: string | null;
  agent_version: string | null;
  cpus: number;
  memory_mb: number;
  gpus: GpuInfo[];
  labels: Record<string, string>;
  runtimes: string[];
  last_heartbeat_at: string | null;
  connected_at: string | null;
  created_at: string;
  usage: NodeUsage | null;
  running_attempts: { task_id: string; attempt_no: number }[];
  free: { cpus: number; memory_mb: number; gpus: number } | null;
}

export interface NodeSample {
  ts: string;
  cpu_percent: number | null;
  memory_used_mb: number | null;
  memory_total_mb: number | null;
  gpus: GpuUsage[];
}

export interface UnideskEvent {
  id: number;
  ts: string;
  kind: string;
  subject_type: string;
  subject_id: string;
  actor: string | null;
  payload: Record<string, unknown>;
}

export interface EventPage {
  items: UnideskEvent[];
  last_id: number | null;
}

export interface Stats {
  nodes: { online: number; offline: number; draining: number; unhealthy: number };
  tasks: Partial<Record<TaskState, number>>;
  finished_per_hour: { hour: string; succeeded: number; failed: number }[];
  recent_failures: Task[];
}

export interface Health {
  status: "ok" | "degraded";
  reasons: string[];
  version: string;
  commit: string | null;
  checks: Record<string, string>;
}

export type ArtifactState = "uploading" | "ready";

export interface Artifact {
  id: string;
  name: string;
  state: ArtifactState;
  size: number;
  sha256: string;
  content_type: string;
  backend: string;
  owner_id: string | null;
  owner: string | null;
  task_id: string | null;
  attempt_no: number | null;
  project: string | null;
  labels: Record<string, string>;
  created_at: string;
  ready_at: string | null;
}

export interface ArtifactCreate {
  name: string;
  size: number;
  sha256: string;
  content_type?: string;
  project?: string | null;
  labels?: Record<string, string>;
}

export interface PartUrl {
  part_number: number;
  url: string;
}

/** How to put the bytes: one PUT url (local: resumable with Content-Range chunks) or S3 multipart parts. */
export interface UploadPlan {
  method: string;
  url: string | null;
  headers: Record<string, string>;
  expires_at: number;
  upload_id: string | null;
  part_size: number | null;
  parts: PartUrl[];
  done_parts: number[];
  offset: number;
}

export interface ArtifactUpload {
  artifact: Artifact;
  upload: UploadPlan;
}

export interface DownloadUrl {
  url: string;
  /** Epoch seconds. */
  expires_at: number;
  name: string;
  size: number;
  sha256: string;
}

export interface MaintenanceCreate {
  op: "probe" | "exec";
  command?: string | null;
  timeout_s?: number;
}

/** RFC 9457 problem details as the server sends them. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  [extra: string]: unknown;
}

/** GET /api/usage: resource-hours per user per UTC day, and fair-share keys (lowest runs next). */
export interface UsageDay {
  day: string;
  user_id: string | null;
  username: string | null;
  attempts: number;
  cpu_hours: number;
  gpu_hours: number;
  memory_gb_hours: number;
}

export interface Usage {
  since: string;
  items: UsageDay[];
  fair_share: { user_id: string | null; username: string | null; share_cpu_hours: number }[];
}
