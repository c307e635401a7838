/** A failing /health check ("local_agent", "exited with code 75") as a sentence saying what is affected. */

/** A /health check answer that starts so is a warning (works, but a person should act), not a failure. */
export const WARNING_PREFIX = "warning: ";

const SUBJECT: Record<string, string> = {
  database: "The database does not answer",
  migrations: "The database schema does not match this server version",
  local_agent: "This server's own compute node (the local agent) is not running",
  storage: "File storage cannot be reached, so uploads and downloads fail",
  secrets: "The secret store cannot be opened, so tasks that use secrets cannot start",
  backup: "Backups are not healthy",
  scheduler: "The scheduler is not placing tasks",
};

/** What the agent's final exit codes mean (unidesk/gateway_agent/cli.py and connection.py define them). */
const AGENT_EXIT: Record<string, string> = {
  "75": "another agent connected with the same node token and replaced it",
  "76": "it speaks a different protocol version than this server; upgrade it",
  "77": "the server refused its node token (wrong or revoked)",
  "78": "its configuration is invalid",
};

/** A known cause in the server's words ("exited with code 75") as what it means, else null. */
export function causeOf(answer: string): string | null {
  const code = /exited with code (\d+)/.exec(answer)?.[1];
  return code !== undefined ? (AGENT_EXIT[code] ?? null) : null;
}

function clause(text: string): string {
  const t = text.trim().replace(/[.;]+$/, "");
  return t;
}

/** One check's failure as a full sentence: what it means for people, why (when known), then the server's own words. */
export function checkSentence(name: string, answer: string): string {
  const subject = SUBJECT[name] ?? `The ${name.replace(/_/g, " ")} check is failing`;
  const cause = causeOf(answer);
  return `${subject}${cause ? `: ${cause}` : ""} (${clause(answer)}).`;
}

/** A /health `reasons` entry ("local_agent: local agent exited with code 75") as a sentence. */
export function reasonSentence(reason: string): string {
  const m = /^([a-z_]+): (.*)$/s.exec(reason);
  return m ? checkSentence(m[1], m[2]) : `${clause(reason)}.`;
}
