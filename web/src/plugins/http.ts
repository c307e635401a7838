/** Fetch helpers for plugin pages (plugin routes are not in the core's typed endpoint table). */
import { ApiError, buildQuery, errorFromResponse } from "../api/client";

type Query = Parameters<typeof buildQuery>[0];

async function request<T>(method: string, path: string, body?: unknown, query?: Query, signal?: AbortSignal): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  let res: Response;
  try {
    res = await fetch(path + buildQuery(query), init);
  } catch {
    throw new ApiError(0, "The server could not be reached.");
  }
  if (!res.ok) throw await errorFromResponse(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const http = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>("GET", path, undefined, query, signal),
  post: <T>(path: string, body: unknown) => request<T>("POST", path, body),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, body),
  del: <T>(path: string) => request<T>("DELETE", path),
  /** A file download: the body as a Blob. */
  blob: async (path: string): Promise<Blob> => {
    const res = await fetch(path, { credentials: "same-origin" });
    if (!res.ok) throw await errorFromResponse(res);
    return res.blob();
  },
};

/** Saves a Blob under a file name chosen by the page. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
