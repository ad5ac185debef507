import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { CueDecoder, parseEnvelope } from "./cue_decoder.js";

const envelope = (...items) => JSON.stringify({ v: 1, c: items });

describe("CueDecoder", () => {
  test("decodes an envelope into its cues, in order", () => {
    const decoder = new CueDecoder();
    const text = envelope(
      { i: "q1", t: "quiz", d: { question_id: "q1", text: "2+2?", options: ["3", "4"] } },
      { i: "p1", t: "poll", d: { poll_id: "p1", yes: 12, no: 3 } },
      { i: "c1", t: "caption", d: { text: "Hello", lang: "en" } },
    );
    assert.deepEqual(decoder.decode(text), [
      {
        kind: "cue",
        id: "q1",
        type: "quiz",
        data: { question_id: "q1", text: "2+2?", options: ["3", "4"] },
      },
      { kind: "cue", id: "p1", type: "poll", data: { poll_id: "p1", yes: 12, no: 3 } },
      { kind: "cue", id: "c1", type: "caption", data: { text: "Hello", lang: "en" } },
    ]);
  });

  test("drops a cue whose id it has already passed on, in a later payload or the same one", () => {
    const decoder = new CueDecoder();
    const first = envelope({ i: "s1", t: "state", d: { question_id: "q5" } });
    assert.equal(decoder.decode(first).length, 1);
    assert.deepEqual(decoder.decode(first), []); // a state re-send, or an at-least-once repeat
    const mixed = envelope(
      { i: "s1", t: "state", d: { question_id: "q5" } },
      { i: "n1", t: "custom", d: { n: 1 } },
      { i: "n1", t: "custom", d: { n: 1 } },
    );
    assert.deepEqual(
      decoder.decode(mixed).map((cue) => cue.kind === "cue" && cue.id),
      ["n1"],
    );
    assert.ok(decoder.has("s1"));
  });

  test("passes text that is not the envelope through as a raw payload, every time", () => {
    const decoder = new CueDecoder();
    for (const text of [
      "GOAL 1-0",
      '{"score": "1-0"}',
      JSON.stringify({ v: 2, c: [] }),
      JSON.stringify({ v: 1, c: [{ i: "x", t: "quiz" }] }), // no `d`: a lookalike
      JSON.stringify({ v: 1, c: [{ i: 7, t: "quiz", d: {} }] }),
      "null",
      "[1,2]",
      "",
    ]) {
      assert.deepEqual(decoder.decode(text), [{ kind: "raw", text }]);
      assert.deepEqual(decoder.decode(text), [{ kind: "raw", text }]);
    }
  });

  test("keeps data exactly as posted, null and non-ASCII text included", () => {
    const decoder = new CueDecoder();
    const data = { text: "¿Qué? — 日本語 🎉", nested: { list: [1, null, true] } };
    const [cue] = decoder.decode(envelope({ i: "u1", t: "caption", d: data }));
    assert.deepEqual(cue, { kind: "cue", id: "u1", type: "caption", data });
    const [empty] = decoder.decode(envelope({ i: "u2", t: "custom", d: null }));
    assert.deepEqual(empty, { kind: "cue", id: "u2", type: "custom", data: null });
  });

  test("remembers a bounded number of ids, forgetting the oldest first", () => {
    const decoder = new CueDecoder({ rememberedIds: 2 });
    for (const id of ["a", "b", "c"]) decoder.decode(envelope({ i: id, t: "custom", d: {} }));
    assert.equal(decoder.size, 2);
    assert.ok(!decoder.has("a"));
    assert.ok(decoder.has("b") && decoder.has("c"));
    assert.equal(decoder.decode(envelope({ i: "a", t: "custom", d: {} })).length, 1);
  });

  test("refuses a memory that is not a positive integer", () => {
    assert.throws(() => new CueDecoder({ rememberedIds: 0 }), RangeError);
    assert.throws(() => new CueDecoder({ rememberedIds: 1.5 }), RangeError);
  });
});

describe("parseEnvelope", () => {
  test("returns every cue, repeats included, and null for anything else", () => {
    const text = envelope({ i: "a", t: "quiz", d: 1 }, { i: "a", t: "quiz", d: 1 });
    assert.equal(parseEnvelope(text)?.length, 2);
    assert.equal(parseEnvelope("not json"), null);
    assert.deepEqual(parseEnvelope(envelope()), []);
  });
});
