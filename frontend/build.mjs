// Bundles the demo viewer (amazon-ivs-player is CommonJS) and copies the player's wasm worker
// next to it, into the Python package, where the gateway serves them.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const out = here("../metadata_gateway/web/static/build/");
const playerAssets = here("node_modules/amazon-ivs-player/dist/assets/");

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await esbuild.build({
  entryPoints: [here("src/viewer.js")],
  outfile: `${out}viewer.js`,
  bundle: true,
  // clients/js/cue_decoder.js imports fflate: resolve it from here whether or not clients/js
  // has its own node_modules.
  nodePaths: [here("node_modules")],
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
});
for (const name of ["amazon-ivs-wasmworker.min.js", "amazon-ivs-wasmworker.min.wasm"]) {
  await copyFile(playerAssets + name, out + name);
}
console.log(`built the viewer into ${out}`);
