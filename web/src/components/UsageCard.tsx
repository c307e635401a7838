// Dashboard card: GPU- and CPU-hours per person and per account over the last 7 days, and who
// runs next (fair-share keys, lowest first; a task ranks by its person's key plus its
// account's). Reads GET /api/usage.
import { api } from "../api/client";
import type { Usage } from "../api/types";
import { useAsync } from "../state/hooks";
import { EmptyState, ErrorBox, Loading } from "./ui";

export function usageTotals(u: Usage): { user: string; gpu: number; cpu: number; share: number | null }[] {
  const by = new Map<string, { user: string; gpu: number; cpu: number; share: number | null }>();
  const row = (key: string, user: string) => {
    let r = by.get(key);
    if (!r) by.set(key, (r = { user, gpu: 0, cpu: 0, share: null }));
    return r;
  };
  for (const d of u.items) {
    const r = row(d.user_id ?? "", d.username ?? "(deleted)");
    r.gpu += d.gpu_hours;
    r.cpu += d.cpu_hours;
  }
  for (const f of u.fair_share) row(f.user_id ?? "", f.username ?? "(deleted)").share = f.share_cpu_hours;
  return [...by.values()].sort((a, b) => b.gpu - a.gpu || b.cpu - a.cpu || a.user.localeCompare(b.user));
}

/** The same per account ("" shows as "(no account)"); only accounts that ran or have a key. */
export function accountTotals(u: Usage): { account: string; gpu: number; cpu: number; share: number | null }[] {
  const by = new Map<string, { account: string; gpu: number; cpu: number; share: number | null }>();
  const row = (key: string) => {
    let r = by.get(key);
    if (!r) by.set(key, (r = { account: key === "" ? "(no account)" : key, gpu: 0, cpu: 0, share: null }));
    return r;
  };
  for (const d of u.accounts ?? []) {
    const r = row(d.account);
    r.gpu += d.gpu_hours;
    r.cpu += d.cpu_hours;
  }
  for (const f of u.account_fair_share ?? []) row(f.account).share = f.share_cpu_hours;
  return [...by.values()].sort((a, b) => b.gpu - a.gpu || b.cpu - a.cpu || a.account.localeCompare(b.account));
}

export function UsageCard() {
  const usage = useAsync((signal) => api.usage(7, signal), []);
  const rows = usage.data ? usageTotals(usage.data) : [];
  const accounts = usage.data ? accountTotals(usage.data) : [];
  // One account only (everything in the default one): the per-person table says it all.
  const showAccounts = accounts.length > 1 || (accounts.length === 1 && accounts[0].account !== "(no account)");
  return (
    <section className="card" aria-labelledby="usage-h" data-testid="usage-card">
      <h2 id="usage-h">Usage, last 7 days</h2>
      {usage.error !== null && <ErrorBox error={usage.error} onRetry={usage.reload} />}
      {!usage.data && usage.loading && <Loading />}
      {usage.data && rows.length === 0 && <EmptyState title="No task has run in the last 7 days." />}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Person</th>
              <th scope="col" className="num">GPU-h</th>
              <th scope="col" className="num">CPU-h</th>
              <th scope="col" className="num" title="Decayed recent use in CPU-hour equivalents: lower runs first">
                Fair-share key
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.user}>
                <td>{r.user}</td>
                <td className="num">{r.gpu.toFixed(1)}</td>
                <td className="num">{r.cpu.toFixed(1)}</td>
                <td className="num">{r.share === null ? "—" : r.share.toFixed(1)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {showAccounts && (
        <table className="table" data-testid="usage-accounts">
          <thead>
            <tr>
              <th scope="col">Account</th>
              <th scope="col" className="num">GPU-h</th>
              <th scope="col" className="num">CPU-h</th>
              <th scope="col" className="num" title="The account's decayed recent use: added to each person's key">
                Fair-share key
              </th>
            </tr>
          </thead>
          <tbody>
            {accounts.map((r) => (
              <tr key={r.account}>
                <td>{r.account}</td>
                <td className="num">{r.gpu.toFixed(1)}</td>
                <td className="num">{r.cpu.toFixed(1)}</td>
                <td className="num">{r.share === null ? "—" : r.share.toFixed(1)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
