/** Parsing and checking a task's declared files (inputs and outputs), mirroring the server's taskfiles rules. */
import type { TaskInput } from "./types";

export const OUTPUTS_DIR = "/workspace/outputs";
export const MAX_TASK_FILES = 64;
const ARTIFACT_RE = /^[A-Za-z0-9_][A-Za-z0-9._+=@:,/-]*$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** posixpath.normpath for absolute paths: collapses '.', '..' and repeated slashes. */
function normAbs(path: string): string {
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return "/" + out.join("/");
}

/** Mirrors check_input_path: absolute, normalised, under /workspace or /inputs, not in the outputs dir. */
export function inputPathError(path: string): string | null {
  if (path.includes("\0") || !path.startsWith("/") || normAbs(path) !== path) {
    return `Mount path ${path} must be absolute and normalised (no '..', '.', '//' or trailing '/').`;
  }
  if (path.length > 1024) return "Mount paths are at most 1024 characters.";
  const under = path.startsWith("/workspace/") || path.startsWith("/inputs/");
  if (!under || path === OUTPUTS_DIR || path.startsWith(OUTPUTS_DIR + "/")) {
    return `Mount path ${path} must lie under /workspace or /inputs (not /workspace/outputs).`;
  }
  return null;
}

/** Mirrors check_output_pattern: a path or glob under /workspace/outputs (absolute or relative to it), no '..'. */
export function outputPatternError(pattern: string): string | null {
  if (pattern.length > 1024) return "Output patterns are at most 1024 characters.";
  const rel = (pattern.startsWith(OUTPUTS_DIR + "/") ? pattern.slice(OUTPUTS_DIR.length + 1) : pattern).replace(/\/+$/, "");
  if (rel.includes("\0") || rel.startsWith("/") || !rel || rel.split("/").some((p) => p === "" || p === "." || p === "..")) {
    return `${pattern} must be a path or glob under ${OUTPUTS_DIR} without '..'.`;
  }
  return null;
}

/** Lines "NAME" or "NAME -> /mount/path" (an artifact id works as NAME); blank lines and # comments skipped. */
export function parseInputs(text: string): { value: TaskInput[]; error: string | null } {
  const value: TaskInput[] = [];
  const paths = new Set<string>();
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(\S+)(?:\s*->\s*(\S+))?$/.exec(line);
    if (!m) return { value, error: `Line ${i + 1}: expected NAME or NAME -> /mount/path.` };
    const [, artifact, path] = m;
    if (artifact.length > 512 || !(ARTIFACT_RE.test(artifact) || UUID_RE.test(artifact))) {
      return { value, error: `Line ${i + 1}: '${artifact.slice(0, 60)}' is not an artifact name or id.` };
    }
    const mount = path ?? (UUID_RE.test(artifact) ? null : `/inputs/${artifact.split("/").pop()}`);
    if (path) {
      const err = inputPathError(path);
      if (err) return { value, error: `Line ${i + 1}: ${err}` };
    }
    if (mount) {
      if (paths.has(mount)) return { value, error: `Line ${i + 1}: two inputs mounted at ${mount}.` };
      paths.add(mount);
    }
    value.push(path ? { artifact, path } : { artifact });
  }
  if (value.length > MAX_TASK_FILES) return { value, error: `At most ${MAX_TASK_FILES} inputs.` };
  return { value, error: null };
}

/** One output path or glob per line; blank lines and # comments skipped. */
export function parseOutputs(text: string): { value: string[]; error: string | null } {
  const value: string[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const err = outputPatternError(line);
    if (err) return { value, error: `Line ${i + 1}: ${err}` };
    value.push(line);
  }
  if (value.length > MAX_TASK_FILES) return { value, error: `At most ${MAX_TASK_FILES} output patterns.` };
  return { value, error: null };
}
