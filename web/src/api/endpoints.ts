/**
 * Every server route the UI calls, as data. tests/browser/test_openapi_client.py reads this
 * table and checks each entry against the server's /schema/openapi.json.
 * One entry per line: `name: ["METHOD", "/path/{param}"],`.
 */
export const ENDPOINTS = {
  login: ["POST", "/api/auth/login"],
  logout: ["POST", "/api/auth/logout"],
  me: ["GET", "/api/auth/me"],
  users: ["GET", "/api/users"],
  userCreate: ["POST", "/api/users"],
  userUpdate: ["PATCH", "/api/users/{id}"],
  tokens: ["GET", "/api/tokens"],
  tokenCreate: ["POST", "/api/tokens"],
  tokenRevoke: ["DELETE", "/api/tokens/{id}"],
  nodeTokens: ["GET", "/api/node-tokens"],
  nodeTokenCreate: ["POST", "/api/node-tokens"],
  nodeTokenRevoke: ["DELETE", "/api/node-tokens/{id}"],
  tasks: ["GET", "/api/tasks"],
  taskCreate: ["POST", "/api/tasks"],
  gitResolve: ["POST", "/api/git/resolve"],
  task: ["GET", "/api/tasks/{id}"],
  taskTrace: ["GET", "/api/tasks/{id}/trace"],
  taskLinks: ["GET", "/api/tasks/{id}/links"],
  taskCancel: ["POST", "/api/tasks/{id}/cancel"],
  taskRetry: ["POST", "/api/tasks/{id}/retry"],
  taskLogs: ["GET", "/api/tasks/{id}/logs"],
  taskLogStream: ["GET", "/api/tasks/{id}/logs/stream"],
  nodes: ["GET", "/api/nodes"],
  node: ["GET", "/api/nodes/{id}"],
  nodeDrain: ["POST", "/api/nodes/{id}/drain"],
  nodeUndrain: ["POST", "/api/nodes/{id}/undrain"],
  nodeClearCaches: ["POST", "/api/nodes/{id}/clear-caches"],
  nodeDelete: ["DELETE", "/api/nodes/{id}"],
  nodeSamples: ["GET", "/api/nodes/{id}/samples"],
  events: ["GET", "/api/events"],
  eventStream: ["GET", "/api/events/stream"],
  stats: ["GET", "/api/stats"],
  usage: ["GET", "/api/usage"],
  health: ["GET", "/health"],
  nodeMaintenance: ["POST", "/api/nodes/{id}/maintenance"],
  files: ["GET", "/api/files"],
  fileCreate: ["POST", "/api/files"],
  fileByName: ["GET", "/api/files/by-name/{name*}"],
  file: ["GET", "/api/files/{id}"],
  fileDownload: ["GET", "/api/files/{id}/download"],
  fileResume: ["POST", "/api/files/{id}/upload"],
  fileComplete: ["POST", "/api/files/{id}/complete"],
  fileDelete: ["DELETE", "/api/files/{id}"],
  secrets: ["GET", "/api/secrets"],
  secretPutUser: ["PUT", "/api/secrets/user/{name}"],
  secretPutGlobal: ["PUT", "/api/secrets/global/{name}"],
  secretPutProject: ["PUT", "/api/secrets/project/{project}/{name}"],
  secretDelete: ["DELETE", "/api/secrets/{id}"],
} as const satisfies Record<string, readonly ["GET" | "POST" | "PUT" | "PATCH" | "DELETE", string]>;

export type EndpointName = keyof typeof ENDPOINTS;

/** Endpoints that belong to optional server features; the UI hides their pages when they answer 404. */
export const OPTIONAL_ENDPOINTS: readonly EndpointName[] = [];

/**
 * Fills `{param}` placeholders (URL-encoded) in an endpoint's path; `{param*}` is a path
 * parameter whose slashes stay slashes (each segment encoded on its own).
 */
export function endpointPath(name: EndpointName, params: Record<string, string | number> = {}): string {
  return ENDPOINTS[name][1].replace(/\{(\w+)(\*?)\}/g, (_, key: string, star: string) => {
    if (!(key in params)) throw new Error(`missing path parameter ${key} for ${name}`);
    const value = String(params[key]);
    return star ? value.split("/").map(encodeURIComponent).join("/") : encodeURIComponent(value);
  });
}
