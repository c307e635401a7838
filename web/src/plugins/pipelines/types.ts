/** Shapes of the pipelines plugin's API (the contract in docs/pipelines.md). */
export const PIPELINE_STATES = ["pending", "running", "succeeded", "failed", "cancelled"] as const;
export type PipelineState = (typeof PIPELINE_STATES)[number];

export const STEP_STATES = ["waiting", "ready", "running", "succeeded", "failed", "skipped", "cancelled"] as const;
export type StepState = (typeof STEP_STATES)[number];

export type StepWhen = "on_success" | "on_failure" | "always";

export interface PipelineSummary {
  id: string;
  name: string;
  state: PipelineState;
  owner_id: string | null;
  owner: string | null;
  created_at: string;
  finished_at: string | null;
  step_counts: Partial<Record<StepState, number>>;
  /** What the signed-in user may do with it (cancel, retry, rerun), when the server says. */
  allowed_actions?: string[];
}

export interface StepPoint {
  index: number;
  params: Record<string, unknown>;
  task_id: string | null;
  task_state: string | null;
}

export interface StepInput {
  from_step: string;
  path: string;
  artifact_ids: string[];
  /** Where the files appear in the step's container. */
  mount?: string;
}

export interface StepOutput {
  point: number;
  path: string;
  artifact_id: string;
  size: number;
}

export interface Step {
  name: string;
  state: StepState;
  depends_on: string[];
  when: StepWhen;
  matrix: Record<string, unknown[]> | null;
  points: StepPoint[];
  inputs: StepInput[];
  outputs: StepOutput[];
  /** Why a step failed or was skipped, in words. */
  reason?: string | null;
  /** How many times the step was retried. */
  round?: number;
}

export interface Pipeline extends PipelineSummary {
  steps: Step[];
  spec: Record<string, unknown>;
}

export interface PipelinePage {
  items: PipelineSummary[];
  next_cursor: string | null;
}
