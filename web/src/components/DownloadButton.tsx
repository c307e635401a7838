/** Download an artifact through its short-lived URL (asked for at click time, so it never goes stale on screen). */
import { useState } from "react";
import { api } from "../api/client";
import { ErrorBox } from "./ui";

/** Asks the server for a fresh download URL and lets the browser fetch it as a file. */
export async function downloadArtifact(id: string): Promise<void> {
  const d = await api.fileDownloadUrl(id);
  const a = document.createElement("a");
  a.href = d.url;
  a.download = d.name.split("/").pop() ?? d.name;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

export function DownloadButton({ id, name, disabled, small = true }: { id: string; name: string; disabled?: boolean; small?: boolean }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <span className="confirm">
      <button
        type="button"
        className={small ? "btn btn-small" : "btn"}
        disabled={disabled || busy}
        aria-label={`Download ${name}`}
        onClick={() => {
          setBusy(true);
          setError(null);
          downloadArtifact(id).then(
            () => setBusy(false),
            (err: unknown) => {
              setBusy(false);
              setError(err);
            },
          );
        }}
      >
        {busy ? "Preparing…" : "Download"}
      </button>
      {error !== null && <ErrorBox error={error} />}
    </span>
  );
}
