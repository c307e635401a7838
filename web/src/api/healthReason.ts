/** A failing /health check ("local_agent", "exited with code 75") as a sentence saying what is affected. */

const SUBJECT: Record<string, string> = {
  database: "The database does not answer",
  migrations: "The database schema does not match this server version",
  local_agent: "This server's own compute node (the local agent) is not running",
  storage: "File storage cannot be reached, so uploads and downloads fail",
  secrets: "The secret store cannot be opened, so tasks that use secrets cannot start",
  backup: "Backups are not healthy",
  scheduler: "The scheduler is not placing tasks",
};

function clause(text: string): string {
  const t = text.trim().replace(/[.;]+$/, "");
  return t;
}

/** One check's failure as a full sentence: what it means for people, then the server's own words. */
export function checkSentence(name: string, answer: string): string {
  const subject = SUBJECT[name] ?? `The ${name.replace(/_/g, " ")} check is failing`;
  return `${subject} (${clause(answer)}).`;
}

/** A /health `reasons` entry ("local_agent: local agent exited with code 75") as a sentence. */
export function reasonSentence(reason: string): string {
  const m = /^([a-z_]+): (.*)$/s.exec(reason);
  return m ? checkSentence(m[1], m[2]) : `${clause(reason)}.`;
}
