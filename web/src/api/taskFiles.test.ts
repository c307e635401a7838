import { describe, expect, it } from "vitest";
import { EMPTY_TASK_FORM, buildTaskCreate } from "./taskForm";
import { inputPathError, outputPatternError, parseInputs, parseOutputs } from "./taskFiles";

const SHA = "a".repeat(40);
const BASE = { ...EMPTY_TASK_FORM, code_repo_url: "https://e/c", code_commit_id: SHA, env_repo_url: "https://e/e", env_commit_id: SHA, command: "true" };

describe("task files mirror the API's rules", () => {
  it("accepts mount paths under /workspace or /inputs only", () => {
    expect(inputPathError("/inputs/data.csv")).toBeNull();
    expect(inputPathError("/workspace/data/train.csv")).toBeNull();
    expect(inputPathError("/etc/passwd")).toMatch(/under \/workspace or \/inputs/);
    expect(inputPathError("/workspace/outputs/x")).toMatch(/not \/workspace\/outputs/);
    expect(inputPathError("/workspace/outputs")).not.toBeNull();
    expect(inputPathError("/inputs/../etc/x")).toMatch(/normalised/);
    expect(inputPathError("/inputs//x")).toMatch(/normalised/);
    expect(inputPathError("/inputs/x/")).toMatch(/normalised/);
    expect(inputPathError("inputs/x")).toMatch(/absolute/);
    expect(inputPathError("/workspace")).not.toBeNull();
  });
  it("accepts output paths and globs under /workspace/outputs", () => {
    for (const ok of ["result.txt", "checkpoints/*.pt", "/workspace/outputs/model/", "**/*.json"]) expect(outputPatternError(ok)).toBeNull();
    for (const bad of ["/tmp/x", "../x", "a/../../x", "/workspace/outputs", "/workspace/outputs/", "a//b", "./x", ""]) {
      expect(outputPatternError(bad), bad).not.toBeNull();
    }
  });
  it("parses input lines with optional mount paths and refuses clashes", () => {
    const ok = parseInputs("data/train.csv\n# comment\n\nvocab.txt -> /workspace/vocab.txt\n123e4567-e89b-12d3-a456-426614174000");
    expect(ok.error).toBeNull();
    expect(ok.value).toEqual([
      { artifact: "data/train.csv" },
      { artifact: "vocab.txt", path: "/workspace/vocab.txt" },
      { artifact: "123e4567-e89b-12d3-a456-426614174000" },
    ]);
    expect(parseInputs("a/x.csv\nb/x.csv").error).toMatch(/two inputs mounted at \/inputs\/x.csv/);
    expect(parseInputs("x -> /etc/x").error).toMatch(/^Line 1: .*under \/workspace/);
    expect(parseInputs("has space -> /inputs/a b").error).toMatch(/^Line 1/);
    expect(parseInputs("../x").error).toMatch(/not an artifact name/);
    expect(parseInputs(Array.from({ length: 65 }, (_, i) => `f${i}`).join("\n")).error).toMatch(/At most 64/);
  });
  it("parses outputs and puts both into the request body", () => {
    expect(parseOutputs("result.txt\n/workspace/outputs/logs/*.log").value).toEqual(["result.txt", "/workspace/outputs/logs/*.log"]);
    expect(parseOutputs("ok.txt\n/etc/shadow").error).toMatch(/^Line 2/);
    const { body, errors } = buildTaskCreate({ ...BASE, inputs: "ds.csv", outputs: "result.txt" });
    expect(errors).toEqual({});
    expect(body).toMatchObject({ inputs: [{ artifact: "ds.csv" }], outputs: ["result.txt"] });
    expect(buildTaskCreate(BASE).body).not.toHaveProperty("inputs");
    expect(Object.keys(buildTaskCreate({ ...BASE, inputs: "x -> /root/x", outputs: "../x" }).errors).sort()).toEqual(["inputs", "outputs"]);
  });
});
