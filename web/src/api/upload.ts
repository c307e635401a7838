/**
 * Uploading a file as an artifact: hash it, declare it (name, size, SHA-256), put its bytes
 * where the server says, then complete. On the local backend the bytes go in Content-Range
 * chunks, so a dropped connection resumes from what the server holds (POST …/upload gives the
 * offset and a fresh URL); S3 plans go part by part. Picking the same file again after a page
 * reload resumes its unfinished upload instead of starting over.
 */
import { ApiError, api, errorFromResponse } from "./client";
import { sha256File } from "./sha256";
import type { Artifact, ArtifactUpload } from "./types";

/** Bytes per Content-Range chunk on the local backend: what a dropped connection can cost at most. */
export const CHUNK_BYTES = 8 * 1024 * 1024;
/** Failed tries in a row (no byte gained in between) before an upload gives up. */
export const MAX_FAILURES = 6;
const CONTENT_TYPE_RE = /^[\x21-\x7e]+(; ?[\x21-\x7e]+)*$/;

export type UploadPhase = "hashing" | "uploading" | "retrying" | "completing";

export interface UploadProgress {
  phase: UploadPhase;
  /** Bytes hashed (hashing) or held by the server plus in flight (uploading). */
  loaded: number;
  total: number;
  /** Why the last try failed while retrying. */
  note?: string;
}

export interface UploadHandle {
  promise: Promise<Artifact>;
  /** Stops the upload and deletes the unfinished artifact so its name is free again. */
  abort: () => void;
}

/** "bytes=0-1234" (what a 308 answer holds) -> 1235 bytes held; null when absent or unreadable. */
export function heldFromRange(header: string | null): number | null {
  const m = header ? /^bytes=0-(\d+)$/.exec(header.trim()) : null;
  return m ? Number(m[1]) + 1 : null;
}

/** The next chunk [first, last] (inclusive) to send from offset, and its Content-Range value. */
export function nextChunk(offset: number, size: number, chunk = CHUNK_BYTES): { first: number; last: number; header: string } {
  const last = Math.min(offset + chunk, size) - 1;
  return { first: offset, last, header: `bytes ${offset}-${last}/${size}` };
}

export function contentTypeOf(file: File): string {
  return file.type && CONTENT_TYPE_RE.test(file.type) ? file.type : "application/octet-stream";
}

interface PutResult {
  status: number;
  range: string | null;
}

/** One PUT through XMLHttpRequest (fetch has no upload progress). Network failure: status 0. */
function put(
  url: string,
  body: Blob,
  headers: Record<string, string>,
  onSent: (bytes: number) => void,
  track: (xhr: XMLHttpRequest | null) => void,
): Promise<PutResult> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    track(xhr);
    xhr.open("PUT", url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onSent(e.loaded);
    xhr.onload = () => {
      track(null);
      if (xhr.status >= 400) {
        const res = new Response(xhr.responseText || null, {
          status: xhr.status,
          statusText: xhr.statusText,
          headers: { "content-type": xhr.getResponseHeader("content-type") ?? "text/plain" },
        });
        void errorFromResponse(res).then(reject);
        return;
      }
      resolve({ status: xhr.status, range: xhr.getResponseHeader("range") });
    };
    xhr.onerror = () => {
      track(null);
      resolve({ status: 0, range: null });
    };
    xhr.onabort = () => {
      track(null);
      reject(new DOMException("upload cancelled", "AbortError"));
    };
    xhr.send(body);
  });
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new DOMException("upload cancelled", "AbortError"));
    });
  });

/** Statuses worth another try with a fresh plan: network gone, URL expired, offset moved, server busy. */
function retryable(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  return err.status === 0 || err.status === 403 || err.status === 409 || err.status === 408 || err.status === 429 || err.status >= 500;
}

/** Declares the artifact, or picks up this same file's unfinished upload (same name, size and hash). */
async function declare(file: File, name: string, sha256: string): Promise<ArtifactUpload> {
  try {
    return await api.createFile({ name, size: file.size, sha256, content_type: contentTypeOf(file) });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 409) throw err;
    const existing = await api.fileByName(name).catch(() => null);
    if (existing && existing.state === "uploading" && existing.size === file.size && existing.sha256 === sha256) {
      return api.resumeFile(existing.id);
    }
    throw err;
  }
}

export function uploadFile(file: File, onProgress: (p: UploadProgress) => void, name: string = file.name): UploadHandle {
  const ctl = new AbortController();
  let xhr: XMLHttpRequest | null = null;
  let artifactId: string | null = null;
  const total = file.size;

  const run = async (): Promise<Artifact> => {
    onProgress({ phase: "hashing", loaded: 0, total });
    const sha256 = await sha256File(file, (hashed) => onProgress({ phase: "hashing", loaded: hashed, total }), ctl.signal);
    if (ctl.signal.aborted) throw new DOMException("upload cancelled", "AbortError");
    const declared = await declare(file, name, sha256);
    const artifact = declared.artifact;
    let plan = declared.upload;
    artifactId = artifact.id;
    if (artifact.state === "ready") return artifact;

    let failures = 0;
    const alive = () => {
      if (ctl.signal.aborted) throw new DOMException("upload cancelled", "AbortError");
    };
    const track = (x: XMLHttpRequest | null) => {
      xhr = x;
    };
    /** After a failed try: wait (backing off), then ask the server what it holds and for fresh URLs. */
    const recover = async (err: unknown, held: number) => {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      if (!retryable(err) || ++failures >= MAX_FAILURES) throw err;
      const note = err instanceof ApiError ? err.message : String(err);
      onProgress({ phase: "retrying", loaded: held, total, note });
      await sleep(Math.min(500 * 2 ** (failures - 1), 10_000), ctl.signal);
      plan = (await api.resumeFile(artifactId!)).upload;
    };
    if ((plan.parts ?? []).length > 0) {
      // S3 multipart: each missing part to its own URL; at complete the server lists the parts the store holds
      // (their ETags are not readable across origins).
      for (;;) {
        const done = new Set(plan.done_parts);
        const size = plan.part_size ?? CHUNK_BYTES;
        const heldBytes = () => [...done].reduce((n, p) => n + Math.max(0, Math.min(p * size, total) - (p - 1) * size), 0);
        try {
          for (const part of plan.parts ?? []) {
            if (done.has(part.part_number)) continue;
            alive();
            const start = (part.part_number - 1) * size;
            const base = heldBytes();
            const res = await put(part.url, file.slice(start, Math.min(start + size, total)), plan.headers ?? {},
              (sent) => onProgress({ phase: "uploading", loaded: base + sent, total }), track);
            if (res.status === 0) throw new ApiError(0, "The connection dropped during the upload.");
            done.add(part.part_number);
            failures = 0;
          }
          break;
        } catch (err) {
          await recover(err, heldBytes());
        }
      }
    } else if (artifact.backend === "local" && total > 0) {
      let offset = Math.min(plan.offset, total);
      while (offset < total) {
        const chunk = nextChunk(offset, total);
        try {
          alive();
          const res = await put(plan.url!, file.slice(chunk.first, chunk.last + 1), { ...plan.headers, "Content-Range": chunk.header },
            (sent) => onProgress({ phase: "uploading", loaded: offset + sent, total }), track);
          if (res.status === 0) throw new ApiError(0, "The connection dropped during the upload.");
          const held = res.status === 308 ? heldFromRange(res.range) : total;
          if (held === null || held <= offset) throw new ApiError(409, "The server kept none of the chunk just sent.");
          failures = 0;
          offset = held;
          onProgress({ phase: "uploading", loaded: offset, total });
        } catch (err) {
          await recover(err, offset);
          offset = Math.min(plan.offset, total);
        }
      }
    } else if (plan.offset < total || total === 0) {
      // One plain PUT (S3 below its multipart threshold, or an empty file).
      for (;;) {
        try {
          alive();
          const res = await put(plan.url!, file, plan.headers ?? {}, (sent) => onProgress({ phase: "uploading", loaded: sent, total }), track);
          if (res.status === 0) throw new ApiError(0, "The connection dropped during the upload.");
          break;
        } catch (err) {
          await recover(err, 0);
        }
      }
    }
    alive();
    onProgress({ phase: "completing", loaded: total, total });
    return api.completeFile(artifactId);
  };

  const promise = run().catch((err: unknown) => {
    if (ctl.signal.aborted) {
      if (artifactId) void api.deleteFile(artifactId).catch(() => undefined);
      throw new ApiError(0, "The upload was cancelled.");
    }
    throw err;
  });
  return {
    promise,
    abort: () => {
      ctl.abort();
      (xhr as XMLHttpRequest | null)?.abort();
    },
  };
}
