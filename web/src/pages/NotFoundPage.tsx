import { Link } from "react-router-dom";
import { EmptyState } from "../components/ui";
import { useTitle } from "../state/hooks";

export function NotFoundPage() {
  useTitle("Not found");
  return (
    <EmptyState title="There is no page here.">
      <Link to="/">Go to the dashboard</Link>
    </EmptyState>
  );
}
