import { describe, expect, it } from "vitest";
import { folderTrail, previewOf, previewText, TEXT_PREVIEW_BYTES } from "./filePreview";

const a = (name: string, content_type = "application/octet-stream", size = 10) => ({ name, content_type, size, state: "ready" as const });

describe("previewOf", () => {
  it("previews text by type or name and images of safe raster types only", () => {
    expect(previewOf(a("runs/a/log.txt"))).toEqual({ kind: "text" });
    expect(previewOf(a("data", "application/json"))).toEqual({ kind: "text" });
    expect(previewOf(a("page.html", "text/html"))).toEqual({ kind: "text" }); // shown as text, never rendered
    expect(previewOf(a("plot.png"))).toEqual({ kind: "image", type: "image/png" });
    expect(previewOf(a("x", "image/jpeg"))).toEqual({ kind: "image", type: "image/jpeg" });
    expect(previewOf(a("evil.svg", "image/svg+xml"))).toBeNull();
    expect(previewOf(a("evil.png", "image/svg+xml"))).toBeNull();
    expect(previewOf(a("model.bin"))).toBeNull();
    expect(previewOf(a("huge.png", "image/png", 30 * 1024 * 1024))).toBeNull();
    expect(previewOf({ ...a("log.txt"), state: "uploading" })).toBeNull();
  });
});

describe("previewText", () => {
  it("decodes the first 64 KiB and refuses binary", () => {
    const big = new TextEncoder().encode("x".repeat(TEXT_PREVIEW_BYTES + 10));
    expect(previewText(big)?.length).toBe(TEXT_PREVIEW_BYTES);
    expect(previewText(new TextEncoder().encode("<b>hi</b>"))).toBe("<b>hi</b>");
    expect(previewText(new Uint8Array([104, 0, 105]))).toBeNull();
  });
});

describe("folderTrail", () => {
  it("names each level of a prefix", () => {
    expect(folderTrail("runs/a/")).toEqual([
      { label: "runs", prefix: "runs/" },
      { label: "a", prefix: "runs/a/" },
    ]);
    expect(folderTrail("")).toEqual([]);
  });
});
