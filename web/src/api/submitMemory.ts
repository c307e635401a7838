/** What the submit form remembers per user (localStorage): recent repositories, Dockerfile paths and refs. */
import type { TaskCreate } from "./types";

export interface SubmitMemory {
  code_repos: string[];
  env_repos: string[];
  dockerfiles: string[];
  /** Per repository URL: the branches, tags and commits last used with it, newest first. */
  refs: Record<string, string[]>;
}

/** How many of each kind are kept. */
export const KEEP = 8;
const EMPTY: SubmitMemory = { code_repos: [], env_repos: [], dockerfiles: [], refs: {} };

export function memoryKey(username: string): string {
  return `unidesk.submit.v1.${username}`;
}

function strings(x: unknown): string[] {
  return Array.isArray(x) ? x.filter((s): s is string => typeof s === "string").slice(0, KEEP) : [];
}

/** The user's memory; an unreadable or foreign entry reads as empty. */
export function loadMemory(storage: Pick<Storage, "getItem">, username: string): SubmitMemory {
  try {
    const raw = JSON.parse(storage.getItem(memoryKey(username)) ?? "null") as Partial<SubmitMemory> | null;
    if (!raw || typeof raw !== "object") return EMPTY;
    const refs: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(raw.refs ?? {}).slice(0, 64)) refs[k] = strings(v);
    return { code_repos: strings(raw.code_repos), env_repos: strings(raw.env_repos), dockerfiles: strings(raw.dockerfiles), refs };
  } catch {
    return EMPTY;
  }
}

function front(list: string[], value: string): string[] {
  return value ? [value, ...list.filter((x) => x !== value)].slice(0, KEEP) : list;
}

/** The memory after a submission: what it used moves to the front (`refs` are what the person typed: a branch stays a branch). */
export function remember(mem: SubmitMemory, body: Pick<TaskCreate, "code_repo_url" | "env_repo_url" | "dockerfile_path">, typed: { code: string; env: string }): SubmitMemory {
  const refs = { ...mem.refs };
  refs[body.code_repo_url] = front(refs[body.code_repo_url] ?? [], typed.code);
  refs[body.env_repo_url] = front(refs[body.env_repo_url] ?? [], typed.env);
  // Keep the refs of the repositories still remembered only.
  const repos = new Set([...front(mem.code_repos, body.code_repo_url), ...front(mem.env_repos, body.env_repo_url)]);
  for (const k of Object.keys(refs)) if (!repos.has(k)) delete refs[k];
  return {
    code_repos: front(mem.code_repos, body.code_repo_url),
    env_repos: front(mem.env_repos, body.env_repo_url),
    dockerfiles: front(mem.dockerfiles, body.dockerfile_path),
    refs,
  };
}

export function saveMemory(storage: Pick<Storage, "setItem">, username: string, mem: SubmitMemory): void {
  try {
    storage.setItem(memoryKey(username), JSON.stringify(mem));
  } catch {
    /* storage full or disabled: the form simply offers nothing next time */
  }
}
