/** A node's state as badges: online/offline, draining, unhealthy. */
import type { Node } from "../api/types";
import { StateBadge } from "./ui";

export function NodeBadges({ node }: { node: Node }) {
  return (
    <span className="badges">
      <StateBadge state={node.state} />
      {node.draining && <StateBadge state="draining" />}
      {node.unhealthy_reason && <StateBadge state="unhealthy" label={`unhealthy: ${node.unhealthy_reason}`} />}
    </span>
  );
}

export function gpuSummary(node: Node): string {
  if (node.gpus.length === 0) return "none";
  const counts = new Map<string, number>();
  for (const g of node.gpus) counts.set(g.model, (counts.get(g.model) ?? 0) + 1);
  return [...counts.entries()].map(([m, n]) => `${n}× ${m}`).join(", ");
}
