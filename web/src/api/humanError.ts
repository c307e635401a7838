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
    case err.status === 404: {
      // "task 3e1e… not found" -> "This task does not exist…"; the router's bare "Not Found" says nothing more.
      const what = /^([a-z][a-z ]*?) \S+ not found$/i.exec(detail)?.[1];
      if (what) return out(`This ${what.toLowerCase()} does not exist: it may have been deleted, or the link is wrong.`);
      if (!detail || /^not found\.?$/i.test(detail)) return out("This does not exist: it may have been deleted, or the link is wrong.");
      return out(sentence(`Not found: ${detail}`));
    }
    case err.status === 429:
      return out("Too many attempts. Wait a minute, then try again.");
    case err.status >= 500:
      return out("The server failed to do this. Try again; if it keeps failing, give an admin the details below.");
    default:
      return out(detail ? sentence(detail) : "The request failed.");
  }
}

/**
 * Why a task or attempt failed, as a sentence: the raw `reason` and `message` the agent and server
 * record (git, image build, transfer, Docker, memory, timeout, lost node…) mapped in one place;
 * the raw text stays available as `technical`.
 */
export function failureSentence(reason: string | null | undefined, message: string | null | undefined): HumanError {
  const raw = message ?? "";
  const technical = [reason, raw].filter(Boolean).join(": ") || null;
  const out = (s: string): HumanError => ({ sentence: s, technical });
  const code = /exited with code (\d+)/.exec(raw)?.[1] ?? null;
  const rules: [RegExp, string][] = [
    [/TransferEncodingError|ClientPayloadError|ServerDisconnected|RemoteProtocolError|IncompleteRead|Connection reset|payload is not completed/i, "The connection dropped while a file was moving between the node and the server. Retrying usually works."],
    [/could not fetch .*(authentication|permission denied|could not read Username|credential|403|401)/i, "The node was not allowed to fetch the code: give the task a credential for this repository (or check the node's access)."],
    [/could not fetch|git fetch|unable to access|Could not resolve host/i, "The node could not fetch the code from its repository. Check the URL and that the node can reach it."],
    [/commit \S+ not found in repository/, "That commit is not in the repository. Was it pushed?"],
    [/dockerfile_path .* is not a file/, "The Dockerfile path does not exist in the environment repository at that commit."],
    [/env image build failed/, "The environment image failed to build from its Dockerfile. The build output is in the logs."],
    [/out of memory|OOMKilled/i, "The task ran out of memory and was killed. Ask for more memory, or use less."],
    [/content does not match its SHA-256/, "An input file arrived damaged (its checksum did not match). Retrying usually works."],
    [/is no longer available \(deleted\?\)/, "An input file was deleted after the task was submitted."],
    [/download refused|upload refused|server unreachable|download failed|upload failed/, "The node could not move a file to or from the server."],
    [/secret\(s\) no longer in the store/, "A secret this task uses was deleted after it was submitted."],
    [/docker unreachable|^infrastructure error: docker:/, "The node's Docker engine did not answer. An admin should look at the node."],
    [/container vanished/, "The task's container disappeared while the node's agent was restarting."],
    [/could not accept this attempt/, "The node's agent could not start this attempt."],
    [/does not run \S+ dispatches|no file transfer configured|declares no host mount/, "This node cannot run this kind of task."],
  ];
  for (const [re, s] of rules) if (re.test(raw)) return out(s);
  switch (reason) {
    case "timed_out": {
      const secs = /timed out after (\d+)s/.exec(raw)?.[1];
      return out(`The task ran longer than its timeout${secs ? ` (${secs} s)` : ""} and was stopped.`);
    }
    case "node_lost":
      return out("The node running the task went offline, and no attempts were left.");
    case "exit_nonzero":
      if (code === "127") return out("The command was not found in the environment image (exit code 127).");
      if (code === "137") return out("The task was killed (exit code 137), often for using too much memory.");
      return out(code ? `The command failed with exit code ${code}.` : "The node refused the task.");
    case "infra_error":
      return out("The node could not prepare or run the task (an infrastructure error, not the task's code).");
    case "killed":
      return out("The node stopped the task.");
    default:
      return { sentence: raw ? sentence(raw) : "The task failed.", technical: null };
  }
}
