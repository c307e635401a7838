/**
 * Types of the UniDesk HTTP API: named aliases of the shapes generated from the server's OpenAPI
 * document into ./schema.d.ts (regenerate with scripts/gen-api-types.sh; the test command fails
 * when it is stale). Timestamps are ISO 8601 UTC strings. Only what the document leaves
 * free-form (a node's usage and GPUs, /api/usage, a task's pinned inputs) is written by hand here.
 */
import type { components } from "./schema";

type Schemas = components["schemas"];

/**
 * A request body as a client writes it: the fields the server fills with a default (listed in K)
 * may be left out. openapi-typescript marks defaulted fields as always present, which is true of
 * the server's answers but not of what a client must send.
 */
export type WithDefaults<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

export type Role = Schemas["User"]["role"];
export type User = Schemas["User"];
/** GET /api/auth/me and the login answer: the user and the admin-only actions the access policy allows them, by kind ("node": ["drain", …]). */
export type Me = Schemas["Me"];
export type ApiToken = Schemas["ApiToken"];
/** `server_local`: the server's own local agent's token; revoking it takes this machine's node offline. */
export type NodeToken = Schemas["NodeToken"];
export type ApiTokenCreated = Schemas["ApiTokenCreated"];
export type NodeTokenCreated = Schemas["NodeTokenCreated"];

export type TaskState = Schemas["Task"]["state"];
export const TASK_STATES = [
  "pending",
  "assigned",
  "preparing",
  "running",
  "cancelling",
  "succeeded",
  "failed",
  "cancelled",
] as const satisfies readonly TaskState[];
export const FINAL_TASK_STATES: readonly TaskState[] = ["succeeded", "failed", "cancelled"];

export type AttemptState = Schemas["Attempt"]["state"];
export const FINAL_ATTEMPT_STATES: readonly AttemptState[] = ["succeeded", "failed", "cancelled", "lost"];

/** What a task got (GET); `ResourceRequest` is what a submit asks for. */
export type Resources = Schemas["Resources"];
export type ResourceRequest = Schemas["ResourceRequest"];

export type TaskCreate = WithDefaults<
  Schemas["TaskCreate"],
  "name" | "timeout_s" | "priority" | "max_attempts" | "retry_on_failure" | "workspace"
>;
/** A branch or tag resolved to the full commit id it names now (POST /api/git/resolve). */
export type RefResolved = Schemas["RefResolved"];
export type ResolveRequest = Schemas["ResolveRequest"];
/** Secrets the node uses to fetch code and build the env (never put in the container). */
export type TaskCredentials = Schemas["Credentials"];
/** A secret's metadata; no route ever returns its value. `ref` is how a task names it. */
export type Secret = Schemas["Secret"];
/** An artifact (id or name) a task reads, mounted read-only at `path` (default /inputs/<last part of the name>). */
export type TaskInput = Schemas["TaskInput"];

/** What the server pinned at submit, in `Task.extra.inputs` (free-form in the API document). */
export interface PinnedInput {
  artifact_id: string;
  name: string;
  path: string;
  sha256: string;
  size: number;
}

export type Attempt = Schemas["Attempt"];
export type TaskLink = Schemas["TaskLink"];
/** A task; `pending_reason` says why a pending one waits, `allowed_actions` what the caller may do beyond reading. */
export type Task = Schemas["Task"];
/** A page of GET /api/tasks: `total` only when asked for (total=true). */
export type TaskPage = Schemas["TaskPage"];


export interface Items<T> {
  items: T[];
}

export type LogLine = Schemas["LogLine"];
export type LogStream = LogLine["stream"];
export type LogPage = Schemas["LogPage"];

/** One GPU a node's agent reported (free-form in the API document). */
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

/** A node's last heartbeat figures (free-form in the API document; empty before the first one). */
export interface NodeUsage {
  cpu_percent?: number | null;
  memory_used_mb?: number | null;
  memory_total_mb?: number | null;
  disk_free_mb?: number | null;
  gpus?: GpuUsage[];
  caches?: NodeCache[];
}

/** A node; `usage` and `gpus` are the agent's own reports, typed here because the document leaves them free-form. */
export type Node = Omit<Schemas["Node"], "usage" | "gpus"> & { usage: NodeUsage; gpus: GpuInfo[] };

export type NodeSample = Omit<Schemas["Sample"], "gpus"> & { gpus: GpuUsage[] };

export type UnideskEvent = Schemas["EventOut"];
export type EventPage = Schemas["EventPage"];
export type Stats = Schemas["Stats"];
export type Health = Schemas["Health"];

export type Artifact = Schemas["Artifact"];
export type ArtifactState = Artifact["state"];
export type ArtifactCreate = WithDefaults<Schemas["ArtifactCreate"], "content_type">;
export type PartUrl = Schemas["PartUrl"];
/** How to put the bytes: one PUT url (local: resumable with Content-Range chunks) or S3 multipart parts. */
export type UploadPlan = Schemas["UploadPlan"];
export type ArtifactUpload = Schemas["ArtifactUpload"];
export type ArtifactPage = Schemas["ArtifactPage"];
/** `expires_at` in epoch seconds. */
export type DownloadUrl = Schemas["DownloadUrl"];
export type MaintenanceCreate = WithDefaults<Schemas["MaintenanceCreate"], "timeout_s">;
export type CacheClearRequest = Schemas["CacheClearRequest"];

/** RFC 9457 problem details as the server sends them (plus any extra members). */
export type Problem = Partial<Schemas["Problem"]> & { [extra: string]: unknown };

/** GET /api/usage: resource-hours per user and per account per UTC day, and fair-share keys (lowest runs next); free-form in the API document. */
export interface UsageDay {
  day: string;
  user_id: string | null;
  username: string | null;
  attempts: number;
  cpu_hours: number;
  gpu_hours: number;
  memory_gb_hours: number;
}

export interface AccountUsageDay {
  day: string;
  /** "" is the default account (tasks submitted without one). */
  account: string;
  attempts: number;
  cpu_hours: number;
  gpu_hours: number;
  memory_gb_hours: number;
}

export interface Usage {
  since: string;
  items: UsageDay[];
  fair_share: { user_id: string | null; username: string | null; share_cpu_hours: number }[];
  accounts: AccountUsageDay[];
  account_fair_share: { account: string; share_cpu_hours: number }[];
}
