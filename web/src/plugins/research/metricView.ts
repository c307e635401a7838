/** How one metric is read on the experiment page: which direction is best (a default from its name, remembered per metric), EMA smoothing, log-scale ticks. */

export type Goal = "min" | "max";

const LOWER = /(loss|err|error|perplexity|ppl|mse|mae|rmse|nll|wer|cer|latency|time|regret|cost|distance)/i;
const HIGHER = /(acc|accuracy|f1|auc|reward|return|precision|recall|bleu|rouge|score|map|iou|dice|r2|top\d)/i;

/** The sensible default: loss/error/perplexity lower, acc/f1/auc/reward higher; unknown names lower. */
export function defaultGoal(metric: string): Goal {
  const last = metric.split(/[/.:]/).pop() ?? metric;
  if (HIGHER.test(last) && !LOWER.test(last)) return "max";
  if (LOWER.test(last)) return "min";
  return HIGHER.test(metric) ? "max" : "min";
}

const KEY = "unidesk.research.goal.";

/** The direction a person chose for this metric (remembered in this browser), else the default. */
export function loadGoal(metric: string): Goal {
  try {
    const v = window.localStorage.getItem(KEY + metric);
    if (v === "min" || v === "max") return v;
  } catch {
    /* storage disabled: the default */
  }
  return defaultGoal(metric);
}

/** Remember a chosen direction; choosing the default again forgets it. */
export function saveGoal(metric: string, goal: Goal): void {
  try {
    if (goal === defaultGoal(metric)) window.localStorage.removeItem(KEY + metric);
    else window.localStorage.setItem(KEY + metric, goal);
  } catch {
    /* storage disabled: the choice lasts for this page only */
  }
}

/** Exponential moving average (TensorBoard's, debiased): weight 0 is the raw values, 0.99 very smooth. */
export function ema(values: number[], weight: number): number[] {
  if (weight <= 0) return [...values];
  const out: number[] = [];
  let acc = 0;
  let norm = 0;
  for (const v of values) {
    acc = acc * weight + (1 - weight) * v;
    norm = norm * weight + (1 - weight);
    out.push(acc / norm);
  }
  return out;
}

/** Ticks for a log10 axis over [lo, hi] (both > 0): powers of ten, with 2 and 5 between when there are few decades. */
export function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const out: number[] = [];
  const steps = b - a <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil((b - a) / 6));
  for (let e = a; e <= b; e += 1) {
    if ((e - a) % every !== 0) continue;
    for (const m of steps) {
      const v = Number((m * 10 ** e).toPrecision(12));
      if (v >= lo * 0.999999 && v <= hi * 1.000001) out.push(v);
    }
  }
  if (out.length < 2) return [lo, hi];
  return out;
}
