/** Calendar-day arithmetic in Beijing time, built only on web/src/time.ts. */
import { formatDate, toMs } from "../../time";

export const DAY_MS = 86_400_000;

/** Epoch ms of 00:00 Beijing time on day "YYYY-MM-DD". */
export function dayStartMs(day: string): number {
  return toMs(`${day}T00:00:00+08:00`);
}

/** The Beijing calendar day of an instant. */
export function dayOf(ms: number): string {
  return formatDate(ms);
}

export function addDays(day: string, n: number): string {
  return dayOf(dayStartMs(day) + n * DAY_MS + DAY_MS / 2);
}

/** Whole days from a to b (b - a). */
export function daysBetween(a: string, b: string): number {
  return Math.round((dayStartMs(b) - dayStartMs(a)) / DAY_MS);
}

/** 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday). */
export function weekday(day: string): number {
  const n = Math.round((dayStartMs(day) + 8 * 3600_000) / DAY_MS);
  return (((n + 3) % 7) + 7) % 7;
}

export function today(): string {
  return dayOf(Date.now());
}
