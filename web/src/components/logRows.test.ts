import { describe, expect, it } from "vitest";
import { placeLate } from "./logRows";

const row = (seq: number, n: number, text = `${seq}`) => ({ seq, n, text });

describe("placeLate", () => {
  it("puts a late chunk in its seq's place and renumbers the lines after it", () => {
    const rows = [row(2, 1, "b1"), row(2, 2, "b2"), row(3, 3)];
    const out = placeLate(rows, [[row(1, 0, "a1"), row(1, 0, "a2")]]);
    expect(out.map((r) => [r.seq, r.n, r.text])).toEqual([
      [1, 1, "a1"],
      [1, 2, "a2"],
      [2, 3, "b1"],
      [2, 4, "b2"],
      [3, 5, "3"],
    ]);
  });

  it("places a chunk between two and leaves one above every row out", () => {
    const out = placeLate([row(1, 1), row(3, 2)], [[row(2, 0)], [row(9, 0)]]);
    expect(out.map((r) => [r.seq, r.n])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
  });
});
