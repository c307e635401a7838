import { describe, expect, it } from "vitest";
import { EMPTY_TASK_FORM, buildTaskCreate, commitError, dockerfilePathError, formFromTask, repoUrlError } from "./taskForm";
import type { Task } from "./types";

const SHA = "a".repeat(40);

describe("task form validation mirrors the API", () => {
  it("accepts https, ssh, scp-like and file URLs", () => {
    expect(repoUrlError("https://example.com/x.git")).toBeNull();
    expect(repoUrlError("ssh://git@example.com:22/x.git")).toBeNull();
    expect(repoUrlError("git@example.com:team/x.git")).toBeNull();
    expect(repoUrlError("file:///srv/git/x")).toBeNull();
  });
  it("rejects other schemes and odd URLs", () => {
    expect(repoUrlError("http://example.com/x")).toMatch(/not allowed/);
    expect(repoUrlError("ext::sh -c id")).not.toBeNull();
    expect(repoUrlError("-uhttps://x")).toMatch(/'-'/);
    expect(repoUrlError("https:///x")).toMatch(/host/);
    expect(repoUrlError("file://relative/x")).toMatch(/absolute/);
    expect(repoUrlError("")).toBe("Required.");
  });
  it("wants full commit ids", () => {
    expect(commitError(SHA)).toBeNull();
    expect(commitError("b".repeat(64))).toBeNull();
    expect(commitError("abc123")).not.toBeNull();
    expect(commitError("g".repeat(40))).not.toBeNull();
  });
  it("wants a relative dockerfile path without '..'", () => {
    expect(dockerfilePathError("docker/Dockerfile")).toBeNull();
    expect(dockerfilePathError("/etc/Dockerfile")).not.toBeNull();
    expect(dockerfilePathError("a/../../Dockerfile")).toMatch(/\.\./);
    expect(dockerfilePathError("a\\b")).not.toBeNull();
  });
  it("builds a request body, lower-casing commits", () => {
    const { body, errors } = buildTaskCreate({
      ...EMPTY_TASK_FORM,
      name: " demo ",
      code_repo_url: "https://example.com/c.git",
      code_commit_id: "A".repeat(40),
      env_repo_url: "https://example.com/e.git",
      env_commit_id: SHA,
      command: "echo hi",
      env: "FOO=bar\n# comment\nX_1 = 2",
      labels: "gpu=a100",
    });
    expect(errors).toEqual({});
    expect(body).toMatchObject({
      name: "demo",
      code_commit_id: "a".repeat(40),
      command: "echo hi",
      env: { FOO: "bar", X_1: "2" },
      resources: { cpus: 1, memory_mb: 512, gpus: 0, labels: { gpu: "a100" } },
      timeout_s: 3600,
      max_attempts: 3,
    });
  });
  it("splits argv mode by line and reports every bad field", () => {
    const { body, errors } = buildTaskCreate({
      ...EMPTY_TASK_FORM,
      command_mode: "argv",
      command: "",
      env: "1BAD=x",
      cpus: "0",
      memory_mb: "8",
      max_attempts: "0",
    });
    expect(body).toBeNull();
    expect(Object.keys(errors).sort()).toEqual(
      ["code_commit_id", "code_repo_url", "command", "cpus", "env", "env_commit_id", "env_repo_url", "max_attempts", "memory_mb"].sort(),
    );
    const ok = buildTaskCreate({
      ...EMPTY_TASK_FORM,
      code_repo_url: "https://e/c",
      code_commit_id: SHA,
      env_repo_url: "https://e/e",
      env_commit_id: SHA,
      command_mode: "argv",
      command: "python\n-c\nprint(1)",
    });
    expect(ok.body?.command).toEqual(["python", "-c", "print(1)"]);
  });
});

describe("secret references in the task form", () => {
  const base = {
    ...EMPTY_TASK_FORM,
    code_repo_url: "https://example.com/x.git",
    code_commit_id: SHA,
    env_repo_url: "https://example.com/y.git",
    env_commit_id: SHA,
    command: "true",
  };
  it("sends ENV=reference lines and credentials as references", () => {
    const { body, errors } = buildTaskCreate({
      ...base,
      secrets: "WANDB_API_KEY=wandb\nHF=global/hf\nS3=project:p1/s3",
      code_credential: "deploy-key",
      known_hosts: "global/hosts",
    });
    expect(errors).toEqual({});
    expect(body?.secrets).toEqual({ WANDB_API_KEY: "wandb", HF: "global/hf", S3: "project:p1/s3" });
    expect(body?.credentials).toEqual({ code_repo: "deploy-key", known_hosts: "global/hosts" });
  });
  it("refuses bad references and a variable set twice", () => {
    expect(buildTaskCreate({ ...base, secrets: "K=not a ref" }).errors.secrets).toMatch(/secret name/);
    expect(buildTaskCreate({ ...base, env: "K=1", secrets: "K=k1" }).errors.secrets).toMatch(/once/);
    expect(buildTaskCreate({ ...base, code_credential: "a/b/c" }).errors.code_credential).toMatch(/secret name/);
  });
});

describe("formFromTask", () => {
  it("fills the form from a task so it can be resubmitted unchanged", () => {
    const t = {
      name: "run-1",
      code_repo_url: "https://example.com/c.git",
      code_commit_id: "a".repeat(40),
      env_repo_url: "https://example.com/e.git",
      env_commit_id: "b".repeat(40),
      dockerfile_path: "docker/Dockerfile",
      command: ["/bin/sh", "-c", "python train.py --lr 0.1"],
      env: { SEED: "1" },
      resources: { cpus: 2, memory_mb: 1024, gpus: 0, labels: { zone: "a" } },
      timeout_s: 600,
      priority: 3,
      max_attempts: 2,
      retry_on_failure: true,
      secrets: { API_KEY: "wandb" },
    } as unknown as Task;
    const v = formFromTask(t);
    expect(v.command_mode).toBe("shell");
    const { body, errors } = buildTaskCreate(v);
    expect(errors).toEqual({});
    expect(body).toMatchObject({ name: "run-1", command: "python train.py --lr 0.1", env: { SEED: "1" }, timeout_s: 600, priority: 3 });
    expect(formFromTask({ ...t, command: ["python", "a b.py"] } as Task)).toMatchObject({ command_mode: "argv", command: "python\na b.py" });
  });
});

describe("branches, tags and attachments in the task form", () => {
  const base = { ...EMPTY_TASK_FORM, code_repo_url: "https://x/c.git", env_repo_url: "https://x/e.git", command: "echo" };
  it("takes a branch or tag once it is resolved, and sends the commit it names", () => {
    expect(commitError("main")).toMatch(/looked up/);
    expect(commitError("main", SHA)).toBeNull();
    expect(commitError("a..b")).toMatch(/40 or 64 hex/);
    expect(commitError("-x")).toMatch(/40 or 64 hex/);
    const v = { ...base, code_commit_id: "main", env_commit_id: "v1.2" };
    expect(buildTaskCreate(v).errors.code_commit_id).toMatch(/looked up/);
    const { body } = buildTaskCreate(v, { code_commit_id: SHA, env_commit_id: "b".repeat(40) });
    expect(body?.code_commit_id).toBe(SHA);
    expect(body?.env_commit_id).toBe("b".repeat(40));
    // A commit id typed in the field wins over an old resolution.
    expect(buildTaskCreate({ ...v, code_commit_id: "C".repeat(40) }, { code_commit_id: SHA, env_commit_id: SHA }).body?.code_commit_id).toBe("c".repeat(40));
  });
  it("builds the projects and research extensions, parameters typed", () => {
    const v = { ...base, code_commit_id: SHA, env_commit_id: SHA, work_item_id: "w1", experiment_id: "x1", run_params: "lr=0.01\nopt=adam\nema=true" };
    expect(buildTaskCreate(v).body?.extensions).toEqual({
      projects: { work_item_id: "w1" },
      research: { experiment_id: "x1", params: { lr: 0.01, opt: "adam", ema: true } },
    });
    expect(buildTaskCreate({ ...v, experiment_id: "" }).errors.run_params).toMatch(/experiment/);
    expect(buildTaskCreate({ ...v, work_item_id: "", experiment_id: "", run_params: "" }).body?.extensions).toBeUndefined();
  });
  it("carries inputs, outputs, credentials and attachments over from a task", () => {
    const t = {
      name: "n",
      command: ["echo"],
      env: {},
      resources: { cpus: 1, memory_mb: 256, gpus: 0, labels: {} },
      extra: {
        inputs: [{ artifact_id: "art-1", path: "/inputs/data.csv", name: "data.csv" }],
        outputs: ["*.pt"],
        credentials: { code_repo: { ref: "deploy-key", id: "s1" } },
        extensions: { projects: { work_item_id: "w1" }, research: { experiment_id: "x1", params: { lr: 0.1 } } },
      },
    } as unknown as Task;
    expect(formFromTask(t)).toMatchObject({
      inputs: "art-1 -> /inputs/data.csv",
      outputs: "*.pt",
      code_credential: "deploy-key",
      work_item_id: "w1",
      experiment_id: "x1",
      run_params: "lr=0.1",
    });
  });
});
