import { describe, expect, it } from "vitest";
import { BOX_HEAD, MAX_POINTS_SHOWN, POINT_ROW, boxHeight, countsText, declaredInputs, edgeLabel, filesIn, pipelineEdges, pointLabel, pointLook, stepLook } from "./dagModel";
import { sortPipelines } from "./listSort";
import type { PipelineSummary, Step } from "./types";

const step = (name: string, extra: Partial<Step> = {}): Step => ({
  name,
  state: "waiting",
  depends_on: [],
  when: "on_success",
  matrix: null,
  points: [],
  inputs: [],
  outputs: [],
  round: 0,
  reason: null,
  ...extra,
});

describe("pipelineEdges", () => {
  it("gives one edge per dependency with the files it carries, and one for an input from an undeclared dependency", () => {
    const steps = [
      step("prepare"),
      step("train", { depends_on: ["prepare"], inputs: [{ from_step: "prepare", path: "data.csv", artifact_ids: [], mount: "/inputs/prepare/0/data.csv" }] }),
      step("aggregate", {
        depends_on: ["train"],
        inputs: [
          { from_step: "train", path: "model.pt", artifact_ids: ["a", "b"], mount: "/inputs/train/0/model.pt" },
          { from_step: "prepare", path: "data.csv", artifact_ids: [], mount: "/inputs/prepare/0/data.csv" },
        ],
      }),
      step("report", { depends_on: ["train", "ghost"], when: "on_failure" }),
    ];
    const edges = pipelineEdges({ steps });
    expect(edges).toEqual([
      { from: "prepare", to: "train", files: ["data.csv"], when: "on_success" },
      { from: "train", to: "aggregate", files: ["model.pt"], when: "on_success" },
      { from: "prepare", to: "aggregate", files: ["data.csv"], when: "on_success" },
      { from: "train", to: "report", files: [], when: "on_failure" },
    ]);
    expect(edges.map(edgeLabel)).toEqual(["data.csv", "model.pt", "data.csv", "on failure"]);
  });
});

describe("files between steps", () => {
  it("are known from the spec before a step starts, and from its resolved inputs after", () => {
    const spec = {
      name: "x",
      steps: [
        { name: "prepare", task: {} },
        { name: "train", task: { inputs: [{ from: "prepare/data/x.csv" }, { from: "prepare/b.bin" }, "plain-artifact-id"] } },
      ],
    };
    const waiting = [step("prepare"), step("train", { depends_on: ["prepare"] })];
    expect(pipelineEdges({ steps: waiting, spec })).toEqual([{ from: "prepare", to: "train", files: ["data/x.csv", "b.bin"], when: "on_success" }]);
    const started = step("train", { depends_on: ["prepare"], inputs: [{ from_step: "prepare", path: "b.bin", artifact_ids: ["a1"], mount: "/inputs/prepare/0/b.bin" }] });
    expect(filesIn({ spec }, started)).toEqual([
      { from_step: "prepare", path: "b.bin", artifact_ids: ["a1"], mount: "/inputs/prepare/0/b.bin" },
      { from_step: "prepare", path: "data/x.csv", artifact_ids: [] },
    ]);
    expect(declaredInputs(null, "train")).toEqual([]);
  });
});

describe("step looks", () => {
  it("never rely on colour alone: every state has an icon and a word", () => {
    for (const s of ["waiting", "ready", "running", "succeeded", "failed", "skipped", "cancelled"]) {
      const look = stepLook(s);
      expect(look.icon).not.toBe("");
      expect(look.label).toBe(s);
    }
    expect(stepLook("new-state")).toMatchObject({ label: "new-state", tone: "neutral" });
    expect(pointLook(null).label).toBe("no task yet");
    expect(pointLook("preparing")).toMatchObject({ tone: "info", label: "preparing" });
  });

  it("sizes a matrix box by its points, capped", () => {
    expect(boxHeight(step("a"))).toBe(BOX_HEAD);
    const pts = (n: number) => Array.from({ length: n }, (_, i) => ({ index: i, params: { lr: i }, task_id: null, task_state: null }));
    expect(boxHeight(step("m", { matrix: { lr: [1, 2] }, points: pts(2) }))).toBe(BOX_HEAD + 2 * POINT_ROW + 6);
    expect(boxHeight(step("m", { matrix: { lr: [] }, points: pts(40) }))).toBe(BOX_HEAD + (MAX_POINTS_SHOWN + 1) * POINT_ROW + 6);
    expect(pointLabel({ lr: 0.1, opt: "adam" })).toBe("lr=0.1 opt=adam");
  });

  it("writes step counts in state order", () => {
    expect(countsText({ running: 1, succeeded: 2, waiting: 0 })).toBe("1 running · 2 succeeded");
  });
});

describe("sortPipelines", () => {
  const p = (name: string, created: string, state = "running"): PipelineSummary =>
    ({ id: name, name, state, owner_id: null, owner: null, created_at: created, finished_at: null, step_counts: {} }) as PipelineSummary;
  it("sorts by name or creation time and keeps the server order on ties", () => {
    const items = [p("b", "2026-11-30T10:00:00Z"), p("a", "2026-11-30T12:00:00Z"), p("c", "2026-11-30T11:00:00Z")];
    expect(sortPipelines(items, "name", "asc").map((x) => x.name)).toEqual(["a", "b", "c"]);
    expect(sortPipelines(items, "created", "desc").map((x) => x.name)).toEqual(["a", "c", "b"]);
    expect(sortPipelines(items, "state", "asc").map((x) => x.name)).toEqual(["b", "a", "c"]);
  });
});
