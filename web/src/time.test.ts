import { describe, expect, it } from "vitest";
import {
  axisTicks,
  datetimeLocalToIso,
  fileStamp,
  formatDate,
  formatDateTime,
  formatDuration,
  formatRelative,
  formatShort,
  formatTime,
  formatTitle,
  isoInTextToBeijing,
  isoToDatetimeLocal,
  toApiIso,
  toMs,
} from "./time";

describe("the test run's time zone", () => {
  it("is really in effect (so the Beijing assertions below mean something)", () => {
    const jan = new Date(Date.UTC(2026, 0, 15, 12)).getTimezoneOffset();
    const expected: Record<string, number> = {
      UTC: 0,
      "America/New_York": 300,
      "Asia/Shanghai": -480,
      "Pacific/Auckland": -780,
      "Pacific/Kiritimati": -840,
    };
    const tz = process.env.TZ;
    if (tz && tz in expected) expect(jan).toBe(expected[tz]);
  });
});

describe("formatting in Beijing time", () => {
  it("adds eight hours to UTC, whatever the host zone", () => {
    expect(formatDateTime("2026-11-27T10:30:05.123456Z")).toBe("2026-11-27 18:30:05");
    expect(formatDateTime("2026-11-27T10:30:05Z", { seconds: false })).toBe("2026-11-27 18:30");
    expect(formatDateTime("2026-11-27T10:30:05.123456Z", { millis: true })).toBe("2026-11-27 18:30:05.123");
    expect(formatDateTime("2026-11-27T10:30:05Z", { millis: true })).toBe("2026-11-27 18:30:05.000");
    expect(formatTime("2026-11-27T10:30:05Z")).toBe("18:30:05");
    expect(formatDate("2026-11-27T10:30:05Z")).toBe("2026-11-27");
  });

  it("rolls the date over at Beijing midnight, not local midnight", () => {
    expect(formatDateTime("2026-11-27T15:59:59Z")).toBe("2026-11-27 23:59:59");
    expect(formatDateTime("2026-11-27T16:00:00Z")).toBe("2026-11-28 00:00:00");
    expect(formatDateTime("2026-12-31T16:00:00Z")).toBe("2027-01-01 00:00:00");
  });

  it("is unaffected by daylight-saving changes elsewhere", () => {
    // New York springs forward 2026-03-08 07:00Z; Auckland falls back 2026-04-05 14:00Z.
    expect(formatDateTime("2026-03-08T06:30:00Z")).toBe("2026-03-08 14:30:00");
    expect(formatDateTime("2026-03-08T07:30:00Z")).toBe("2026-03-08 15:30:00");
    expect(formatDateTime("2026-04-05T13:30:00Z")).toBe("2026-04-05 21:30:00");
    expect(formatDateTime("2026-04-05T14:30:00Z")).toBe("2026-04-05 22:30:00");
  });

  it("accepts offsets, Date objects and epoch milliseconds", () => {
    expect(formatDateTime("2026-11-27T18:30:05+08:00")).toBe("2026-11-27 18:30:05");
    expect(formatDateTime("2026-11-27T05:30:05-05:00")).toBe("2026-11-27 18:30:05");
    expect(formatDateTime("2026-11-27T10:30:05")).toBe("2026-11-27 18:30:05");
    const ms = Date.UTC(2026, 10, 27, 10, 30, 5);
    expect(formatDateTime(ms)).toBe("2026-11-27 18:30:05");
    expect(formatDateTime(new Date(ms))).toBe("2026-11-27 18:30:05");
    expect(toMs("2026-11-27T10:30:05.123456Z")).toBe(ms + 123);
  });

  it("shows a dash for missing or invalid values", () => {
    expect(formatDateTime(null)).toBe("—");
    expect(formatDateTime(undefined)).toBe("—");
    expect(formatDateTime("yesterday")).toBe("—");
    expect(formatTitle(null)).toBe("");
  });

  it("names the zone in titles", () => {
    expect(formatTitle("2026-11-27T10:30:05Z")).toBe("2026-11-27 18:30:05 Beijing time (UTC+8)");
  });

  it("shortens by the Beijing calendar day", () => {
    const now = toMs("2026-11-27T15:00:00Z"); // 23:00 Beijing
    expect(formatShort("2026-11-27T14:00:00Z", now)).toBe("22:00:00");
    expect(formatShort("2026-11-26T15:59:00Z", now)).toBe("11-26 23:59");
    expect(formatShort("2025-11-26T15:59:00Z", now)).toBe("2025-11-26 23:59");
    // 2026-11-27T16:30Z is already 11-28 in Beijing.
    expect(formatShort("2026-11-27T16:30:00Z", toMs("2026-11-27T17:00:00Z"))).toBe("00:30:00");
  });
});

describe("relative times and durations", () => {
  const now = toMs("2026-11-27T10:00:00Z");
  it("reads naturally", () => {
    expect(formatRelative("2026-11-27T09:59:58Z", now)).toBe("just now");
    expect(formatRelative("2026-11-27T09:59:18Z", now)).toBe("42 s ago");
    expect(formatRelative("2026-11-27T09:57:00Z", now)).toBe("3 min ago");
    expect(formatRelative("2026-11-27T05:00:00Z", now)).toBe("5 h ago");
    expect(formatRelative("2026-11-25T10:00:00Z", now)).toBe("2 d ago");
    expect(formatRelative("2026-11-27T10:03:00Z", now)).toBe("in 3 min");
  });
  it("formats durations", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(12_340)).toBe("12.3 s");
    expect(formatDuration(185_000)).toBe("3m 05s");
    expect(formatDuration(3_720_000)).toBe("1h 02m");
    expect(formatDuration(-1)).toBe("—");
  });
});

describe("chart axis ticks", () => {
  it("falls on round Beijing hours", () => {
    const start = toMs("2026-11-27T00:10:00Z"); // 08:10 Beijing
    const end = toMs("2026-11-27T06:10:00Z"); // 14:10 Beijing
    const ticks = axisTicks(start, end, 6);
    expect(ticks.map((t) => t.label)).toEqual(["09:00", "10:00", "11:00", "12:00", "13:00", "14:00"]);
    for (const t of ticks) expect(t.ms).toBeGreaterThanOrEqual(start);
  });
  it("labels Beijing midnight with the date across days", () => {
    const start = toMs("2026-11-27T04:00:00Z"); // 12:00 Beijing
    const end = toMs("2026-11-28T04:00:00Z");
    const labels = axisTicks(start, end, 8).map((t) => t.label);
    expect(labels).toContain("11-28");
    expect(labels).toContain("12:00");
    expect(labels).not.toContain("00:00");
  });
  it("uses 6-hour steps aligned to Beijing clock", () => {
    const start = toMs("2026-11-26T16:00:00Z"); // 00:00 Beijing 11-27
    const labels = axisTicks(start, start + 24 * 3600_000, 5).map((t) => t.label);
    expect(labels).toEqual(["11-27", "06:00", "12:00", "18:00", "11-28"]);
  });
  it("is empty for an empty range", () => {
    expect(axisTicks(10, 10)).toEqual([]);
  });
});

describe("datetime-local inputs are Beijing time", () => {
  it("converts input to UTC ISO", () => {
    expect(datetimeLocalToIso("2026-11-27T18:30")).toBe("2026-11-27T10:30:00.000Z");
    expect(datetimeLocalToIso("2026-11-28T00:15:30")).toBe("2026-11-27T16:15:30.000Z");
    expect(datetimeLocalToIso("2026-03-08T15:30")).toBe("2026-03-08T07:30:00.000Z");
  });
  it("rejects invalid input", () => {
    expect(datetimeLocalToIso("")).toBeNull();
    expect(datetimeLocalToIso("2026-02-30T10:00")).toBeNull();
    expect(datetimeLocalToIso("2026-11-27 18:30")).toBeNull();
    expect(datetimeLocalToIso("2026-11-27T25:00")).toBeNull();
  });
  it("round-trips", () => {
    const iso = "2026-11-27T16:45:00.000Z";
    expect(isoToDatetimeLocal(iso)).toBe("2026-11-28T00:45");
    expect(datetimeLocalToIso(isoToDatetimeLocal(iso))).toBe(iso);
    expect(isoToDatetimeLocal(null)).toBe("");
  });
});

describe("API and file-name stamps", () => {
  it("produces UTC ISO for the API", () => {
    expect(toApiIso(Date.UTC(2026, 10, 27, 10, 30))).toBe("2026-11-27T10:30:00.000Z");
    expect(() => toApiIso("nope")).toThrow(RangeError);
  });
  it("stamps export names in Beijing time", () => {
    expect(fileStamp("2026-11-27T10:30:59Z")).toBe("20261127-1830");
    expect(fileStamp("2026-11-27T16:05:00Z")).toBe("20261128-0005");
  });
});

describe("ISO instants inside server messages", () => {
  it("become Beijing time with the zone named", () => {
    expect(isoInTextToBeijing("last backup failed at 2026-11-27T19:24:47+00:00: disk full")).toBe(
      "last backup failed at 2026-11-28 03:24:47 UTC+8: disk full",
    );
    expect(isoInTextToBeijing("since 2026-01-01T00:00:00.123Z and 2026-06-30T23:30Z")).toBe(
      "since 2026-01-01 08:00:00 UTC+8 and 2026-07-01 07:30:00 UTC+8",
    );
  });
  it("leaves zone-less stamps and plain text alone", () => {
    expect(isoInTextToBeijing("scheduled at 2026-11-27T19:24")).toBe("scheduled at 2026-11-27T19:24");
    expect(isoInTextToBeijing("docker unreachable: no such file")).toBe("docker unreachable: no such file");
  });
});

describe("typed Beijing dates", () => {
  it("reads YYYY-MM-DD (and near misses) as a real calendar day", async () => {
    const { parseDay, parseDateTime, formatDateTimeInput } = await import("./time");
    expect(parseDay("2026-12-04")).toBe("2026-12-04");
    expect(parseDay(" 2026-12-4 ")).toBe("2026-12-04");
    expect(parseDay("2026/12/04")).toBe("2026-12-04");
    expect(parseDay("2026-02-30")).toBeNull();
    expect(parseDay("12/04/2026")).toBeNull();
    expect(parseDay("")).toBeNull();
    // 18:30 in Beijing is 10:30 UTC, whatever the browser's zone
    expect(parseDateTime("2026-11-27 18:30")).toBe("2026-11-27T10:30:00.000Z");
    expect(parseDateTime("2026-11-27T18:30")).toBe("2026-11-27T10:30:00.000Z");
    expect(parseDateTime("2026-11-27 24:00")).toBeNull();
    expect(formatDateTimeInput("2026-11-27T10:30:00Z")).toBe("2026-11-27 18:30");
  });
});
