/** Files (artifacts): upload with progress, download, delete; explains itself when storage is not there. */
import { useRef, useState } from "react";
import { ApiError, api, errorMessage, uploadArtifact } from "../api/client";
import type { Artifact } from "../api/types";
import { Time } from "../components/Time";
import { ConfirmButton, CopyButton, EmptyState, ErrorBox, Loading, formatBytes } from "../components/ui";
import { useAsync, useNow, useTitle } from "../state/hooks";

interface Upload {
  key: number;
  name: string;
  loaded: number;
  total: number;
  error: string | null;
  abort: () => void;
}

export function FilesPage() {
  useTitle("Files");
  const files = useAsync((signal) => api.artifacts(signal), []);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const inputRef = useRef<HTMLInputElement>(null);
  const seq = useRef(0);
  const now = useNow(30_000);

  const unavailable = files.error instanceof ApiError && files.error.status === 404;

  const start = (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) {
      const key = ++seq.current;
      const patch = (p: Partial<Upload>) => setUploads((old) => old.map((u) => (u.key === key ? { ...u, ...p } : u)));
      const { promise, abort } = uploadArtifact(file, (loaded, total) => patch({ loaded, total }));
      setUploads((old) => [...old, { key, name: file.name, loaded: 0, total: file.size, error: null, abort }]);
      promise.then(
        (art) => {
          setUploads((old) => old.filter((u) => u.key !== key));
          files.setData((old) => old && { items: [art, ...old.items.filter((a) => a.id !== art.id)] });
        },
        (err: unknown) => patch({ error: errorMessage(err) }),
      );
    }
    if (inputRef.current) inputRef.current.value = "";
  };

  if (unavailable) {
    return (
      <div className="page">
        <div className="page-head">
          <h1>Files</h1>
        </div>
        <EmptyState title="File storage is not available on this server.">
          <p>
            The server answered <code>404</code> for its artifact API, so this build has no file store enabled. Task
            logs and everything else keep working; ask an administrator to enable storage to upload files here.
          </p>
        </EmptyState>
      </div>
    );
  }

  return (
    <div className="page">
      <div className="page-head">
        <h1>Files</h1>
        <div className="actions">
          <label className="btn btn-primary file-pick">
            Upload files…
            <input ref={inputRef} type="file" multiple data-testid="file-input" onChange={(e) => start(e.target.files)} />
          </label>
        </div>
      </div>
      <div
        className="dropzone"
        onDragOver={(e) => e.preventDefault()}
        onDrop={(e) => {
          e.preventDefault();
          start(e.dataTransfer.files);
        }}
      >
        Drop files here to upload them.
      </div>
      {uploads.length > 0 && (
        <ul className="uploads" aria-label="Uploads in progress">
          {uploads.map((u) => {
            const pct = u.total ? Math.floor((100 * u.loaded) / u.total) : 0;
            return (
              <li key={u.key} className="upload">
                <span className="upload-name">{u.name}</span>
                <progress max={100} value={pct} aria-label={`Uploading ${u.name}`} />
                <span className="small muted">
                  {formatBytes(u.loaded)} / {formatBytes(u.total)}
                </span>
                {u.error ? (
                  <>
                    <span className="field-error" role="alert">
                      {u.error}
                    </span>
                    <button type="button" className="btn btn-small btn-ghost" onClick={() => setUploads((o) => o.filter((x) => x.key !== u.key))}>
                      Dismiss
                    </button>
                  </>
                ) : (
                  <button type="button" className="btn btn-small btn-ghost" onClick={u.abort}>
                    Cancel
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
      {files.error !== null && <ErrorBox error={files.error} onRetry={files.reload} />}
      {!files.data && files.loading && <Loading />}
      {files.data && files.data.items.length === 0 && <EmptyState title="No files yet." />}
      {files.data && files.data.items.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="files-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Size</th>
                <th scope="col">SHA-256</th>
                <th scope="col">Uploaded</th>
                <th scope="col">By</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {files.data.items.map((a: Artifact) => (
                <tr key={a.id} data-file-name={a.name}>
                  <td className="break">{a.name}</td>
                  <td className="num">{formatBytes(a.size)}</td>
                  <td className="mono small">
                    {a.sha256 ? (
                      <>
                        <span title={a.sha256}>{a.sha256.slice(0, 12)}…</span> <CopyButton text={a.sha256} />
                      </>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td>
                    <Time value={a.created_at} now={now} />
                  </td>
                  <td>{a.created_by ?? "—"}</td>
                  <td className="row-actions">
                    <a className="btn btn-small" href={api.artifactDownloadUrl(a.id)} download={a.name}>
                      Download
                    </a>
                    <ConfirmButton
                      label="Delete"
                      onConfirm={() => api.deleteArtifact(a.id).then(() => files.setData((old) => old && { items: old.items.filter((x) => x.id !== a.id) }))}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
