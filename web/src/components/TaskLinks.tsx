/** The plugins' pages a task belongs to (its pipeline step, …), from GET /api/tasks/{id}/links. */
import { Fragment } from "react";
import { Link } from "react-router-dom";
import { api } from "../api/client";
import { useAsync } from "../state/hooks";
import { ErrorBox } from "./ui";

export function TaskLinks({ taskId }: { taskId: string }) {
  const links = useAsync((signal) => api.taskLinks(taskId, signal), [taskId]);
  if (links.error !== null) return <ErrorBox error={links.error} onRetry={links.reload} />;
  const items = links.data?.items ?? [];
  if (items.length === 0) return null;
  return (
    <nav aria-label="Belongs to" className="task-links" data-testid="task-links">
      {items.map((l, i) => (
        <Fragment key={`${l.plugin}:${l.path}`}>
          {i > 0 && " · "}
          <Link to={l.path}>{l.label}</Link>
        </Fragment>
      ))}
    </nav>
  );
}
