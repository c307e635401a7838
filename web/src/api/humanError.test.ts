import { describe, expect, it } from "vitest";
import { ApiError } from "./client";
import { failureSentence, humanError } from "./humanError";

const problem = (status: number, title: string, detail: string, extra: Record<string, unknown> = {}) =>
  new ApiError(status, `${status}: ${detail}`, { type: "about:blank", status, title, detail, ...extra });

describe("humanError", () => {
  it("says a missing thing does not exist, naming what, instead of echoing the server", () => {
    expect(humanError(problem(404, "Not Found", "task 3e1e2052-aca9-4ab6-8ec7-72756476a3ec not found")).sentence).toBe(
      "This task does not exist: it may have been deleted, or the link is wrong.",
    );
    expect(humanError(problem(404, "Not Found", "work item 7 not found")).sentence).toBe(
      "This work item does not exist: it may have been deleted, or the link is wrong.",
    );
    // The router's own answer for a path that matches no route ("Not Found") was shown as "Not found: Not Found."
    expect(humanError(problem(404, "Not Found", "Not Found")).sentence).toBe("This does not exist: it may have been deleted, or the link is wrong.");
    expect(humanError(problem(404, "Not Found", "no such object (deleted, or its upload never completed)")).sentence).toBe(
      "Not found: no such object (deleted, or its upload never completed).",
    );
  });
  it("asks for a longer password instead of quoting the schema", () => {
    const e = problem(400, "Bad request", "password: Expected `str` of length >= 8", {
      errors: [{ key: "password", message: "Expected `str` of length >= 8" }],
    });
    expect(humanError(e)).toEqual({ sentence: "Choose a password of at least 8 characters.", technical: "400 Bad request: password: Expected `str` of length >= 8" });
  });
  it("says wrong user name or password on a failed sign-in", () => {
    expect(humanError(problem(401, "Authentication required", "wrong username or password")).sentence).toBe("Wrong user name or password.");
  });
  it("says who may act on a 403, from the problem's detail", () => {
    const e = problem(403, "Forbidden", "only the task's owner or an admin may retry it; every member may read it");
    expect(humanError(e).sentence).toBe("Only the task's owner or an admin may retry it.");
    expect(humanError(problem(403, "Forbidden", "this action needs the admin role")).sentence).toBe("Only an admin may do this.");
  });
  it("says a dropped stream in words, keeping the raw error as detail", () => {
    const h = humanError(new TypeError("net::ERR_INCOMPLETE_CHUNKED_ENCODING TransferEncodingError"));
    expect(h.sentence).toMatch(/^The connection to the server dropped/);
    expect(h.technical).toContain("TransferEncodingError");
  });
  it("keeps an unreachable server distinct", () => {
    expect(humanError(new ApiError(0, "Failed to fetch")).sentence).toMatch(/could not be reached/);
  });
});

describe("failureSentence", () => {
  it("maps the raw failures agents and the server record to sentences, raw detail kept", () => {
    const cases: [string, string, RegExp][] = [
      ["infra_error", "infrastructure error: input data: download failed: TransferEncodingError: 400, message='Not enough data for satisfy transfer length header.'", /connection dropped/],
      ["infra_error", "infrastructure error: could not fetch https://git.example.org/x.git: fatal: unable to access", /could not fetch the code/],
      ["infra_error", "infrastructure error: could not fetch https://x/y.git: authentication failed", /not allowed to fetch/],
      ["infra_error", `infrastructure error: commit ${"a".repeat(40)} not found in repository https://x/y.git`, /not in the repository/],
      ["infra_error", "infrastructure error: env image build failed for https://x/env.git@abc (Dockerfile): step 2 failed", /image failed to build/],
      ["exit_nonzero", "command exited with code 137: killed: out of memory", /ran out of memory/],
      ["exit_nonzero", "command exited with code 3", /exit code 3/],
      ["exit_nonzero", "command exited with code 127: sh: nope: not found", /not found in the environment image/],
      ["timed_out", "timed out after 60s", /longer than its timeout \(60 s\)/],
      ["node_lost", "node lost (no attempts left of 3)", /went offline/],
      ["infra_error", "infrastructure error: docker unreachable: Cannot connect", /Docker engine/],
      ["infra_error", "infrastructure error", /infrastructure error, not the task's code/],
    ];
    for (const [reason, message, want] of cases) {
      const h = failureSentence(reason, message);
      expect(h.sentence, message).toMatch(want);
      expect(h.technical).toBe(`${reason}: ${message}`);
    }
  });
});
