// Runs the unit tests once per time zone: the UI must render Beijing time whatever the browser's TZ.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs");
const zones = ["UTC", "America/New_York", "Asia/Shanghai", "Pacific/Auckland", "Pacific/Kiritimati"];
for (const tz of zones) {
  process.stdout.write(`vitest with TZ=${tz}\n`);
  const r = spawnSync(process.execPath, [vitest, "run", "--reporter=dot", ...process.argv.slice(2)], {
    cwd: root,
    env: { ...process.env, TZ: tz },
    stdio: "inherit",
  });
  if (r.status !== 0) {
    process.stderr.write(`unit tests failed with TZ=${tz}\n`);
    process.exit(r.status ?? 1);
  }
}
