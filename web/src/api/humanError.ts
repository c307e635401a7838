/** Turns a failed call (problem+json) into a sentence a person reads, keeping the technical detail for "Details". */
import { ApiError } from "./client";

export interface HumanError {
  /** What happened and what to do, in plain words. */
  sentence: string;
  /** The technical detail (status, title, server detail, request id), shown one click away; null when there is none beyond the sentence. */
  technical: string | null;
}

const FIELD_WORDS: Record<string, string> = { username: "user name", password: "password", name: "name" };

function fieldWord(key: string): string {
  const last = key.split(".").pop() ?? key;
  return FIELD_WORDS[last] ?? last.replace(/_/g, " ");
}

function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

/** One schema complaint ("password: Expected `str` of length >= 8") as a request to the person. */
function schemaSentence(key: string, message: string): string | null {
  const what = fieldWord(key);
  let m = /length >= (\d+)/.exec(message);
  if (m) return `Choose a ${what} of at least ${m[1]} characters.`;
  m = /length <= (\d+)/.exec(message);
  if (m) return `Keep the ${what} to at most ${m[1]} characters.`;
  m = /Expected `[^`]+` >= ([\d.]+)/.exec(message);
  if (m) return `The ${what} must be at least ${m[1]}.`;
  m = /Expected `[^`]+` <= ([\d.]+)/.exec(message);
  if (m) return `The ${what} must be at most ${m[1]}.`;
  if (/Object missing required field `([^`]+)`/.test(message)) return `Fill in the ${fieldWord(/`([^`]+)`/.exec(message)![1])}.`;
  if (/Expected|Invalid enum value|match regex/.test(message)) return `Check the ${what}: it is not in the expected form.`;
  return null;
}

export function humanError(err: unknown): HumanError {
  if (err instanceof TypeError) {
    // fetch() and streamed bodies fail with a TypeError when the connection drops ("network error", "TransferEncodingError…").
    return { sentence: "The connection to the server dropped. It reconnects by itself; nothing was lost on the server.", technical: err.message || null };
  }
  if (!(err instanceof ApiError)) {
    const msg = err instanceof Error ? err.message : String(err);
    return { sentence: "Something went wrong in the page. Reload it and try again.", technical: msg || null };
  }
  const p = err.problem;
  const detail = typeof p?.detail === "string" ? p.detail : "";
  const requestId = typeof p?.request_id === "string" ? ` (request ${p.request_id})` : "";
  const technical = `${err.status || "no response"}${p?.title ? ` ${p.title}` : ""}: ${detail || err.message}${requestId}`;
  const out = (s: string): HumanError => ({ sentence: s, technical });
  switch (true) {
    case err.status === 0:
      return out("The server could not be reached. Check your connection; the page retries when it is back.");
    case err.status === 400: {
      const errors = Array.isArray(p?.errors) ? (p.errors as { key?: string; message?: string }[]) : [];
      for (const e of errors) {
        const s = schemaSentence(e.key ?? "", e.message ?? "");
        if (s) return out(s);
      }
      const m = /^([\w.]+): (.*)$/.exec(detail);
      if (m) return out(schemaSentence(m[1], m[2]) ?? sentence(`${fieldWord(m[1])}: ${m[2]}`));
      return out(detail ? sentence(detail) : "The request was not accepted. Check the form and try again.");
    }
    case err.status === 401:
      return out(/wrong username or password/i.test(detail) ? "Wrong user name or password." : "Your session has ended. Sign in again.");
    case err.status === 403:
      // The access policy's detail says who may ("only the task's owner or an admin may retry it; …").
      if (/admin role/.test(detail)) return out("Only an admin may do this.");
      return out(detail ? sentence(detail.split(";")[0]) : "You are not allowed to do this.");
    case err.status === 404:
      return out(detail ? sentence(`Not found: ${detail}`) : "This no longer exists; it may have been deleted.");
    case err.status === 429:
      return out("Too many attempts. Wait a minute, then try again.");
    case err.status >= 500:
      return out("The server failed to do this. Try again; if it keeps failing, give an admin the details below.");
    default:
      return out(detail ? sentence(detail) : "The request failed.");
  }
}
