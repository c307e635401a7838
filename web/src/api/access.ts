/** What the signed-in user may do, read from the server's access policy (never guessed from roles). */
import type { Me } from "./types";

/** Admin-only actions not tied to one thing (issue a node token, add a user): `GET /api/auth/me` lists them by kind. */
export function can(user: Me, kind: string, action: string): boolean {
  return (user.allowed_actions[kind] ?? []).includes(action);
}

/** Actions on one thing (a task's cancel/retry, a node's drain/delete): the thing carries `allowed_actions`. */
export function allows(thing: { allowed_actions?: string[] }, action: string): boolean {
  return (thing.allowed_actions ?? []).includes(action);
}
