/** How long a task has run (from its latest attempt's start) or waited (from creation, before any start). */
import { elapsedMs, formatDuration } from "../time";
import type { Task } from "./types";

export interface TaskTiming {
  /** "Duration" once an attempt started; "Waiting" (still pending) or "Waited" (ended without starting). */
  label: "Duration" | "Waiting" | "Waited";
  /** Ready-to-show text: "1m 05s" for a duration, "waiting 3m 02s" / "waited 3m 02s" otherwise. */
  text: string;
  running: boolean;
}

export function taskTiming(t: Pick<Task, "started_at" | "created_at" | "finished_at">, now: number): TaskTiming {
  if (t.started_at) {
    return { label: "Duration", text: formatDuration(elapsedMs(t.started_at, t.finished_at, now)), running: !t.finished_at };
  }
  if (t.finished_at) return { label: "Waited", text: `waited ${formatDuration(elapsedMs(t.created_at, t.finished_at, now))}`, running: false };
  return { label: "Waiting", text: `waiting ${formatDuration(elapsedMs(t.created_at, null, now))}`, running: false };
}
