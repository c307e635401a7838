/** Files (artifacts): resumable uploads with progress, folders (names with "/"), search and pages, preview in place, download by short-lived URL, delete. */
import { useContext, useEffect, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { ApiError, api } from "../api/client";
import { humanError } from "../api/humanError";
import type { Artifact } from "../api/types";
import { uploadFile, type UploadProgress } from "../api/upload";
import { folderTrail, previewOf } from "../api/filePreview";
import { DownloadButton } from "../components/DownloadButton";
import { FilePreview } from "../components/FilePreview";
import { Time } from "../components/Time";
import { FolderIcon } from "../components/icons";
import { ConfirmButton, CopyButton, EmptyState, ErrorBox, Loading, StateBadge, formatBytes, shortId } from "../components/ui";
import { AuthContext } from "../state/contexts";
import { useLiveAsync, useLiveEvents, useNow, useThrottled, useTitle } from "../state/hooks";

export const FILES_PAGE_SIZE = 25;
const STATES = ["all", "ready", "uploading"] as const;

interface Upload {
  key: number;
  name: string;
  progress: UploadProgress;
  error: string | null;
  abort: () => void;
}

export function FilesPage() {
  useTitle("Files");
  const { user } = useContext(AuthContext)!;
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const stateParam = params.get("state");
  const state = stateParam === "ready" || stateParam === "uploading" ? stateParam : undefined;
  const mine = params.get("owner") === "me";
  const dir = params.get("dir") ?? "";
  const [search, setSearch] = useState(q);
  // Cursors of the pages before this one (the first page has none).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  // Browsing shows one folder level; a search looks through everything below the folder.
  const files = useLiveAsync(
    (signal) =>
      api.files(
        {
          q: q || undefined,
          state,
          owner: mine ? "me" : undefined,
          prefix: dir || undefined,
          delimiter: q ? undefined : "/",
          limit: FILES_PAGE_SIZE,
          cursor,
        },
        signal,
      ),
    [q, state, mine, dir, cursor],
  );
  const [previewing, setPreviewing] = useState<Artifact | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const inputRef = useRef<HTMLInputElement>(null);
  const seq = useRef(0);
  const now = useNow(30_000);
  const reload = useThrottled(files.reload, 800);
  useLiveEvents((ev) => ev.subject_type === "artifact", reload);

  // New filters start at page 1.
  const update = (changes: Record<string, string | null>) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) p.set(k, v);
      else p.delete(k);
    }
    setCursors([null]);
    setParams(p, { replace: true });
  };
  // Typing in the search box updates the URL (and so the list) after a short pause. The timer
  // calls the latest update (the URL as it is then: a filter clicked meanwhile is kept), and
  // only typing starts it (going back in history does not write the old search again).
  const latest = useRef({ q, update });
  latest.current = { q, update };
  useEffect(() => {
    if (search === latest.current.q) return;
    const t = setTimeout(() => latest.current.update({ q: search || null }), 300);
    return () => clearTimeout(t);
  }, [search]);

  // Closing the tab mid-upload asks first (picking the same file later would still resume it).
  const active = uploads.some((u) => !u.error);
  useEffect(() => {
    if (!active) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [active]);

  const start = (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) {
      const key = ++seq.current;
      const patch = (p: Partial<Upload>) => setUploads((old) => old.map((u) => (u.key === key ? { ...u, ...p } : u)));
      const { promise, abort } = uploadFile(file, (progress) => patch({ progress }));
      const first: UploadProgress = { phase: "hashing", loaded: 0, total: file.size };
      setUploads((old) => [...old, { key, name: file.name, progress: first, error: null, abort }]);
      promise.then(
        () => {
          setUploads((old) => old.filter((u) => u.key !== key));
          files.reload();
        },
        (err: unknown) => {
          // A refusal as a sentence ("413: …" read as a status code); the upload's own dropped-connection texts as they are.
          patch({ error: err instanceof ApiError && err.status === 0 ? err.message : humanError(err).sentence });
          files.reload();
        },
      );
    }
    if (inputRef.current) inputRef.current.value = "";
  };

  const mayDelete = (a: Artifact) => user.role === "admin" || a.owner_id === user.id;
  const page = files.data;
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
        Drop files here to upload them. Big files go up in resumable chunks: a dropped connection picks up where it
        stopped, and choosing the same file again after closing the page resumes it.
      </div>
      {uploads.length > 0 && (
        <ul className="uploads" aria-label="Uploads in progress">
          {uploads.map((u) => (
            <UploadRow key={u.key} upload={u} onDismiss={() => setUploads((o) => o.filter((x) => x.key !== u.key))} />
          ))}
        </ul>
      )}
      <div className="toolbar">
        <input
          type="search"
          className="search"
          aria-label="Search files"
          placeholder="Name contains…"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          maxLength={200}
        />
        <div className="chips" role="group" aria-label="Filter by state">
          {STATES.map((s) => {
            const on = (state ?? "all") === s;
            return (
              <button key={s} type="button" className={`chip${on ? " chip-on" : ""}`} aria-pressed={on} onClick={() => update({ state: s === "all" ? null : s })}>
                {s}
              </button>
            );
          })}
        </div>
        <label className="check">
          <input type="checkbox" checked={mine} onChange={(e) => update({ owner: e.target.checked ? "me" : null })} /> Only mine
        </label>
      </div>
      <nav className="breadcrumbs" aria-label="Folder">
        {dir ? (
          <button type="button" className="btn-link" onClick={() => update({ dir: null })}>
            All files
          </button>
        ) : (
          <span aria-current="page">All files</span>
        )}
        {folderTrail(dir).map((f, i, all) => (
          <span key={f.prefix}>
            {" / "}
            {i === all.length - 1 ? (
              <span aria-current="page">{f.label}</span>
            ) : (
              <button type="button" className="btn-link" onClick={() => update({ dir: f.prefix })}>
                {f.label}
              </button>
            )}
          </span>
        ))}
      </nav>
      {previewing && <FilePreview key={previewing.id} artifact={previewing} onClose={() => setPreviewing(null)} />}
      {files.error !== null && <ErrorBox error={files.error} onRetry={files.reload} />}
      {!page && files.loading && <Loading />}
      {page && page.items.length === 0 && (page.folders ?? []).length === 0 && (
        <EmptyState title={q || state || mine ? "No files match." : "No files yet."}>
          {!(q || state || mine) && <p>Upload one above, or let a task declare outputs under /workspace/outputs.</p>}
        </EmptyState>
      )}
      {page && (page.items.length > 0 || (page.folders ?? []).length > 0) && (
        <div className="table-wrap">
          <table className="table table-cards" data-testid="files-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Size</th>
                <th scope="col">State</th>
                <th scope="col">SHA-256</th>
                <th scope="col">From</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(page.folders ?? []).map((f) => (
                <tr key={f} data-folder={f}>
                  <td className="file-name" colSpan={7}>
                    <button type="button" className="btn-link folder-link" onClick={() => update({ dir: f })} title={f}>
                      <FolderIcon />{" "}
                      <span className="sr-only">Folder </span>
                      {f.slice(dir.length)}
                    </button>
                  </td>
                </tr>
              ))}
              {page.items.map((a) => (
                <tr key={a.id} data-file-name={a.name} data-file-id={a.id}>
                  <td className="file-name" data-label="Name">
                    <span className="file-name-text" title={a.name}>
                      {a.name.startsWith(dir) ? a.name.slice(dir.length) : a.name}
                    </span>
                  </td>
                  <td className="num" data-label="Size">{formatBytes(a.size)}</td>
                  <td data-label="State">
                    <StateBadge state={a.state === "ready" ? "ready" : "uploading"} />
                  </td>
                  <td className="mono small files-sha" data-label="SHA-256">
                    <span title={a.sha256}>{a.sha256.slice(0, 12)}…</span> <CopyButton text={a.sha256} />
                  </td>
                  <td data-label="From">
                    {a.task_id ? (
                      <Link to={`/tasks/${a.task_id}`}>
                        task {shortId(a.task_id)}
                        {a.attempt_no ? ` #${a.attempt_no}` : ""}
                      </Link>
                    ) : (
                      (a.owner ?? "—")
                    )}
                  </td>
                  <td data-label="Created">
                    <Time value={a.ready_at ?? a.created_at} now={now} />
                  </td>
                  <td>
                    <div className="row-actions">
                    {previewOf(a) && (
                      <button type="button" className="btn btn-small" aria-label={`Preview ${a.name}`} onClick={() => setPreviewing(a)}>
                        Preview
                      </button>
                    )}
                    <DownloadButton id={a.id} name={a.name} disabled={a.state !== "ready"} />
                    {mayDelete(a) && (
                      <ConfirmButton
                        small
                        label="Delete"
                        onConfirm={() =>
                          api.deleteFile(a.id).then(() => files.setData((old) => old && { ...old, items: old.items.filter((x) => x.id !== a.id) }))
                        }
                      />
                    )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {page && (cursors.length > 1 || page.next_cursor) && (
        <nav className="pager" aria-label="Pages of files">
          <button type="button" className="btn btn-small" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
            Newer
          </button>
          <span className="muted small" data-testid="files-page">
            Page {cursors.length}
          </span>
          <button
            type="button"
            className="btn btn-small"
            disabled={!page.next_cursor}
            onClick={() => page.next_cursor && setCursors((c) => [...c, page.next_cursor])}
          >
            Older
          </button>
        </nav>
      )}
    </div>
  );
}

const PHASE_LABEL: Record<UploadProgress["phase"], string> = {
  hashing: "Computing SHA-256",
  uploading: "Uploading",
  retrying: "Connection lost, resuming",
  completing: "Completing",
};

function UploadRow({ upload: u, onDismiss }: { upload: Upload; onDismiss: () => void }) {
  const p = u.progress;
  const pct = p.total ? Math.floor((100 * p.loaded) / p.total) : p.phase === "completing" ? 100 : 0;
  return (
    <li className="upload" data-upload-name={u.name} data-phase={u.error ? "failed" : p.phase}>
      <span className="upload-name">{u.name}</span>
      <progress max={100} value={pct} aria-label={`Uploading ${u.name}`} data-testid="upload-progress" />
      <span className="small muted" data-testid="upload-status">
        {u.error ? "Failed" : PHASE_LABEL[p.phase]} · {formatBytes(p.loaded)} / {formatBytes(p.total)} ({pct}%)
        {p.phase === "retrying" && p.note && !u.error ? ` · ${p.note}` : ""}
      </span>
      {u.error ? (
        <>
          <span className="field-error" role="alert">
            {u.error}
          </span>
          <button type="button" className="btn btn-small btn-ghost" onClick={onDismiss}>
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
}
