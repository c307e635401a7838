/** Submit form: attach the task to a project's work item and/or record it as an experiment's run; each picker
 * shows only when its plugin is loaded (its UI is listed by GET /api/plugins). */
import { useContext, useEffect, useState } from "react";
import { http } from "../plugins/http";
import { PluginUiContext } from "../plugins/PluginUi";
import type { Project, ProjectDetail, WorkItemDetail } from "../plugins/projects/types";
import type { Experiment } from "../plugins/research/types";
import { useAsync } from "../state/hooks";
import { ErrorBox } from "./ui";

export function useAttachPlugins(): { projects: boolean; research: boolean } {
  const { contributions } = useContext(PluginUiContext);
  return { projects: contributions.some((c) => c.plugin === "projects"), research: contributions.some((c) => c.plugin === "research") };
}

export function WorkItemPicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const projects = useAsync(() => http.get<{ items: Project[] }>("/api/projects"), []);
  const [projectId, setProjectId] = useState("");
  // A form filled from a task names only the work item: find its project.
  useEffect(() => {
    if (!value || projectId) return;
    let live = true;
    http.get<WorkItemDetail>(`/api/projects/items/${value}`).then(
      (d) => live && setProjectId(d.item.project_id),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [value, projectId]);
  const detail = useAsync(() => (projectId ? http.get<ProjectDetail>(`/api/projects/${projectId}`) : Promise.resolve(null)), [projectId]);
  return (
    <div className="form-row">
      <div className="field">
        <label className="field-label" htmlFor="f-project">
          Project
        </label>
        <select
          id="f-project"
          value={projectId}
          onChange={(e) => {
            setProjectId(e.target.value);
            onChange("");
          }}
        >
          <option value="">none</option>
          {(projects.data?.items ?? []).map((p) => (
            <option key={p.id} value={p.id}>
              {p.name}
            </option>
          ))}
        </select>
        <ErrorBox error={projects.error} />
      </div>
      <div className="field">
        <label className="field-label" htmlFor="f-work_item_id">
          Work item
        </label>
        <select id="f-work_item_id" value={value} disabled={!projectId} onChange={(e) => onChange(e.target.value)}>
          <option value="">{projectId ? "none" : "choose a project first"}</option>
          {(detail.data?.items ?? []).map((w) => (
            <option key={w.id} value={w.id}>
              {w.title} ({w.status})
            </option>
          ))}
        </select>
        <span className="field-hint">The task shows on the work item; its state moves the item along.</span>
      </div>
    </div>
  );
}

export function ExperimentPicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const experiments = useAsync(() => http.get<{ items: Experiment[] }>("/api/research/experiments"), []);
  return (
    <div className="field">
      <label className="field-label" htmlFor="f-experiment_id">
        Experiment
      </label>
      <select id="f-experiment_id" value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">none</option>
        {(experiments.data?.items ?? []).map((x) => (
          <option key={x.id} value={x.id}>
            {x.name}
          </option>
        ))}
      </select>
      <span className="field-hint">The task becomes a run of the experiment; its metrics chart there.</span>
      <ErrorBox error={experiments.error} />
    </div>
  );
}
