/** An artifact shown in the page: the first 64 KiB of a text file as plain text (never as HTML), or an image of a safe raster type. */
import { useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import { IMAGE_PREVIEW_BYTES, TEXT_PREVIEW_BYTES, previewOf, previewText } from "../api/filePreview";
import type { Artifact } from "../api/types";
import { ErrorBox, formatBytes } from "./ui";

type Shown = { text: string } | { image: string } | { binary: true };

async function load(a: Artifact, signal: AbortSignal): Promise<Shown> {
  const how = previewOf(a);
  if (!how) throw new Error("This file cannot be previewed; download it instead.");
  const { url } = await api.fileDownloadUrl(a.id);
  const want = how.kind === "text" ? TEXT_PREVIEW_BYTES : IMAGE_PREVIEW_BYTES;
  const r = await fetch(url, { headers: { Range: `bytes=0-${want - 1}` }, signal, credentials: "omit" });
  if (!r.ok) throw new Error(`The file could not be read (HTTP ${r.status}).`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  if (how.kind === "image") return { image: URL.createObjectURL(new Blob([bytes], { type: how.type })) };
  const text = previewText(bytes);
  return text === null ? { binary: true } : { text };
}

export function FilePreview({ artifact: a, onClose }: { artifact: Artifact; onClose: () => void }) {
  const [shown, setShown] = useState<Shown | null>(null);
  const [error, setError] = useState<unknown>(null);
  const ref = useRef<HTMLElement>(null);
  useEffect(() => {
    const ctl = new AbortController(); // one artifact per mount: the parent keys this by id
    load(a, ctl.signal).then(setShown, (err: unknown) => !ctl.signal.aborted && setError(err));
    ref.current?.focus();
    return () => ctl.abort();
  }, [a]);
  useEffect(() => {
    const url = shown && "image" in shown ? shown.image : null;
    return () => {
      if (url) URL.revokeObjectURL(url);
    };
  }, [shown]);
  const cut = a.size > TEXT_PREVIEW_BYTES;
  return (
    <section
      className="card file-preview"
      aria-label={`Preview of ${a.name}`}
      data-testid="file-preview"
      tabIndex={-1}
      ref={ref}
      onKeyDown={(e) => e.key === "Escape" && onClose()}
    >
      <div className="section-head">
        <h2 className="file-preview-name" title={a.name}>
          {a.name}
        </h2>
        <button type="button" className="btn btn-small" onClick={onClose}>
          Close preview
        </button>
      </div>
      {error !== null && <ErrorBox error={error} />}
      {!shown && error === null && <p className="muted">Loading…</p>}
      {shown && "text" in shown && (
        <>
          {cut && (
            <p className="muted small" data-testid="preview-cut">
              The first {TEXT_PREVIEW_BYTES / 1024} KiB of {formatBytes(a.size)}; download the file for the rest.
            </p>
          )}
          <pre className="preview-text" data-testid="preview-text">
            {shown.text}
          </pre>
        </>
      )}
      {shown && "image" in shown && <img className="preview-image" src={shown.image} alt={a.name} data-testid="preview-image" />}
      {shown && "binary" in shown && <p className="muted">This file looks binary; download it instead.</p>}
    </section>
  );
}
