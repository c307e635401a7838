/** A node's caches (git repositories, input files, env images): size against cap from its heartbeats, and the admin's "Clear caches". */
import { useState } from "react";
import { api } from "../api/client";
import type { Node, NodeCache } from "../api/types";
import { ConfirmButton, formatBytes } from "./ui";

const LABELS: Record<string, string> = { git: "Git repositories", inputs: "Input files", images: "Env images" };

export function NodeCaches({ node, admin }: { node: Node; admin: boolean }) {
  const caches: NodeCache[] = node.usage?.caches ?? [];
  const [note, setNote] = useState<string | null>(null);
  return (
    <section className="card node-caches" data-testid="node-caches" aria-labelledby="caches-h">
      <div className="section-head">
        <h2 id="caches-h">Caches</h2>
        {admin && (
          <ConfirmButton
            label="Clear caches"
            tone="normal"
            disabled={node.state !== "online"}
            onConfirm={() =>
              api.clearCaches(node.id).then(() => setNote("Asked the node to clear its caches; entries running tasks use stay. Sizes update with its next heartbeat."))
            }
          />
        )}
      </div>
      {caches.length === 0 ? (
        <p className="muted">This node reports no cache sizes (its runner keeps no caches, or it has not sent a heartbeat yet).</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Cache</th>
              <th scope="col">Size</th>
              <th scope="col">Cap</th>
              <th scope="col">Entries</th>
            </tr>
          </thead>
          <tbody>
            {caches.map((c) => (
              <tr key={c.name} data-cache={c.name}>
                <td>{LABELS[c.name] ?? c.name}</td>
                <td data-testid={`cache-${c.name}-bytes`}>{formatBytes(c.bytes)}</td>
                <td>{formatBytes(c.cap_bytes)}</td>
                <td>{c.entries}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {note && (
        <p className="muted small" role="status">
          {note}
        </p>
      )}
      <p className="muted small">Least recently used entries are evicted past each cap; an entry a running attempt uses never is.</p>
    </section>
  );
}
