import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CHUNK_BYTES, contentTypeOf, heldFromRange, nextChunk } from "./upload";
import { sha256Incremental, sha256Subtle } from "./sha256";

describe("resumable upload helpers", () => {
  it("reads how much the server holds from a 308 Range header", () => {
    expect(heldFromRange("bytes=0-1234")).toBe(1235);
    expect(heldFromRange(null)).toBeNull();
    expect(heldFromRange("bytes=5-10")).toBeNull();
  });
  it("cuts chunks with Content-Range headers up to the end", () => {
    expect(nextChunk(0, 10, 4)).toEqual({ first: 0, last: 3, header: "bytes 0-3/10" });
    expect(nextChunk(8, 10, 4)).toEqual({ first: 8, last: 9, header: "bytes 8-9/10" });
    expect(nextChunk(0, 3 * CHUNK_BYTES).last).toBe(CHUNK_BYTES - 1);
  });
  it("declares only content types the API accepts", () => {
    expect(contentTypeOf(new File(["x"], "a.txt", { type: "text/plain" }))).toBe("text/plain");
    expect(contentTypeOf(new File(["x"], "a.bin"))).toBe("application/octet-stream");
  });
});

describe("SHA-256 in the browser", () => {
  it("gives the same hex digest by crypto.subtle and by the incremental hash, across slice borders", async () => {
    const bytes = new Uint8Array(1_000_003).map((_, i) => (i * 7919) % 251);
    const want = createHash("sha256").update(bytes).digest("hex");
    const blob = new Blob([bytes]);
    expect(await sha256Subtle(blob)).toBe(want);
    const seen: number[] = [];
    expect(await sha256Incremental(blob, (n) => seen.push(n), 65_536)).toBe(want);
    expect(seen[seen.length - 1]).toBe(bytes.length);
    expect(await sha256Incremental(new Blob([]))).toBe(createHash("sha256").digest("hex"));
  });
});
