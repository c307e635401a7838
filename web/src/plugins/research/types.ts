/** Shapes of the research plugin's API. */
export type ParamValue = string | number | boolean;

export interface Experiment {
  id: string;
  name: string;
  description: string;
  owner_id: string | null;
  created_at: string;
  run_count: number;
}

export interface MetricSummary {
  points: number;
  first_step: number;
  last_step: number;
  last: number;
  min: number;
  max: number;
}

export interface RunOut {
  task_id: string;
  name: string;
  state: string;
  params: Record<string, ParamValue>;
  sweep_id: string | null;
  created_at: string;
  finished_at: string | null;
  metrics: Record<string, MetricSummary>;
  rejected_points: number;
  last_rejection: string | null;
}

export interface ExperimentDetail {
  experiment: Experiment;
  runs: RunOut[];
  metric_names: string[];
  param_names: string[];
}

export interface SeriesPoint {
  step: number;
  step_end: number;
  avg: number;
  min: number;
  max: number;
  last: number;
  count: number;
}

export interface SeriesPage {
  metric: string;
  series: { task_id: string; name: string; points: SeriesPoint[]; downsampled: boolean }[];
}
