/** A task's files: the inputs it declared (pinned at submit), its output patterns, and the artifacts its attempts produced. */
import { Link } from "react-router-dom";
import { api } from "../api/client";
import { FINAL_TASK_STATES, type PinnedInput, type Task } from "../api/types";
import { OUTPUTS_DIR } from "../api/taskFiles";
import { useAsync, useLiveEvents, useReloadOnChange, useThrottled } from "../state/hooks";
import { DownloadButton } from "./DownloadButton";
import { ErrorBox, Loading, StateBadge, formatBytes } from "./ui";

function pinnedInputs(task: Task): PinnedInput[] {
  const raw = task.extra?.inputs;
  return Array.isArray(raw) ? (raw as PinnedInput[]) : [];
}

function outputPatterns(task: Task): string[] {
  const raw = task.extra?.outputs;
  return Array.isArray(raw) ? raw.filter((x): x is string => typeof x === "string") : [];
}

export function TaskArtifacts({ task }: { task: Task }) {
  const inputs = pinnedInputs(task);
  const patterns = outputPatterns(task);
  const final = FINAL_TASK_STATES.includes(task.state);
  const produced = useAsync((signal) => api.files({ task_id: task.id, limit: 500 }, signal), [task.id]);
  // Outputs are uploaded as the attempt ends: look again once the task is final.
  useReloadOnChange(final, produced.reload);
  const reload = useThrottled(produced.reload, 500);
  useLiveEvents((ev) => ev.subject_type === "artifact" && ev.payload.task_id === task.id, reload);
  const outputs = produced.data?.items ?? [];

  // Decided by the task's declarations alone, so the card never changes height while the
  // outputs list reloads (the log view below must not move while it streams).
  if (inputs.length === 0 && patterns.length === 0) {
    return (
      <section className="card section artifacts-none" aria-labelledby="artifacts-h" data-testid="task-artifacts">
        <h2 id="artifacts-h">Artifacts</h2>
        <p className="muted">This task declares no input or output files.</p>
      </section>
    );
  }
  return (
    <section className="card section" aria-labelledby="artifacts-h" data-testid="task-artifacts">
      <h2 id="artifacts-h">Artifacts</h2>
      <div className="grid-2">
        <div>
          <h3>Inputs</h3>
          {inputs.length === 0 ? (
            <p className="muted">None declared.</p>
          ) : (
            <ul className="artifact-list" aria-label="Inputs">
              {inputs.map((i) => (
                <li key={i.path} data-input-name={i.name}>
                  <span className="break">
                    <Link to={`/files?q=${encodeURIComponent(i.name)}`}>{i.name}</Link>{" "}
                    <span className="muted small">
                      → <span className="mono">{i.path}</span> · {formatBytes(i.size)}
                    </span>
                  </span>
                  <DownloadButton id={i.artifact_id} name={i.name} />
                </li>
              ))}
            </ul>
          )}
        </div>
        <div>
          <h3>Outputs</h3>
          {patterns.length === 0 ? (
            <p className="muted">None declared.</p>
          ) : (
            <p className="small">
              Collected after a successful run from{" "}
              {patterns.map((p, n) => (
                <span key={p}>
                  {n > 0 && ", "}
                  <code>
                    {OUTPUTS_DIR}/{p}
                  </code>
                </span>
              ))}
            </p>
          )}
          {produced.error !== null && <ErrorBox error={produced.error} onRetry={produced.reload} />}
          {!produced.data && produced.loading && <Loading label="Loading outputs…" />}
          {outputs.length > 0 && (
            <ul className="artifact-list" aria-label="Outputs">
              {outputs.map((a) => (
                <li key={a.id} data-output-name={a.name}>
                  <span className="break" title={a.name}>
                    <span className="mono">{a.name.replace(`tasks/${task.id}/${a.attempt_no}/`, "")}</span>{" "}
                    <span className="muted small">
                      {formatBytes(a.size)}
                      {a.attempt_no ? ` · attempt ${a.attempt_no}` : ""}
                    </span>{" "}
                    {a.state !== "ready" && <StateBadge state={a.state} />}
                  </span>
                  <DownloadButton id={a.id} name={a.name} disabled={a.state !== "ready"} />
                </li>
              ))}
            </ul>
          )}
          {produced.data && outputs.length === 0 && patterns.length > 0 && (
            <p className="muted">{final ? "No output files were collected." : "Nothing collected yet."}</p>
          )}
        </div>
      </div>
    </section>
  );
}
