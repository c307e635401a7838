/** Sign in with a username and password; shows the server's reason when it refuses. */
import { useState, type FormEvent } from "react";
import { api } from "../api/client";
import type { Me } from "../api/types";
import { ErrorBox } from "../components/ui";
import { useTitle } from "../state/hooks";

export function LoginPage({ onSignedIn }: { onSignedIn: (user: Me) => void }) {
  useTitle("Sign in");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    api.login(username.trim(), password).then(
      (r) => onSignedIn(r.user),
      (err: unknown) => {
        setError(err);
        setBusy(false);
      },
    );
  };

  return (
    <div className="login-page">
      <form className="login-card" onSubmit={submit} aria-labelledby="login-title">
        <div className="login-brand">
          <span className="brand-mark" aria-hidden="true">
            U
          </span>
          <h1 id="login-title">Sign in to UniDesk</h1>
        </div>
        <label className="field">
          <span className="field-label">Username</span>
          <input
            name="username"
            autoComplete="username"
            autoFocus
            required
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </label>
        <label className="field">
          <span className="field-label">Password</span>
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
