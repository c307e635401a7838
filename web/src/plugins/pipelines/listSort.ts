/** Sorting one page of the pipeline list by a column (stable: ties keep the server's newest-first order). */
import { toMs } from "../../time";
import type { PipelineSummary } from "./types";

export const PIPELINE_SORT_KEYS = ["name", "state", "owner", "created"] as const;
export type PipelineSortKey = (typeof PIPELINE_SORT_KEYS)[number];

function keyOf(p: PipelineSummary, key: PipelineSortKey): string | number {
  switch (key) {
    case "name":
      return (p.name || p.id).toLowerCase();
    case "state":
      return p.state;
    case "owner":
      return (p.owner ?? "").toLowerCase();
    case "created":
      return toMs(p.created_at);
  }
}

export function sortPipelines(items: PipelineSummary[], key: PipelineSortKey, dir: "asc" | "desc"): PipelineSummary[] {
  const sign = dir === "asc" ? 1 : -1;
  return items
    .map((p, i) => ({ p, i, k: keyOf(p, key) }))
    .sort((a, b) => (a.k < b.k ? -sign : a.k > b.k ? sign : a.i - b.i))
    .map((x) => x.p);
}
