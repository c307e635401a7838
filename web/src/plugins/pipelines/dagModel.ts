/** A pipeline as a drawing: step states as tone + icon + words, box sizes, the files each edge carries. */
import type { Pipeline, Step, StepInput, StepState, StepWhen } from "./types";

/** Tone (the badge colour class), icon and label per step state: colour is never the only cue. */
export const STEP_LOOK: Record<StepState, { tone: string; icon: string; label: string }> = {
  waiting: { tone: "neutral", icon: "◌", label: "waiting" },
  ready: { tone: "info", icon: "◎", label: "ready" },
  running: { tone: "active", icon: "▶", label: "running" },
  succeeded: { tone: "ok", icon: "✓", label: "succeeded" },
  failed: { tone: "bad", icon: "✗", label: "failed" },
  skipped: { tone: "muted", icon: "↷", label: "skipped" },
  cancelled: { tone: "warn", icon: "⊘", label: "cancelled" },
};

export function stepLook(state: string): { tone: string; icon: string; label: string } {
  return STEP_LOOK[state as StepState] ?? { tone: "neutral", icon: "?", label: state };
}

const TASK_AS_STEP: Record<string, StepState> = {
  pending: "waiting",
  assigned: "ready",
  preparing: "ready",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  lost: "failed",
  cancelling: "cancelled",
  cancelled: "cancelled",
};

/** A matrix point's look from its task's state (a point with no task yet is waiting). */
export function pointLook(taskState: string | null): { tone: string; icon: string; label: string } {
  const look = STEP_LOOK[TASK_AS_STEP[taskState ?? "pending"] ?? "waiting"];
  return { ...look, label: taskState ?? "no task yet" };
}

/** Matrix points drawn inside a box; more are summarised as "+N more" (the step table lists all). */
export const MAX_POINTS_SHOWN = 6;
export const BOX_HEAD = 58;
export const POINT_ROW = 22;

export function boxHeight(step: Step): number {
  if (!step.matrix) return BOX_HEAD;
  const shown = Math.min(step.points.length, MAX_POINTS_SHOWN) + (step.points.length > MAX_POINTS_SHOWN ? 1 : 0);
  return BOX_HEAD + shown * POINT_ROW + (shown ? 6 : 0);
}

/** A matrix point's parameters as `lr=0.1 bs=32`. */
export function pointLabel(params: Record<string, unknown>): string {
  const parts = Object.entries(params).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return parts.join(" ") || "(no parameters)";
}

export interface EdgeInfo {
  from: string;
  to: string;
  /** Paths of the files that flow along this edge (the target's inputs from the source). */
  files: string[];
  when: StepWhen;
}

/** A step's file in: resolved when it started (with its artifacts and mount), or only declared by its spec (neither yet). */
export type FileIn = Omit<StepInput, "mount"> & { mount?: string };

/** The `{"from": "<step>/<path>"}` inputs the spec declares for a step (known before the step starts). */
export function declaredInputs(spec: unknown, stepName: string): FileIn[] {
  const steps = (spec as { steps?: unknown } | null)?.steps;
  if (!Array.isArray(steps)) return [];
  const step = steps.find((x) => (x as { name?: unknown })?.name === stepName) as { task?: { inputs?: unknown } } | undefined;
  const inputs = step?.task?.inputs;
  if (!Array.isArray(inputs)) return [];
  return inputs.flatMap((i) => {
    const ref = (i as { from?: unknown })?.from;
    if (typeof ref !== "string" || !ref.includes("/")) return [];
    const cut = ref.indexOf("/");
    return [{ from_step: ref.slice(0, cut), path: ref.slice(cut + 1), artifact_ids: [] }];
  });
}

/** A step's files in: those resolved when it started (with their artifacts), then those its spec declares that are not resolved yet. */
export function filesIn(p: Partial<Pick<Pipeline, "spec">>, s: Step): FileIn[] {
  const seen = new Set(s.inputs.map((i) => `${i.from_step}/${i.path}`));
  return [...s.inputs, ...declaredInputs(p.spec, s.name).filter((i) => !seen.has(`${i.from_step}/${i.path}`))];
}

/** One edge per dependency, plus one per input from a step not listed in depends_on; each with its files. */
export function pipelineEdges(p: Pick<Pipeline, "steps"> & Partial<Pick<Pipeline, "spec">>): EdgeInfo[] {
  const names = new Set(p.steps.map((s) => s.name));
  const edges: EdgeInfo[] = [];
  for (const s of p.steps) {
    const files = new Map<string, string[]>();
    for (const i of filesIn(p, s)) files.set(i.from_step, [...(files.get(i.from_step) ?? []), i.path]);
    const from = [...new Set([...s.depends_on, ...files.keys()])].filter((f) => names.has(f) && f !== s.name);
    for (const f of from) edges.push({ from: f, to: s.name, files: files.get(f) ?? [], when: s.when ?? "on_success" });
  }
  return edges;
}

/** The text on an edge: its condition when not the default, then the files it carries. */
export function edgeLabel(e: EdgeInfo): string {
  const cond = e.when === "on_failure" ? "on failure" : e.when === "always" ? "always" : "";
  return [cond, e.files.join(", ")].filter(Boolean).join(": ");
}

/** The step counts of a summary in state order, e.g. "2 succeeded · 1 running". */
export function countsText(counts: Partial<Record<string, number>>): string {
  const order = Object.keys(STEP_LOOK);
  return Object.entries(counts)
    .filter(([, n]) => (n ?? 0) > 0)
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
    .map(([s, n]) => `${n} ${s}`)
    .join(" · ");
}

export function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
