/** Projects the user belongs to, and a form to start one. */
import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router-dom";
import { Time } from "../../components/Time";
import { EmptyState, ErrorBox, Loading } from "../../components/ui";
import { useAsync, useTitle } from "../../state/hooks";
import { http } from "../http";
import type { Project } from "./types";

export function ProjectListPage() {
  useTitle("Projects");
  const list = useAsync(() => http.get<{ items: Project[] }>("/api/projects"), []);
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const navigate = useNavigate();
  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const p = await http.post<Project>("/api/projects", { name });
      navigate(`/projects/${p.id}`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div className="page">
      <div className="page-head">
        <h1>Projects</h1>
      </div>
      <form className="toolbar" onSubmit={create} aria-label="New project">
        <label className="inline-field">
          <span>New project</span>
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="Name" required maxLength={200} />
        </label>
        <button className="btn btn-primary" type="submit">Create</button>
      </form>
      <ErrorBox error={error} />
      <ErrorBox error={list.error} onRetry={list.reload} />
      {list.loading && !list.data && <Loading />}
      {list.data && list.data.items.length === 0 && (
        <EmptyState title="No projects yet">
          <p>A project holds work items on a timeline, with the tasks that do them and the secrets its members share. Name one above to start.</p>
        </EmptyState>
      )}
      {list.data && list.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr><th>Name</th><th className="num">Items</th><th className="num">Done</th><th>Created</th></tr>
            </thead>
            <tbody>
              {list.data.items.map((p) => (
                <tr key={p.id}>
                  <td><Link to={`/projects/${p.id}`}>{p.name}</Link></td>
                  <td className="num">{p.item_count}</td>
                  <td className="num">{p.done_count}</td>
                  <td><Time value={p.created_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
