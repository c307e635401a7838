/** Secrets: names, scopes and who changed them; values are written here and never shown again. */
import { useContext, useState, type FormEvent } from "react";
import { api } from "../api/client";
import type { Secret } from "../api/types";
import { Time } from "../components/Time";
import { ConfirmButton, EmptyState, ErrorBox, Loading } from "../components/ui";
import { AuthContext } from "../state/contexts";
import { useAsync, useNow, useTitle } from "../state/hooks";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function SecretsPage() {
  useTitle("Secrets");
  const { user } = useContext(AuthContext)!;
  const secrets = useAsync(() => api.secrets(), []);
  const now = useNow(60_000);
  const [form, setForm] = useState({ name: "", scope: "user" as Secret["scope"], project: "", value: "" });
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const nameError = form.name && !NAME_RE.test(form.name) ? "Letters, digits, '_', '.', '-' (up to 128), starting with a letter or digit." : null;

  const save = (e: FormEvent) => {
    e.preventDefault();
    if (nameError) return;
    setBusy(true);
    setError(null);
    setSaved(null);
    api.putSecret(form.scope, form.name, form.value, form.project.trim()).then(
      (s) => {
        secrets.setData((old) => old && { items: [...old.items.filter((x) => x.id !== s.id), s].sort((a, b) => a.ref.localeCompare(b.ref)) });
        setForm({ ...form, name: "", value: "" });
        setSaved(s.ref);
        setBusy(false);
      },
      (err: unknown) => {
        setError(err);
        setBusy(false);
      },
    );
  };

  return (
    <div className="page">
      <div className="page-head">
        <h1>Secrets</h1>
      </div>
      <p className="muted">
        API keys, deploy keys and tokens for tasks. A value is stored encrypted and is never shown again, by any page, command or route; tasks name
        secrets by reference and their values are masked as <code>***</code> in logs.
      </p>
      <section className="section card" aria-labelledby="secrets-h">
        <h2 id="secrets-h">Your secrets{user.role === "admin" ? " (admins see every secret's name)" : ", your projects' and the global ones"}</h2>
        {secrets.error !== null && <ErrorBox error={secrets.error} onRetry={secrets.reload} />}
        {!secrets.data && secrets.loading && <Loading />}
        {secrets.data && secrets.data.items.length === 0 && <EmptyState title="No secrets yet." />}
        {secrets.data && secrets.data.items.length > 0 && (
          <div className="table-wrap">
            <table className="table" data-testid="secrets-table">
              <thead>
                <tr>
                  <th scope="col">Reference</th>
                  <th scope="col">Scope</th>
                  <th scope="col">Created by</th>
                  <th scope="col">Updated by</th>
                  <th scope="col">Updated</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {secrets.data.items.map((s) => (
                  <tr key={s.id}>
                    <td className="mono">{s.ref}</td>
                    <td>{s.scope}</td>
                    <td>{s.created_by}</td>
                    <td>{s.updated_by}</td>
                    <td>
                      <Time value={s.updated_at} now={now} />
                    </td>
                    <td className="row-actions">
                      <ConfirmButton
                        label="Delete"
                        onConfirm={() =>
                          api.deleteSecret(s.id).then(() => secrets.setData((old) => old && { items: old.items.filter((x) => x.id !== s.id) }))
                        }
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section className="section card">
        <form className="inline-form" onSubmit={save} aria-label="Set a secret">
          <h2>Set a secret</h2>
          <p className="muted small">Setting an existing name replaces its value.</p>
          <label className="field">
            <span className="field-label">Name</span>
            <input required autoComplete="off" spellCheck={false} className="mono" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
            {nameError && <span className="field-error">{nameError}</span>}
          </label>
          <label className="field">
            <span className="field-label">Scope</span>
            <select value={form.scope} onChange={(e) => setForm({ ...form, scope: e.target.value as Secret["scope"] })}>
              <option value="user">mine (only my tasks)</option>
              <option value="project">a project (its members' tasks)</option>
              {user.role === "admin" && <option value="global">global (every task)</option>}
            </select>
          </label>
          {form.scope === "project" && (
            <label className="field">
              <span className="field-label">Project id</span>
              <input required autoComplete="off" className="mono" value={form.project} onChange={(e) => setForm({ ...form, project: e.target.value })} />
            </label>
          )}
          <label className="field field-wide">
            <span className="field-label">Value</span>
            <textarea
              required
              rows={3}
              minLength={4}
              autoComplete="off"
              spellCheck={false}
              className="mono secret-value"
              aria-describedby="secret-value-help"
              value={form.value}
              onChange={(e) => setForm({ ...form, value: e.target.value })}
            />
            <span id="secret-value-help" className="field-hint">
              At least 4 characters. For a private repository: an SSH private key, or user:token for https. For a registry: user:password.
            </span>
          </label>
          <button type="submit" className="btn btn-primary" disabled={busy || !!nameError}>
            Save secret
          </button>
          {saved && (
            <p role="status" data-testid="secret-saved">
              Saved. Tasks name it as <code className="mono">{saved}</code>.
            </p>
          )}
          <ErrorBox error={error} />
        </form>
      </section>
    </div>
  );
}
