/** The research plugin's pages, mounted at /experiments/*: experiment list and one experiment. */
import { useState, type FormEvent } from "react";
import { Link, Route, Routes, useNavigate } from "react-router-dom";
import { Time } from "../../components/Time";
import { EmptyState, ErrorBox, Loading } from "../../components/ui";
import { useAsync, useTitle } from "../../state/hooks";
import { http } from "../http";
import { ExperimentPage } from "./ExperimentPage";
import type { Experiment } from "./types";

function ExperimentListPage() {
  useTitle("Experiments");
  const list = useAsync(() => http.get<{ items: Experiment[] }>("/api/research/experiments"), []);
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const navigate = useNavigate();
  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const x = await http.post<Experiment>("/api/research/experiments", { name });
      navigate(`/experiments/${x.id}`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div className="page">
      <div className="page-head"><h1>Experiments</h1></div>
      <form className="toolbar" onSubmit={create} aria-label="New experiment">
        <label className="inline-field">
          <span>New experiment</span>
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="Name" required maxLength={200} />
        </label>
        <button className="btn btn-primary" type="submit">Create</button>
      </form>
      <ErrorBox error={error} />
      <ErrorBox error={list.error} onRetry={list.reload} />
      {list.loading && !list.data && <Loading />}
      {list.data && list.data.items.length === 0 && (
        <EmptyState title="No experiments yet">
          <p>An experiment gathers runs (tasks) to compare their metrics. Name one above, then pick it under Attach when you submit a task, or start a parameter sweep from its page.</p>
        </EmptyState>
      )}
      {list.data && list.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead><tr><th>Name</th><th className="num">Runs</th><th>Created</th></tr></thead>
            <tbody>
              {list.data.items.map((x) => (
                <tr key={x.id}>
                  <td><Link to={`/experiments/${x.id}`}>{x.name}</Link></td>
                  <td className="num">{x.run_count}</td>
                  <td><Time value={x.created_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function ExperimentsSection() {
  return (
    <Routes>
      <Route index element={<ExperimentListPage />} />
      <Route path=":experimentId" element={<ExperimentPage />} />
    </Routes>
  );
}
