import { describe, expect, it } from "vitest";
import { assignLayers, countCrossings, edgePath, layoutDag, type LayoutInput } from "./layout";

const n = (id: string, deps: string[] = [], height = 60): LayoutInput => ({ id, deps, height });

describe("assignLayers", () => {
  it("puts each node one layer right of its deepest dependency", () => {
    const l = assignLayers([n("prepare"), n("train", ["prepare"]), n("aggregate", ["train", "prepare"]), n("lint")]);
    expect(Object.fromEntries(l)).toEqual({ prepare: 0, train: 1, aggregate: 2, lint: 0 });
  });

  it("does not depend on the input order", () => {
    const l = assignLayers([n("c", ["b"]), n("b", ["a"]), n("a")]);
    expect([l.get("a"), l.get("b"), l.get("c")]).toEqual([0, 1, 2]);
  });

  it("ignores unknown dependencies and survives a cycle", () => {
    const l = assignLayers([n("a", ["ghost"]), n("b", ["c"]), n("c", ["b"]), n("self", ["self"])]);
    expect(l.get("a")).toBe(0);
    expect(l.get("self")).toBe(0);
    expect(new Set([l.get("b"), l.get("c")])).toEqual(new Set([0, 1]));
  });
});

describe("countCrossings", () => {
  it("counts pairs of segments that swap between two layers", () => {
    const segs = [[{ a: "a", b: "y" }, { a: "b", b: "x" }]];
    expect(countCrossings([["a", "b"], ["x", "y"]], segs)).toBe(1);
    expect(countCrossings([["a", "b"], ["y", "x"]], segs)).toBe(0);
  });
});

describe("layoutDag", () => {
  it("lays out the issue's pipeline in three columns with every edge drawn", () => {
    const lay = layoutDag([n("prepare"), n("train", ["prepare"], 120), n("aggregate", ["train"]), n("report-failure", ["train"])], {
      nodeWidth: 200,
      layerGap: 100,
    });
    expect(lay.layers).toBe(3);
    const at = Object.fromEntries(lay.nodes.map((p) => [p.id, p]));
    expect(at.prepare.x).toBe(0);
    expect(at.train.x).toBe(300);
    expect(at.aggregate.x).toBe(600);
    expect(at["report-failure"].x).toBe(600);
    expect(at.train.height).toBe(120);
    expect(lay.width).toBe(800);
    expect(lay.edges.map((e) => `${e.from}->${e.to}`).sort()).toEqual(["prepare->train", "train->aggregate", "train->report-failure"]);
    // Each edge leaves its source's right side and enters its target's left side.
    for (const e of lay.edges) {
      const s = at[e.from];
      const t = at[e.to];
      expect(e.points[0]).toEqual({ x: s.x + s.width, y: s.y + s.height / 2 });
      expect(e.points[e.points.length - 1]).toEqual({ x: t.x, y: t.y + t.height / 2 });
    }
    expect(lay.crossings).toBe(0);
  });

  it("stacks boxes of one layer without overlap and centres shorter columns", () => {
    const lay = layoutDag([n("a", [], 40), n("b", [], 100), n("c", [], 40), n("d", ["a", "b", "c"], 40)], { nodeGap: 10 });
    const col0 = lay.nodes.filter((p) => p.layer === 0).sort((p, q) => p.y - q.y);
    for (let i = 1; i < col0.length; i++) expect(col0[i].y).toBeGreaterThanOrEqual(col0[i - 1].y + col0[i - 1].height + 10);
    expect(lay.height).toBe(40 + 100 + 40 + 20);
    const d = lay.nodes.find((p) => p.id === "d")!;
    expect(d.y).toBe((lay.height - 40) / 2);
  });

  it("routes an edge that skips layers through a point in every column it crosses", () => {
    const lay = layoutDag([n("a"), n("b", ["a"]), n("c", ["b"]), n("d", ["a", "c"])]);
    const skip = lay.edges.find((e) => e.from === "a" && e.to === "d")!;
    // a (layer 0) → d (layer 3): out of a, across columns 1 and 2 (two points each), into d.
    expect(skip.points).toHaveLength(2 + 2 * 2);
    const xs = skip.points.map((p) => p.x);
    expect([...xs].sort((p, q) => p - q)).toEqual(xs);
    // The detour does not pass through b's or c's boxes.
    for (const id of ["b", "c"]) {
      const box = lay.nodes.find((p) => p.id === id)!;
      for (const p of skip.points) {
        if (p.x >= box.x && p.x <= box.x + box.width) expect(p.y < box.y || p.y > box.y + box.height).toBe(true);
      }
    }
  });

  it("reorders a layer to remove crossings the input order would make", () => {
    // Input order puts x1 over x2 but their parents the other way round: one crossing unless reordered.
    const input = [n("p1"), n("p2"), n("x2", ["p2"]), n("x1", ["p1"]), n("y", ["x1", "p2"])];
    const lay = layoutDag(input);
    expect(lay.crossings).toBe(0);
    const order = (id: string) => lay.nodes.find((p) => p.id === id)!.order;
    expect(Math.sign(order("p1") - order("p2"))).toBe(Math.sign(order("x1") - order("x2")));
  });

  it("reduces the crossings of a fan-out / fan-in (K2,3 through dummies) to the minimum", () => {
    const input = [n("a"), n("b"), n("m1", ["b"]), n("m2", ["a"]), n("m3", ["b"]), n("z", ["m1", "m2", "m3"])];
    const lay = layoutDag(input);
    expect(lay.crossings).toBe(0);
  });

  it("keeps the spec's order when nothing crosses, and handles empty input", () => {
    const lay = layoutDag([n("a"), n("b"), n("c")]);
    expect(lay.nodes.map((p) => p.order)).toEqual([0, 1, 2]);
    expect(layoutDag([])).toMatchObject({ nodes: [], edges: [], width: 0, height: 0, layers: 0 });
  });

  it("draws each dependency once even when listed twice", () => {
    const lay = layoutDag([n("a"), n("b", ["a", "a"])]);
    expect(lay.edges).toHaveLength(1);
  });
});

describe("edgePath", () => {
  it("curves between rows and runs straight along one", () => {
    expect(edgePath([{ x: 0, y: 10 }, { x: 100, y: 50 }])).toBe("M 0 10 C 50 10 50 50 100 50");
    expect(edgePath([{ x: 0, y: 10 }, { x: 100, y: 10 }])).toBe("M 0 10 L 100 10");
    expect(edgePath([])).toBe("");
  });
});
