import { afterEach, describe, expect, it } from "vitest";
import { stepTicks } from "./MetricChart";
import { defaultGoal, ema, loadGoal, logTicks, saveGoal } from "./metricView";

describe("defaultGoal", () => {
  it("reads the direction from the metric's name", () => {
    for (const m of ["loss", "val_loss", "train/error", "perplexity", "ppl", "top1_err", "wer"]) expect(defaultGoal(m)).toBe("min");
    for (const m of ["acc", "val/accuracy", "f1", "auc", "reward", "mean_return", "bleu"]) expect(defaultGoal(m)).toBe("max");
    expect(defaultGoal("lr")).toBe("min");
  });
});

describe("remembered goals", () => {
  const store = new Map<string, string>();
  (globalThis as { window?: unknown }).window = {
    localStorage: {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => store.set(k, v),
      removeItem: (k: string) => store.delete(k),
    },
  };
  afterEach(() => store.clear());
  it("keeps a person's choice per metric and forgets it when the default is chosen again", () => {
    expect(loadGoal("acc")).toBe("max");
    saveGoal("acc", "min");
    expect(loadGoal("acc")).toBe("min");
    expect(loadGoal("loss")).toBe("min");
    saveGoal("acc", "max");
    expect(store.size).toBe(0);
  });
});

describe("ema", () => {
  it("is the raw series at weight 0 and debiased from the first value", () => {
    expect(ema([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const s = ema([10, 0, 0], 0.5);
    expect(s[0]).toBeCloseTo(10);
    expect(s[1]).toBeCloseTo(10 / 3);
    expect(s[2]).toBeLessThan(s[1]);
  });
});

describe("ticks", () => {
  it("log ticks are powers of ten (with 2 and 5 over few decades)", () => {
    expect(logTicks(0.001, 10)).toEqual([0.001, 0.01, 0.1, 1, 10]);
    expect(logTicks(0.1, 10)).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10]);
  });
  it("step ticks are round whole steps", () => {
    expect(stepTicks(0, 300)).toEqual([0, 100, 200, 300]);
    expect(stepTicks(0, 3)).toEqual([0, 1, 2, 3]);
    expect(stepTicks(1, 2).every(Number.isInteger)).toBe(true);
  });
});
