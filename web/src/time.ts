/**
 * Every date the UI shows or reads goes through this module: Beijing time
 * (Asia/Shanghai, UTC+8, no daylight saving), whatever the browser's time zone.
 *
 * Fixed +8 h arithmetic on UTC fields keeps it independent of the host TZ and of
 * the browser's ICU data. Nothing else in web/src may format dates
 * (tests/browser/test_time_policy.py enforces it).
 */

export const BEIJING_OFFSET_MS = 8 * 3600 * 1000;
export const TIME_ZONE_LABEL = "Beijing time (UTC+8)";
/** The label where a phone's top bar has no room for the long one. */
export const TIME_ZONE_NARROW = "Beijing UTC+8";
export const TIME_ZONE_SHORT = "UTC+8";

export type Instant = string | number | Date | null | undefined;

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** Milliseconds since the epoch for an ISO string (UTC when it has no offset), a Date or a number; NaN when invalid. */
export function toMs(value: Instant): number {
  if (value === null || value === undefined || value === "") return NaN;
  if (typeof value === "number") return value;
  if (value instanceof Date) return value.getTime();
  const m = ISO_RE.exec(value.trim());
  if (!m) return NaN;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = m;
  const ms = frac ? Math.floor(Number(frac.slice(0, 3).padEnd(3, "0"))) : 0;
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  if (zone && zone.toUpperCase() !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const offMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || "0");
    t -= sign * offMin * 60000;
  }
  return t;
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function beijingParts(ms: number): Parts {
  const d = new Date(ms + BEIJING_OFFSET_MS);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
  };
}

const p2 = (n: number) => String(n).padStart(2, "0");

const DASH = "—";

/** "2026-11-27 18:30:05" in Beijing time ("…:05.123" with millis); "—" for a missing or invalid value. */
export function formatDateTime(value: Instant, opts: { seconds?: boolean; millis?: boolean } = {}): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) return DASH;
  const p = beijingParts(ms);
  const base = `${p.year}-${p2(p.month)}-${p2(p.day)} ${p2(p.hour)}:${p2(p.minute)}`;
  if (opts.seconds === false) return base;
  const frac = opts.millis ? `.${String(((ms % 1000) + 1000) % 1000).padStart(3, "0")}` : "";
  return `${base}:${p2(p.second)}${frac}`;
}

/** "2026-11-27" (Beijing date). */
export function formatDate(value: Instant): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) return DASH;
  const p = beijingParts(ms);
  return `${p.year}-${p2(p.month)}-${p2(p.day)}`;
}

/** "18:30:05" (Beijing clock). */
export function formatTime(value: Instant): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) return DASH;
  const p = beijingParts(ms);
  return `${p2(p.hour)}:${p2(p.minute)}:${p2(p.second)}`;
}

/** Compact form for tables: clock only when on today's Beijing date, else "11-27 18:30", else full date. */
export function formatShort(value: Instant, now: number = Date.now()): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) return DASH;
  const p = beijingParts(ms);
  const n = beijingParts(now);
  if (p.year === n.year && p.month === n.month && p.day === n.day) return formatTime(ms);
  if (p.year === n.year) return `${p2(p.month)}-${p2(p.day)} ${p2(p.hour)}:${p2(p.minute)}`;
  return formatDateTime(ms, { seconds: false });
}

const ISO_IN_TEXT_RE = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)(?!\d)/g;

/**
 * Server messages can carry ISO instants ("last backup failed at 2026-11-27T19:24:47+00:00: …"):
 * each one with a zone becomes Beijing time, named ("2026-11-28 03:24:47 UTC+8"). Zone-less ones stay as they are.
 */
export function isoInTextToBeijing(text: string): string {
  return text.replace(ISO_IN_TEXT_RE, (iso) => {
    const ms = toMs(iso);
    return Number.isNaN(ms) ? iso : `${formatDateTime(ms)} ${TIME_ZONE_SHORT}`;
  });
}

/** Title text for a timestamp: full Beijing date-time with the zone named. */
export function formatTitle(value: Instant): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) return "";
  return `${formatDateTime(ms)} ${TIME_ZONE_LABEL}`;
}

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago" (or "in 3 min" for the future). */
export function formatRelative(value: Instant, now: number = Date.now()): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) return DASH;
  const diff = now - ms;
  const abs = Math.abs(diff);
  if (abs < 5000) return "just now";
  let text: string;
  if (abs < 60_000) text = `${Math.floor(abs / 1000)} s`;
  else if (abs < 3_600_000) text = `${Math.floor(abs / 60_000)} min`;
  else if (abs < 86_400_000) text = `${Math.floor(abs / 3_600_000)} h`;
  else text = `${Math.floor(abs / 86_400_000)} d`;
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** Human duration: "850 ms", "12.3 s", "3m 05s", "1h 02m", "2d 03h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return DASH;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${p2(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${p2(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${p2(Math.floor((s % 86400) / 3600))}h`;
}

/** Duration between two instants (end defaults to now); NaN when start is missing. */
export function elapsedMs(start: Instant, end: Instant = null, now: number = Date.now()): number {
  const a = toMs(start);
  const b = end === null || end === undefined ? now : toMs(end);
  return b - a;
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const TICK_STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR];

export interface AxisTick {
  ms: number;
  label: string;
}

/** Chart axis ticks on round Beijing clock times between start and end, at most maxTicks of them. */
export function axisTicks(startMs: number, endMs: number, maxTicks = 6): AxisTick[] {
  if (!(endMs > startMs) || maxTicks < 1) return [];
  const span = endMs - startMs;
  const step = TICK_STEPS.find((s) => span / s <= maxTicks) ?? Math.ceil(span / maxTicks / (24 * HOUR)) * 24 * HOUR;
  const first = Math.ceil((startMs + BEIJING_OFFSET_MS) / step) * step - BEIJING_OFFSET_MS;
  const multiDay = formatDate(startMs) !== formatDate(endMs);
  const ticks: AxisTick[] = [];
  for (let t = first; t <= endMs && ticks.length < 500; t += step) {
    const p = beijingParts(t);
    const atMidnight = p.hour === 0 && p.minute === 0;
    const label =
      step >= 24 * HOUR || (multiDay && atMidnight) ? `${p2(p.month)}-${p2(p.day)}` : `${p2(p.hour)}:${p2(p.minute)}`;
    ticks.push({ ms: t, label });
  }
  return ticks;
}

/** Reads an <input type="datetime-local"> value as Beijing time; ISO UTC for the API, or null when invalid. */
export function datetimeLocalToIso(value: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h, mi, s = "0", frac = "0"] = m;
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(frac.padEnd(3, "0")));
  const check = new Date(utc);
  if (check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59) {
    return null;
  }
  return new Date(utc - BEIJING_OFFSET_MS).toISOString();
}

/** A typed Beijing calendar day ("2026-12-04"; "2026-12-4" and "2026/12/04" accepted) as "YYYY-MM-DD", or null when it is no real date. */
export function parseDay(text: string): string | null {
  const m = /^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$/.exec(text.trim());
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const check = new Date(Date.UTC(y, mo - 1, d));
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
  return `${m[1]}-${p2(mo)}-${p2(d)}`;
}

/** A typed Beijing time "YYYY-MM-DD HH:MM" (or with "T") as ISO UTC, or null when invalid. */
export function parseDateTime(text: string): string | null {
  const m = /^(\S+)[ T](\d{1,2}):(\d{2})$/.exec(text.trim());
  const day = m ? parseDay(m[1]) : null;
  return m && day ? datetimeLocalToIso(`${day}T${p2(Number(m[2]))}:${m[3]}`) : null;
}

/** How a Beijing instant is typed: "2026-11-27 18:30". */
export function formatDateTimeInput(value: Instant): string {
  return isoToDatetimeLocal(value).replace("T", " ");
}

/** The value for an <input type="datetime-local"> showing this instant in Beijing time ("2026-11-27T18:30"). */
export function isoToDatetimeLocal(value: Instant): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) return "";
  const p = beijingParts(ms);
  return `${p.year}-${p2(p.month)}-${p2(p.day)}T${p2(p.hour)}:${p2(p.minute)}`;
}

/** ISO UTC string for API query parameters (never shown to people). */
export function toApiIso(value: Instant): string {
  const ms = toMs(value);
  if (Number.isNaN(ms)) throw new RangeError(`invalid instant: ${String(value)}`);
  return new Date(ms).toISOString();
}

/** Beijing stamp for export file names: "20261127-1830". */
export function fileStamp(value: Instant = Date.now()): string {
  const ms = toMs(value);
  const p = beijingParts(Number.isNaN(ms) ? Date.now() : ms);
  return `${p.year}${p2(p.month)}${p2(p.day)}-${p2(p.hour)}${p2(p.minute)}`;
}
