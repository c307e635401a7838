import { describe, expect, it } from "vitest";
import { ApiError } from "./client";
import { humanError } from "./humanError";

const problem = (status: number, title: string, detail: string, extra: Record<string, unknown> = {}) =>
  new ApiError(status, `${status}: ${detail}`, { type: "about:blank", status, title, detail, ...extra });

describe("humanError", () => {
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
