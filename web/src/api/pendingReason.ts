// Why a pending task waits, in one line for the task list and task page.
// Times go through time.ts (Beijing time).
import { formatDateTime } from "../time";
import type { Task } from "./types";

export type PendingReason =
  | "no_node_fits"
  | "waiting_for_resources"
  | "over_quota"
  | "held_for_reservation"
  | "retry_backoff";

const LABELS: Record<PendingReason, string> = {
  no_node_fits: "No node fits",
  waiting_for_resources: "Waiting for resources",
  over_quota: "Over quota",
  held_for_reservation: "Held for a reservation",
  retry_backoff: "Retry backoff",
};

type Pending = Pick<Task, "state" | "pending_reason" | "pending_detail" | "ranked_ahead" | "not_before">;

/** "Waiting for resources · 3 ranked ahead", "Retry backoff until 2026-11-30 22:05:00", … or null. */
export function pendingReasonText(t: Pending): string | null {
  if (t.state !== "pending" || !t.pending_reason) return null;
  const code = t.pending_reason as PendingReason;
  const label = LABELS[code] ?? t.pending_reason;
  const d = (t.pending_detail ?? {}) as Record<string, unknown>;
  const parts: string[] = [];
  if (code === "waiting_for_resources") {
    if (t.ranked_ahead !== null && t.ranked_ahead !== undefined) parts.push(`${t.ranked_ahead} ranked ahead`);
    if (typeof d.reserved_node === "string") parts.push(`node ${d.reserved_node} reserved for it`);
    if (Array.isArray(d.avoiding) && d.avoiding.length) parts.push(`avoiding ${d.avoiding.join(", ")}`);
  } else if (code === "retry_backoff") {
    if (t.not_before) parts.push(`until ${formatDateTime(t.not_before)}`);
  } else if (code === "held_for_reservation") {
    if (typeof d.node === "string") parts.push(`node ${d.node} is reserved for a higher-ranked task`);
  } else if (typeof d.message === "string") {
    parts.push(d.message);
  }
  return parts.length ? `${label} · ${parts.join(" · ")}` : label;
}
