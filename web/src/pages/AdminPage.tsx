/** Admin: users, personal API tokens, node tokens (secrets revealed once, with a ready agent command line). */
import { useContext, useState, type FormEvent } from "react";
import { can } from "../api/access";
import { api } from "../api/client";
import type { ApiToken, NodeToken, Role, User } from "../api/types";
import { Time } from "../components/Time";
import { ConfirmButton, CopyButton, EmptyState, ErrorBox, Loading, StateBadge } from "../components/ui";
import { AuthContext } from "../state/contexts";
import { useAsync, useNow, useTitle } from "../state/hooks";

export function AdminPage() {
  const { user } = useContext(AuthContext)!;
  useTitle(user.role === "admin" ? "Admin" : "API tokens");
  return (
    <div className="page">
      <div className="page-head">
        <h1>{user.role === "admin" ? "Admin" : "API tokens"}</h1>
      </div>
      {can(user, "user", "create") && <UsersSection me={user} />}
      <ApiTokensSection />
      {can(user, "node_token", "issue") && <NodeTokensSection />}
    </div>
  );
}

function Reveal({ secret, what, command }: { secret: string; what: string; command?: string }) {
  return (
    <div className="reveal" role="status" data-testid="secret-reveal">
      <p>
        <strong>Copy this {what} now.</strong> It is shown only once; the server keeps only its hash.
      </p>
      <div className="command-line">
        <code className="mono break" data-testid="secret">
          {secret}
        </code>
        <CopyButton text={secret} label="Copy secret" />
      </div>
      {command && (
        <>
          <p>Start an agent on the node with:</p>
          <div className="command-line">
            <code className="mono break" data-testid="agent-command">
              {command}
            </code>
            <CopyButton text={command} label="Copy command" />
          </div>
        </>
      )}
    </div>
  );
}

function UsersSection({ me }: { me: User }) {
  const users = useAsync(() => api.users(), []);
  const now = useNow(60_000);
  const [form, setForm] = useState({ username: "", password: "", role: "member" as Role });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const replace = (u: User) => users.setData((old) => old && { items: old.items.map((x) => (x.id === u.id ? u : x)) });
  const create = (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    api.createUser(form).then(
      (u) => {
        users.setData((old) => old && { items: [...old.items, u] });
        setForm({ username: "", password: "", role: "member" });
        setBusy(false);
      },
      (err: unknown) => {
        setError(err);
        setBusy(false);
      },
    );
  };
  return (
    <section className="section card" aria-labelledby="users-h">
      <h2 id="users-h">Users</h2>
      {users.error !== null && <ErrorBox error={users.error} onRetry={users.reload} />}
      {!users.data && users.loading && <Loading />}
      {users.data && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.items.map((u) => (
                <tr key={u.id}>
                  <td>
                    {u.username}
                    {u.id === me.id && <span className="muted"> (you)</span>}
                  </td>
                  <td>{u.role}</td>
                  <td>
                    <StateBadge state={u.disabled ? "disabled" : "active"} />
                  </td>
                  <td>
                    <Time value={u.created_at} now={now} />
                  </td>
                  <td className="row-actions">
                    {u.id !== me.id && (
                      <>
                        <ConfirmButton
                          tone="normal"
                          label={u.role === "admin" ? "Make member" : "Make admin"}
                          onConfirm={() => api.updateUser(u.id, { role: u.role === "admin" ? "member" : "admin" }).then(replace)}
                        />
                        <ConfirmButton
                          tone={u.disabled ? "normal" : "danger"}
                          label={u.disabled ? "Enable" : "Disable"}
                          onConfirm={() => api.updateUser(u.id, { disabled: !u.disabled }).then(replace)}
                        />
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form className="inline-form" onSubmit={create} aria-label="Add a user">
        <h3>Add a user</h3>
        <label className="field">
          <span className="field-label">Username</span>
          <input required autoComplete="off" value={form.username} onChange={(e) => setForm({ ...form, username: e.target.value })} />
        </label>
        <label className="field">
          <span className="field-label">Password</span>
          <input required type="password" autoComplete="new-password" value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} />
        </label>
        <label className="field">
          <span className="field-label">Role</span>
          <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
            <option value="member">member</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          Add user
        </button>
        <ErrorBox error={error} />
      </form>
    </section>
  );
}

function TokenTable<T extends ApiToken | NodeToken>({ items, onRevoke, now }: { items: T[]; onRevoke: (t: T) => Promise<unknown>; now: number }) {
  if (items.length === 0) return <EmptyState title="No tokens yet." />;
  return (
    <div className="table-wrap">
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Prefix</th>
            <th scope="col">Status</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            {"expires_at" in (items[0] ?? {}) && <th scope="col">Expires</th>}
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {items.map((t) => (
            <tr key={t.id}>
              <td>{t.name}</td>
              <td className="mono small">{t.prefix}…</td>
              <td>
                <StateBadge state={t.revoked_at ? "revoked" : "active"} />
              </td>
              <td>
                <Time value={t.created_at} now={now} />
              </td>
              <td>{t.last_used_at ? <Time value={t.last_used_at} mode="relative" now={now} /> : <span className="muted">never</span>}</td>
              {"expires_at" in t && <td>{(t as ApiToken).expires_at ? <Time value={(t as ApiToken).expires_at} now={now} /> : <span className="muted">never</span>}</td>}
              <td className="row-actions">
                {!t.revoked_at && (
                  <ConfirmButton
                    label="Revoke"
                    warning={"server_local" in t && t.server_local ? "This is the server's own local node: revoking its token takes this machine offline for tasks until the server restarts." : undefined}
                    onConfirm={() => onRevoke(t)}
                  />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function ApiTokensSection() {
  const tokens = useAsync(() => api.tokens(), []);
  const now = useNow(60_000);
  const [name, setName] = useState("");
  const [days, setDays] = useState("90");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const create = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    api.createToken(name.trim(), days ? Number(days) : undefined).then(
      (r) => {
        setSecret(r.secret);
        setName("");
        tokens.setData((old) => old && { items: [r.token, ...old.items] });
      },
      setError,
    );
  };
  return (
    <section className="section card" aria-labelledby="tokens-h">
      <h2 id="tokens-h">My API tokens</h2>
      <p className="muted">For the command-line client and scripts: send as <code>Authorization: Bearer …</code>.</p>
      {secret && <Reveal secret={secret} what="API token" />}
      {tokens.error !== null && <ErrorBox error={tokens.error} onRetry={tokens.reload} />}
      {!tokens.data && tokens.loading && <Loading />}
      {tokens.data && (
        <TokenTable
          items={tokens.data.items}
          now={now}
          onRevoke={(t) => api.revokeToken(t.id).then(tokens.reload)}
        />
      )}
      <form className="inline-form" onSubmit={create} aria-label="Create an API token">
        <label className="field">
          <span className="field-label">Token name</span>
          <input required value={name} onChange={(e) => setName(e.target.value)} placeholder="laptop CLI" />
        </label>
        <label className="field">
          <span className="field-label">Expires after (days, empty = never)</span>
          <input inputMode="numeric" value={days} onChange={(e) => setDays(e.target.value.replace(/\D/g, ""))} />
        </label>
        <button type="submit" className="btn btn-primary">
          Create token
        </button>
        <ErrorBox error={error} />
      </form>
    </section>
  );
}

function NodeTokensSection() {
  const tokens = useAsync(() => api.nodeTokens(), []);
  const now = useNow(60_000);
  const [name, setName] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const create = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    api.createNodeToken(name.trim()).then(
      (r) => {
        setSecret(r.secret);
        setName("");
        tokens.setData((old) => old && { items: [r.token, ...old.items] });
      },
      setError,
    );
  };
  const command = secret ? agentCommand(window.location.origin, secret) : undefined;
  return (
    <section className="section card" aria-labelledby="ntokens-h">
      <h2 id="ntokens-h">Node tokens</h2>
      <p className="muted">A node's agent presents one of these when it dials in. Revoking closes its connection within a heartbeat.</p>
      {secret && <Reveal secret={secret} what="node token" command={command} />}
      {tokens.error !== null && <ErrorBox error={tokens.error} onRetry={tokens.reload} />}
      {!tokens.data && tokens.loading && <Loading />}
      {tokens.data && <TokenTable items={tokens.data.items} now={now} onRevoke={(t) => api.revokeNodeToken(t.id).then(tokens.reload)} />}
      <form className="inline-form" onSubmit={create} aria-label="Issue a node token">
        <label className="field">
          <span className="field-label">Node token name</span>
          <input required value={name} onChange={(e) => setName(e.target.value)} placeholder="gpu-box-1" />
        </label>
        <button type="submit" className="btn btn-primary">
          Issue node token
        </button>
        <ErrorBox error={error} />
      </form>
    </section>
  );
}

/** The suggested agent start: the secret goes into a file only its owner can read (0600), never onto the command line (visible in ps). */
function agentCommand(origin: string, secret: string): string {
  const file = "~/.unidesk-node-token";
  return `(umask 077 && printf '%s\\n' '${secret}' > ${file}) && unidesk-agent --server ${origin} --token-file ${file}`;
}
