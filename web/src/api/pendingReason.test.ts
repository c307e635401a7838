import { describe, expect, it } from "vitest";
import { pendingReasonText } from "./pendingReason";

const base = { state: "pending" as const, pending_detail: null, ranked_ahead: null, not_before: null };

describe("pendingReasonText", () => {
  it("is null unless the task is pending with a reason", () => {
    expect(pendingReasonText({ ...base, state: "running", pending_reason: "no_node_fits" })).toBeNull();
    expect(pendingReasonText({ ...base, pending_reason: null })).toBeNull();
  });
  it("says how many are ranked ahead and which node is reserved", () => {
    expect(
      pendingReasonText({ ...base, pending_reason: "waiting_for_resources", ranked_ahead: 3, pending_detail: { reserved_node: "gpu-1" } }),
    ).toBe("Waiting for resources · 3 ranked ahead · node gpu-1 reserved for it");
  });
  it("shows the retry time in Beijing time", () => {
    expect(pendingReasonText({ ...base, pending_reason: "retry_backoff", not_before: "2026-11-30T14:05:00Z" })).toBe(
      "Retry backoff · until 2026-11-30 22:05:00",
    );
  });
  it("carries the message of no_node_fits and over_quota", () => {
    expect(pendingReasonText({ ...base, pending_reason: "over_quota", pending_detail: { message: "owner holds 2 of 2 GPUs" } })).toBe(
      "Over quota · owner holds 2 of 2 GPUs",
    );
    expect(pendingReasonText({ ...base, pending_reason: "held_for_reservation", pending_detail: { node: "n1" } })).toBe(
      "Held for a reservation · node n1 is reserved for a higher-ranked task",
    );
  });
});
