import { describe, expect, it } from "vitest";
import { accountTotals, usageTotals } from "./UsageCard";

describe("usageTotals", () => {
  it("sums days per person, most GPU-hours first, with the fair-share key", () => {
    const rows = usageTotals({
      since: "2026-11-24",
      items: [
        { day: "2026-11-29", user_id: "a", username: "ann", attempts: 1, cpu_hours: 2, gpu_hours: 1, memory_gb_hours: 0 },
        { day: "2026-11-30", user_id: "a", username: "ann", attempts: 2, cpu_hours: 1, gpu_hours: 0.5, memory_gb_hours: 0 },
        { day: "2026-11-30", user_id: "b", username: "bo", attempts: 1, cpu_hours: 8, gpu_hours: 4, memory_gb_hours: 0 },
      ],
      fair_share: [{ user_id: "a", username: "ann", share_cpu_hours: 3.5 }],
      accounts: [],
      account_fair_share: [],
    });
    expect(rows).toEqual([
      { user: "bo", gpu: 4, cpu: 8, share: null },
      { user: "ann", gpu: 1.5, cpu: 3, share: 3.5 },
    ]);
  });

  it("sums days per account, the default account named, with the account's key", () => {
    const rows = accountTotals({
      since: "2026-11-24",
      items: [],
      fair_share: [],
      accounts: [
        { day: "2026-11-29", account: "apollo", attempts: 1, cpu_hours: 2, gpu_hours: 1, memory_gb_hours: 0 },
        { day: "2026-11-30", account: "apollo", attempts: 1, cpu_hours: 2, gpu_hours: 1, memory_gb_hours: 0 },
        { day: "2026-11-30", account: "", attempts: 3, cpu_hours: 9, gpu_hours: 0, memory_gb_hours: 0 },
      ],
      account_fair_share: [{ account: "apollo", share_cpu_hours: 5 }],
    });
    expect(rows).toEqual([
      { account: "apollo", gpu: 2, cpu: 4, share: 5 },
      { account: "(no account)", gpu: 0, cpu: 9, share: null },
    ]);
  });
});
