import { describe, expect, it } from "vitest";
import { reasonSentence } from "./healthReason";

describe("reasonSentence", () => {
  it("says what a failing check means before the server's words", () => {
    expect(reasonSentence("local_agent: local agent exited with code 75; see /x/agent.log")).toBe(
      "This server's own compute node (the local agent) is not running: another agent connected with the same node token and replaced it (local agent exited with code 75; see /x/agent.log).",
    );
    expect(reasonSentence("local_agent: local agent exited with code 77")).toContain("is not running: the server refused its node token");
    expect(reasonSentence("local_agent: local agent exited with code 3")).toBe(
      "This server's own compute node (the local agent) is not running (local agent exited with code 3).",
    );
    expect(reasonSentence("gpu_probe: timed out")).toBe("The gpu probe check is failing (timed out).");
  });
});
