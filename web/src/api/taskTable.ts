/** The task list as people work with it: the server-side sort a header asks for, page numbers, and the CSV an export writes (times in Beijing). */
import { formatDateTime, toMs } from "../time";
import type { Task } from "./types";

/** Keys the server sorts the list by (GET /api/tasks?sort=key, or -key for descending). */
export const SORT_KEYS = ["name", "state", "priority", "created_at", "started_at", "finished_at"] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export type SortDir = "asc" | "desc";
export const DEFAULT_SORT = "-created_at";

/** The `sort` URL/API value as key and direction (anything unknown: newest first). */
export function parseSort(value: string | null): { key: SortKey; dir: SortDir } {
  const v = value ?? DEFAULT_SORT;
  const key = v.replace(/^-/, "");
  if (!(SORT_KEYS as readonly string[]).includes(key)) return { key: "created_at", dir: "desc" };
  return { key: key as SortKey, dir: v.startsWith("-") ? "desc" : "asc" };
}

/** Clicking a header: the same column flips; another starts where people expect (names A→Z, times and priorities highest first). */
export function nextSort(current: string | null, key: SortKey): string {
  const cur = parseSort(current);
  if (cur.key === key) return cur.dir === "asc" ? `-${key}` : key;
  return key === "name" || key === "state" ? key : `-${key}`;
}

/** Page numbers to offer around `page` of `pages`: the first, the last, two either side, and null for a gap. */
export function pageWindow(page: number, pages: number): (number | null)[] {
  const out: (number | null)[] = [];
  for (let p = 1; p <= pages; p++) {
    if (p === 1 || p === pages || Math.abs(p - page) <= 2) out.push(p);
    else if (out[out.length - 1] !== null) out.push(null);
  }
  return out;
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
