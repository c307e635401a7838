/** Worker: incremental SHA-256 of the file it is sent, reporting progress (see sha256.ts). */
import { sha256Incremental } from "./sha256";

self.onmessage = (e: MessageEvent<{ file: Blob }>) => {
  let last = 0;
  sha256Incremental(e.data.file, (hashed) => {
    // At most ~100 progress messages, whatever the size.
    if (hashed - last >= e.data.file.size / 100 || hashed === e.data.file.size) {
      last = hashed;
      self.postMessage({ type: "progress", hashed });
    }
  }).then(
    (hex) => self.postMessage({ type: "done", hex }),
    (err: unknown) => self.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) }),
  );
};
