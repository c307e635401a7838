/** Parameter sweep form: a task template plus a grid ("lr = 0.1, 0.01" per line); one task per point. */
import { useState, type FormEvent } from "react";
import { ErrorBox } from "../../components/ui";
import { http } from "../http";
import type { ParamValue } from "./types";

export function parseGrid(text: string): Record<string, ParamValue[]> {
  const grid: Record<string, ParamValue[]> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    if (eq < 1) throw new Error(`"${line}": write name = value, value, …`);
    const name = line.slice(0, eq).trim();
    grid[name] = line
      .slice(eq + 1)
      .split(",")
      .map((v) => v.trim())
      .filter((v) => v !== "")
      .map((v) => (v === "true" ? true : v === "false" ? false : v !== "" && Number.isFinite(Number(v)) ? Number(v) : v));
  }
  return grid;
}

export function SweepForm({ experimentId, onSubmitted }: { experimentId: string; onSubmitted: (n: number) => void }) {
  const [f, setF] = useState({ code_repo_url: "", code_commit_id: "", env_repo_url: "", env_commit_id: "", dockerfile_path: "Dockerfile",
    command: 'python train.py --lr "$PARAM_LR"', grid: "lr = 0.1, 0.01", cpus: "1", memory_mb: "512" });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const points = (() => {
    try {
      return Object.values(parseGrid(f.grid)).reduce((n, v) => n * v.length, 1);
    } catch {
      return 0;
    }
  })();
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const { grid, cpus, memory_mb, ...task } = f;
      const res = await http.post<{ task_ids: string[] }>(`/api/research/experiments/${experimentId}/sweeps`, {
        task: { ...task, resources: { cpus: Number(cpus), memory_mb: Number(memory_mb) } }, grid: parseGrid(grid),
      });
      onSubmitted(res.task_ids.length);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-label="Parameter sweep">
      <h2>Parameter sweep</h2>
      <p className="muted small">One task per grid point; each gets its point as <code>PARAM_&lt;NAME&gt;</code> env vars and <code>UNIDESK_PARAMS</code> (JSON), and reports metrics by appending JSON lines to <code>$UNIDESK_METRICS_FILE</code>.</p>
      <div className="form-row form-row-4">
        <label><span className="field-label">Code repo URL</span><input value={f.code_repo_url} onChange={set("code_repo_url")} required /></label>
        <label><span className="field-label">Code commit</span><input value={f.code_commit_id} onChange={set("code_commit_id")} required className="mono" /></label>
        <label><span className="field-label">Env repo URL</span><input value={f.env_repo_url} onChange={set("env_repo_url")} required /></label>
        <label><span className="field-label">Env commit</span><input value={f.env_commit_id} onChange={set("env_commit_id")} required className="mono" /></label>
      </div>
      <div className="form-row form-row-4">
        <label><span className="field-label">Dockerfile path</span><input value={f.dockerfile_path} onChange={set("dockerfile_path")} required /></label>
        <label><span className="field-label">CPUs</span><input value={f.cpus} onChange={set("cpus")} inputMode="decimal" /></label>
        <label><span className="field-label">Memory (MB)</span><input value={f.memory_mb} onChange={set("memory_mb")} inputMode="numeric" /></label>
      </div>
      <label><span className="field-label">Command (run by /bin/sh -c)</span><textarea value={f.command} onChange={set("command")} rows={3} required className="mono" /></label>
      <label><span className="field-label">Grid (one parameter per line)</span><textarea value={f.grid} onChange={set("grid")} rows={3} className="mono" aria-label="Grid" /></label>
      <ErrorBox error={error} />
      <button className="btn btn-primary" type="submit" disabled={busy || points === 0}>Submit {points} task{points === 1 ? "" : "s"}</button>
    </form>
  );
}
