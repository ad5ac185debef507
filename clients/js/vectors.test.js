import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { CueDecoder } from "./cue_decoder.js";

// The same vectors as the Python decoder's tests (tests/test_vectors.py).
const vectors = JSON.parse(
  readFileSync(new URL("../../tests/vectors/payloads.json", import.meta.url), "utf8"),
);

describe("shared vectors", () => {
  for (const vector of vectors.cases) {
    test(vector.name, () => {
      /** @type {string[]} */
      let reasons = [];
      const decoder = new CueDecoder({ onDamage: (damage) => reasons.push(damage.reason) });
      vector.payloads.forEach((payload, n) => {
        reasons = [];
        assert.deepEqual(decoder.decode(payload), vector.expect[n], `payload ${n}`);
        assert.deepEqual(reasons, vector.damage[n], `damage of payload ${n}`);
      });
    });
  }

  test("a decoder fed any payload cut at any length never throws nor emits a partial cue", () => {
    const whole = vectors.cases.find((c) => c.name.startsWith("16 KB")).payloads;
    for (const payload of whole.slice(0, 2)) {
      for (let cut = 0; cut < payload.length; cut += 7) {
        const decoder = new CueDecoder();
        assert.deepEqual(decoder.decode(payload.slice(0, cut)).filter((d) => d.kind === "cue"), []);
      }
    }
  });
});
