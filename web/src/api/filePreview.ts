/** Which artifacts the Files page previews in place (text as text, images of safe types only) and how a text preview reads. */
import type { Artifact } from "./types";

/** The first bytes of a text file shown in place; the rest is one download away. */
export const TEXT_PREVIEW_BYTES = 64 * 1024;
/** Images larger than this are not previewed (download them instead). */
export const IMAGE_PREVIEW_BYTES = 20 * 1024 * 1024;

/** Raster types a browser draws without running anything (no SVG: it can carry scripts). */
const SAFE_IMAGES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  bmp: "image/bmp",
};
const TEXT_TYPES = /^(text\/[a-z0-9.+-]+|application\/(json|x-ndjson|jsonl|yaml|x-yaml|toml|csv|xml|x-sh|x-python|javascript))$/i;
const TEXT_EXTENSIONS = new Set(
  "txt log out err csv tsv json jsonl ndjson md rst yaml yml toml ini cfg conf py sh js ts tsx c h cpp rs go java rb r sql xml html htm tex diff patch".split(" "),
);

function extension(name: string): string {
  const base = name.split("/").pop() ?? name;
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : "";
}

export type Preview = { kind: "text" } | { kind: "image"; type: string } | null;

/** How an artifact can be previewed: an image only with a safe raster type (declared, or from its name), text by type or name; else null. */
export function previewOf(a: Pick<Artifact, "name" | "content_type" | "size" | "state">): Preview {
  if (a.state !== "ready") return null;
  const declared = a.content_type.split(";")[0].trim().toLowerCase();
  const ext = extension(a.name);
  const imageType = Object.values(SAFE_IMAGES).includes(declared) ? declared : declared === "application/octet-stream" ? SAFE_IMAGES[ext] : undefined;
  if (imageType) return a.size <= IMAGE_PREVIEW_BYTES ? { kind: "image", type: imageType } : null;
  if (declared.startsWith("image/")) return null; // SVG and other image types are never drawn in the page
  if (TEXT_TYPES.test(declared) || TEXT_EXTENSIONS.has(ext)) return { kind: "text" };
  return null;
}

/** The first TEXT_PREVIEW_BYTES as text (invalid UTF-8 replaced), or null when it looks binary (NUL bytes). */
export function previewText(bytes: Uint8Array): string | null {
  const head = bytes.subarray(0, TEXT_PREVIEW_BYTES);
  if (head.includes(0)) return null;
  return new TextDecoder("utf-8", { fatal: false }).decode(head);
}

/** One folder level of a listing: the folder a name sits in is everything up to its last "/". */
export function folderTrail(prefix: string): { label: string; prefix: string }[] {
  const parts = prefix.split("/").filter(Boolean);
  return parts.map((label, i) => ({ label, prefix: parts.slice(0, i + 1).join("/") + "/" }));
}
