// Starts Debian's Chromium through playwright-core for the browser tests, and makes sure it
// goes away with this process.
import { createRequire } from "node:module";

// playwright-core is installed in frontend/ (npm ci); these scripts live outside it.
const require = createRequire(new URL("../../frontend/package.json", import.meta.url));
const { chromium } = require("playwright-core");

export const CHROMIUM = process.env.MG_CHROMIUM ?? "/usr/bin/chromium";
// What FACTS.md found works for a headless Chromium as root on these machines.
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
];

/**
 * Run `body(page)` in a fresh headless Chromium profile; the browser is closed however it ends.
 * @param {string} userDataDir - a new, empty directory (the test kills leftovers by it)
 * @param {(page: any) => Promise<unknown>} body
 */
export async function withPage(userDataDir, body) {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 800 },
  });
  const close = () => context.close().catch(() => {});
  const onSignal = async () => {
    await close();
    process.exit(143);
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const log = [];
    page.on("pageerror", (error) => log.push(`pageerror: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") {
        log.push(`${message.type()}: ${message.text().slice(0, 300)}`);
      }
    });
    const result = await body(page);
    return { ...result, browserLog: log.slice(-50) };
  } finally {
    await close();
  }
}

/** Read the JSON config file named on the command line. */
export async function config() {
  const { readFile } = await import("node:fs/promises");
  return JSON.parse(await readFile(process.argv[2], "utf8"));
}

/** Print the result as the last line of stdout, for the Python test to read. */
export function report(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
