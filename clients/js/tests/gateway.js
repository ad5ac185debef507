// Real gateways for the package's tests: `metadata-gateway local-ivs` and `serve` from the
// project's .venv, as child processes on 127.0.0.1, stopped with SIGTERM like in production.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const VENV = process.env.MG_VENV ?? resolve(import.meta.dirname, "../../../.venv");
const BIN = join(VENV, "bin", "metadata-gateway");
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** Poll `predicate` (sync or async) until it holds, or fail after `within` ms. */
export async function waitFor(predicate, { within = 10_000, every = 25, what = "condition" } = {}) {
  const deadline = Date.now() + within;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${within} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A port nothing listens on now (so that a gateway can be restarted on it). */
export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/** Start `args` and wait for a stderr line matching `pattern`; resolves to {child, match, log}. */
async function startProcess(args, pattern, env = {}) {
  const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  const log = [];
  let buffer = "";
  const found = new Promise((resolveFound, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start:\n${log.join("\n").slice(-2000)}`)), START_TIMEOUT_MS);
    child.stderr.on("data", (chunk) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const line of lines) {
        log.push(line);
        const match = line.match(pattern);
        if (match) {
          clearTimeout(timer);
          resolveFound(match);
        }
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited (${code}):\n${log.join("\n").slice(-2000)}`));
    });
  });
  const match = await found;
  return { child, match, log };
}

/** SIGTERM (a graceful drain), then SIGKILL if it has not exited in time. */
export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** A local IVS with one live channel; `events(arn)` are the cue ids viewers received. */
export async function startLocalIvs() {
  const { child, match } = await startProcess(["local-ivs", "--port", "0"], /listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const url = match[1];
  const post = async (path, body) => {
    const response = await fetch(`${url}${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json();
  };
  return {
    url,
    child,
    async channel(name) {
      const { channel } = await post("/CreateChannel", { name });
      await post("/_local/streams", { channelArn: channel.arn });
      return channel.arn;
    },
    /** The cue ids in the payloads IVS accepted for `arn`, in order. */
    async ids(arn) {
      const response = await fetch(`${url}/_local/metadata?channelArn=${encodeURIComponent(arn)}`);
      const { events } = await response.json();
      return events.flatMap((event) => JSON.parse(event.metadata).c.map((item) => item.i));
    },
    stop: () => stop(child),
  };
}

/**
 * A gateway sending to `ivs`, with API token `token`; `restart()` stops it with SIGTERM and
 * starts a new process on the same port.
 */
export async function startGateway(ivs, { token, port, channels = {}, args = [], rate = 1_000_000 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "mg-js-"));
  const sha = createHash("sha256").update(token).digest("hex");
  const aliases = Object.entries(channels).map(([alias, arn]) => `${alias} = "${arn}"`);
  await writeFile(join(dir, "gateway.toml"), `[channels]\n${aliases.join("\n")}\n\n[[tokens]]\nname = "js"\nsha256 = "${sha}"\nrate = ${rate}\n`);
  port ??= await freePort();
  const argv = ["serve", "--config", join(dir, "gateway.toml"), "--endpoint-url", ivs.url, "--port", String(port), "--drain-timeout", "10", ...args];
  const env = { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", MG_TOKENS_FILE: "" };
  const launch = () => startProcess(argv, /"gateway listening"/, env);
  let running = await launch();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get child() {
      return running.child;
    },
    log: () => running.log,
    async restart() {
      await stop(running.child);
      running = await launch();
    },
    stop: () => stop(running.child),
  };
}
