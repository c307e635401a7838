import { describe, expect, it } from "vitest";
import { KEEP, loadMemory, memoryKey, remember, saveMemory } from "./submitMemory";

const store = () => {
  const m = new Map<string, string>();
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), m };
};

describe("submit memory", () => {
  it("remembers repositories, Dockerfiles and typed refs per user, newest first, bounded", () => {
    const s = store();
    let mem = loadMemory(s, "mia");
    expect(mem.code_repos).toEqual([]);
    for (let i = 0; i < KEEP + 3; i++) {
      mem = remember(mem, { code_repo_url: `https://x/c${i}.git`, env_repo_url: "https://x/env.git", dockerfile_path: "Dockerfile" }, { code: "main", env: `v${i}` });
    }
    mem = remember(mem, { code_repo_url: "https://x/c9.git", env_repo_url: "https://x/env.git", dockerfile_path: "gpu/Dockerfile" }, { code: "dev", env: "v1" });
    saveMemory(s, "mia", mem);
    const back = loadMemory(s, "mia");
    expect(back.code_repos[0]).toBe("https://x/c9.git");
    expect(back.code_repos).toHaveLength(KEEP);
    expect(back.dockerfiles).toEqual(["gpu/Dockerfile", "Dockerfile"]);
    expect(back.refs["https://x/c9.git"]).toEqual(["dev", "main"]);
    expect(back.refs["https://x/env.git"].slice(0, 2)).toEqual(["v1", `v${KEEP + 2}`]);
    expect(back.refs["https://x/c0.git"]).toBeUndefined(); // forgotten with its repository
    expect(loadMemory(s, "someone-else").code_repos).toEqual([]);
  });
  it("reads a damaged entry as empty", () => {
    const s = store();
    s.m.set(memoryKey("mia"), "{not json");
    expect(loadMemory(s, "mia").refs).toEqual({});
    s.m.set(memoryKey("mia"), JSON.stringify({ code_repos: [1, "a"], refs: { r: "x" } }));
    expect(loadMemory(s, "mia")).toEqual({ code_repos: ["a"], env_repos: [], dockerfiles: [], refs: { r: [] } });
  });
});
