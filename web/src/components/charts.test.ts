import { describe, expect, it } from "vitest";
import { formatTick, niceTicks } from "./charts";

describe("axis ticks", () => {
  it("labels keep their gridline's value", () => {
    expect([0, 2.5, 5, 7.5, 10].map(formatTick)).toEqual(["0", "2.5", "5", "7.5", "10"]);
  });
  it("covers the data with round steps", () => {
    expect(niceTicks(0.1, 0.95)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(niceTicks(0.2627, 0.3)).toEqual([0.26, 0.27, 0.28, 0.29, 0.3]);
    expect(niceTicks(3, 97)).toEqual([0, 25, 50, 75, 100]);
  });
});
