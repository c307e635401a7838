/** The task list as people work with it: sort the page by a column, and the CSV an export writes (times in Beijing). */
import { formatDateTime, toMs } from "../time";
import type { Task } from "./types";

export const SORT_KEYS = ["name", "state", "owner", "created", "duration"] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export type SortDir = "asc" | "desc";

function runMs(t: Task, now: number): number {
  return t.started_at ? (t.finished_at ? toMs(t.finished_at) : now) - toMs(t.started_at) : -1;
}

function keyOf(t: Task, key: SortKey, now: number): string | number {
  switch (key) {
    case "name":
      return (t.name || t.id).toLowerCase();
    case "state":
      return t.state;
    case "owner":
      return (t.owner ?? "").toLowerCase();
    case "created":
      return toMs(t.created_at);
    case "duration":
      return runMs(t, now); // never started sorts below every duration
  }
}

/** A sorted copy (stable: ties keep the server's newest-first order). */
export function sortTasks(tasks: Task[], key: SortKey, dir: SortDir, now: number): Task[] {
  const sign = dir === "asc" ? 1 : -1;
  return tasks
    .map((t, i) => ({ t, i, k: keyOf(t, key, now) }))
    .sort((a, b) => (a.k < b.k ? -sign : a.k > b.k ? sign : a.i - b.i))
    .map((x) => x.t);
}

const COLUMNS: [string, (t: Task) => string | number][] = [
  ["id", (t) => t.id],
  ["name", (t) => t.name ?? ""],
  ["state", (t) => t.state],
  ["reason", (t) => t.reason ?? ""],
  ["owner", (t) => t.owner ?? ""],
  ["node", (t) => t.node_name ?? ""],
  ["code_commit_id", (t) => t.code_commit_id],
  ["env_commit_id", (t) => t.env_commit_id],
  ["cpus", (t) => t.resources.cpus],
  ["memory_mb", (t) => t.resources.memory_mb],
  ["gpus", (t) => t.resources.gpus],
  ["attempts", (t) => t.attempt_count],
  ["created_beijing", (t) => formatDateTime(t.created_at)],
  ["started_beijing", (t) => (t.started_at ? formatDateTime(t.started_at) : "")],
  ["finished_beijing", (t) => (t.finished_at ? formatDateTime(t.finished_at) : "")],
  ["run_seconds", (t) => (t.started_at && t.finished_at ? Math.round((toMs(t.finished_at) - toMs(t.started_at)) / 1000) : "")],
];

function cell(v: string | number): string {
  const s = String(v);
  // Quote when needed; a leading = + - @ would run as a formula in a spreadsheet.
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) || safe !== s ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** RFC 4180 CSV with a header row; times as Beijing wall-clock ("2026-11-27 18:30:05"). */
export function tasksCsv(tasks: Task[]): string {
  const lines = [COLUMNS.map(([h]) => h).join(",")];
  for (const t of tasks) lines.push(COLUMNS.map(([, f]) => cell(f(t))).join(","));
  return lines.join("\r\n") + "\r\n";
}
