/**
 * SHA-256 of a file in the browser, for the hash an upload declares: crypto.subtle for
 * files that fit comfortably in memory, and for bigger ones a Worker that streams slices
 * through an incremental hash (crypto.subtle has no incremental API), off the main thread.
 */
import { createSHA256 } from "hash-wasm";

/** Up to this size the whole file is read at once and hashed with crypto.subtle. */
export const SUBTLE_MAX_BYTES = 64 * 1024 * 1024;
/** Slice read per step of the incremental hash. */
export const HASH_SLICE_BYTES = 4 * 1024 * 1024;

export function toHex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Subtle(blob: Blob): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
}

/** Reads the blob slice by slice into an incremental SHA-256; memory stays at one slice. */
export async function sha256Incremental(
  blob: Blob,
  onProgress?: (hashed: number) => void,
  sliceBytes = HASH_SLICE_BYTES,
): Promise<string> {
  const hasher = await createSHA256();
  hasher.init();
  for (let at = 0; at < blob.size; at += sliceBytes) {
    const part = new Uint8Array(await blob.slice(at, Math.min(at + sliceBytes, blob.size)).arrayBuffer());
    hasher.update(part);
    onProgress?.(Math.min(at + sliceBytes, blob.size));
  }
  return hasher.digest("hex");
}

type WorkerReply = { type: "progress"; hashed: number } | { type: "done"; hex: string } | { type: "error"; message: string };

/** Hashes in a Worker (sha256.worker.ts); aborting the signal stops the worker. */
function sha256InWorker(file: Blob, onProgress: (hashed: number) => void, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./sha256.worker.ts", import.meta.url), { type: "module" });
    const stop = () => {
      worker.terminate();
      reject(new DOMException("hashing cancelled", "AbortError"));
    };
    signal?.addEventListener("abort", stop, { once: true });
    const finish = () => {
      signal?.removeEventListener("abort", stop);
      worker.terminate();
    };
    worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const msg = e.data;
      if (msg.type === "progress") onProgress(msg.hashed);
      else if (msg.type === "done") {
        finish();
        resolve(msg.hex);
      } else {
        finish();
        reject(new Error(`Could not hash the file: ${msg.message}`));
      }
    };
    worker.onerror = (e) => {
      finish();
      reject(new Error(`Could not hash the file: ${e.message || "the hashing worker failed"}`));
    };
    worker.postMessage({ file });
  });
}

/** The lower-case hex SHA-256 of a file, with progress in bytes hashed. */
export async function sha256File(file: Blob, onProgress: (hashed: number) => void, signal?: AbortSignal): Promise<string> {
  if (file.size <= SUBTLE_MAX_BYTES) {
    const hex = await sha256Subtle(file);
    if (signal?.aborted) throw new DOMException("hashing cancelled", "AbortError");
    onProgress(file.size);
    return hex;
  }
  return sha256InWorker(file, onProgress, signal);
}
