// The package as users get it: `npm pack`, installed into an empty folder, running the README's
// Node example against a real gateway.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { test } from "node:test";

import { startGateway, startLocalIvs, waitFor } from "./gateway.js";

const run = promisify(execFile);
const PACKAGE = resolve(import.meta.dirname, "..");
const TOKEN = "mgw_pack-test";

test("npm pack installs into an empty folder and runs the README's Node example", { timeout: 180_000 }, async () => {
  const folder = await mkdtemp(join(tmpdir(), "mg-pack-"));
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", folder], { cwd: PACKAGE });
  const [{ filename, files }] = JSON.parse(stdout);
  const packed = files.map((f) => f.path);
  assert.ok(packed.includes("index.d.ts") && packed.includes("cue_decoder.js"));
  assert.ok(!packed.some((path) => path.startsWith("tests/") || path.startsWith("node_modules/")), packed.join(" "));
  await writeFile(join(folder, "package.json"), JSON.stringify({ name: "empty", private: true, type: "module" }));
  // ws comes from the cache `npm ci` filled: the install needs no registry.
  await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(folder, filename)], { cwd: folder });
  const readme = await readFile(join(PACKAGE, "README.md"), "utf8");
  const example = readme.match(/```js example\n([\s\S]*?)```/)[1];
  await writeFile(join(folder, "example.mjs"), example);

  const ivs = await startLocalIvs();
  try {
    const arn = await ivs.channel("pack");
    const gw = await startGateway(ivs, { token: TOKEN, channels: { demo: arn } });
    try {
      const env = { ...process.env, MG_URL: gw.url, MG_TOKEN: TOKEN, MG_CHANNEL: "demo" };
      const { stdout: out } = await run(process.execPath, ["example.mjs"], { cwd: folder, env, timeout: 60_000 });
      const lines = out.trim().split("\n");
      assert.match(lines[0], /^queued [0-9a-f]{20}$/);
      assert.match(lines.at(-1), /^sent [0-9a-f]{20}$/);
      await waitFor(async () => (await ivs.ids(arn)).length === 2, { what: "both cues at IVS" });
    } finally {
      await gw.stop();
    }
  } finally {
    await ivs.stop();
  }
});
