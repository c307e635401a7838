// Dashboard card: GPU- and CPU-hours per person and per account over the last 7 days, and who
// runs next (fair-share keys, lowest first; a task ranks by its person's key plus its
// account's). Reads GET /api/usage.
import { api } from "../api/client";
import type { Usage } from "../api/types";
import { useAsync } from "../state/hooks";
import { EmptyState, ErrorBox, Loading } from "./ui";

interface Totals {
  name: string;
  gpu: number;
  cpu: number;
  share: number | null;
}

/** Sums days per key (most GPU-hours first) and attaches each key's fair-share key. */
function totals(
  days: { key: string; name: string; gpu_hours: number; cpu_hours: number }[],
  shares: { key: string; name: string; share: number }[],
): Totals[] {
  const by = new Map<string, Totals>();
  const row = (key: string, name: string) => {
    let r = by.get(key);
    if (!r) by.set(key, (r = { name, gpu: 0, cpu: 0, share: null }));
    return r;
  };
  for (const d of days) {
    const r = row(d.key, d.name);
    r.gpu += d.gpu_hours;
    r.cpu += d.cpu_hours;
  }
  for (const f of shares) row(f.key, f.name).share = f.share;
  return [...by.values()].sort((a, b) => b.gpu - a.gpu || b.cpu - a.cpu || a.name.localeCompare(b.name));
}

export function usageTotals(u: Usage): { user: string; gpu: number; cpu: number; share: number | null }[] {
  return totals(
    u.items.map((d) => ({ ...d, key: d.user_id ?? "", name: d.username ?? "(deleted)" })),
    u.fair_share.map((f) => ({ key: f.user_id ?? "", name: f.username ?? "(deleted)", share: f.share_cpu_hours })),
  ).map(({ name, ...r }) => ({ user: name, ...r }));
}

const accountName = (a: string) => (a === "" ? "(no account)" : a);

/** The same per account ("" shows as "(no account)"); only accounts that ran or have a key. */
export function accountTotals(u: Usage): { account: string; gpu: number; cpu: number; share: number | null }[] {
  return totals(
    (u.accounts ?? []).map((d) => ({ ...d, key: d.account, name: accountName(d.account) })),
    (u.account_fair_share ?? []).map((f) => ({ key: f.account, name: accountName(f.account), share: f.share_cpu_hours })),
  ).map(({ name, ...r }) => ({ account: name, ...r }));
}

function HoursTable({ who, rows, shareTitle, testId }: { who: string; rows: Totals[]; shareTitle: string; testId?: string }) {
  return (
    <table className="table" data-testid={testId}>
      <thead>
        <tr>
          <th scope="col">{who}</th>
          <th scope="col" className="num">GPU-h</th>
          <th scope="col" className="num">CPU-h</th>
          <th scope="col" className="num" title={shareTitle}>
            Fair-share key
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.name}>
            <td>{r.name}</td>
            <td className="num">{r.gpu.toFixed(1)}</td>
            <td className="num">{r.cpu.toFixed(1)}</td>
            <td className="num">{r.share === null ? "—" : r.share.toFixed(1)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function UsageCard() {
  const usage = useAsync((signal) => api.usage(7, signal), []);
  const people = usage.data ? usageTotals(usage.data).map(({ user, ...r }) => ({ name: user, ...r })) : [];
  const accounts = usage.data ? accountTotals(usage.data).map(({ account, ...r }) => ({ name: account, ...r })) : [];
  // One account only (everything in the default one): the per-person table says it all.
  const showAccounts = accounts.length > 1 || (accounts.length === 1 && accounts[0].name !== "(no account)");
  return (
    <section className="card" aria-labelledby="usage-h" data-testid="usage-card">
      <h2 id="usage-h">Usage, last 7 days</h2>
      {usage.error !== null && <ErrorBox error={usage.error} onRetry={usage.reload} />}
      {!usage.data && usage.loading && <Loading />}
      {usage.data && people.length === 0 && <EmptyState title="No task has run in the last 7 days." />}
      {people.length > 0 && (
        <HoursTable who="Person" rows={people} shareTitle="Decayed recent use in CPU-hour equivalents: lower runs first" />
      )}
      {showAccounts && (
        <HoursTable
          who="Account"
          rows={accounts}
          shareTitle="The account's decayed recent use: added to each person's key"
          testId="usage-accounts"
        />
      )}
    </section>
  );
}
