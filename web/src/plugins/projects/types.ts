/** Shapes of the projects plugin's API (dates are Beijing calendar days, "YYYY-MM-DD"). */
export type Status = "todo" | "doing" | "done";

export interface Project {
  id: string;
  name: string;
  description: string;
  owner_id: string | null;
  created_at: string;
  updated_at: string;
  item_count: number;
  done_count: number;
}

export interface WorkItem {
  id: string;
  project_id: string;
  title: string;
  description: string;
  status: Status;
  assignee: string | null;
  start_date: string | null;
  due_date: string | null;
  estimate_hours: number | null;
  milestone: boolean;
  depends_on: string[];
  runs: Record<string, number>;
  created_at: string;
  updated_at: string;
}

export interface Dependency {
  predecessor_id: string;
  successor_id: string;
}

export interface ProjectDetail {
  project: Project;
  members: { user_id: string; username: string; role: string }[];
  items: WorkItem[];
  dependencies: Dependency[];
}

export interface Run {
  task_id: string;
  name: string;
  state: string;
  linked_at: string;
  updated_at: string;
}

export interface WorkItemDetail {
  item: WorkItem;
  run_list: Run[];
  dependents: string[];
}

export const STATUSES: Status[] = ["todo", "doing", "done"];
