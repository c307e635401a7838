/** A node's state as badges (online/offline, draining, unhealthy) and its runtimes as chips. */
import type { Node } from "../api/types";
import { isoInTextToBeijing } from "../time";
import { StateBadge } from "./ui";

export function NodeBadges({ node }: { node: Node }) {
  return (
    <span className="badges">
      <StateBadge state={node.state} />
      {node.draining && <StateBadge state="draining" />}
      {node.unhealthy_reason && (
        <span title={isoInTextToBeijing(node.unhealthy_reason)}>
          <StateBadge state="unhealthy" />
        </span>
      )}
    </span>
  );
}

export function gpuSummary(node: Node): string {
  if (node.gpus.length === 0) return "none";
  const counts = new Map<string, number>();
  for (const g of node.gpus) counts.set(g.model, (counts.get(g.model) ?? 0) + 1);
  return [...counts.entries()].map(([m, n]) => `${n}× ${m}`).join(", ");
}

/** The runtimes a node offers (docker, k3s, host.ssh). */
export function Runtimes({ runtimes }: { runtimes: string[] }) {
  if (runtimes.length === 0) return <span className="muted">none</span>;
  return (
    <span className="labels" data-testid="runtimes">
      {runtimes.map((r) => (
        <span className="label-chip" key={r}>
          {r}
        </span>
      ))}
    </span>
  );
}
