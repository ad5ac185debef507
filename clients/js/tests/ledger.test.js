// The stream's rules, exactly, without sockets or clocks: times are plain numbers.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Backoff, GatewayError, RetryPolicy, StreamLedger } from "../index.js";
import { chunks } from "../ledger.js";

const ARN = "arn:aws:ivs:us-west-2:123456789012:channel/abc";
const cue = (id) => ({ channel: ARN, type: "custom", data: {}, id });
const ack = (ref, ...entries) => JSON.stringify({ op: "ack", ref, cues: entries });
const queued = (id) => ({ id, channel: ARN, status: "queued" });
const nack = (ref, error) => JSON.stringify({ op: "nack", ref, error });
const receipt = (op, ids, extra = {}) => JSON.stringify({ op, channel: ARN, ids, ...extra });
const written = (ledger, now = 0) => ledger.due(now).frames.map((f) => JSON.parse(f.data));
const ledgerAt = () => {
  const ledger = new StreamLedger({ retry: new RetryPolicy({ maxRetries: 3, deadline: 10 }), rand: () => 0 });
  ledger.connected(0);
  return ledger;
};

describe("StreamLedger", () => {
  test("writes a frame once per connection; its ack resolves it and its receipt settles it", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    assert.deepEqual(written(ledger), [{ ...cue("a"), op: "cue", ref: frame.ref }]);
    assert.deepEqual(written(ledger), []);
    assert.deepEqual(ledger.handle(ack(frame.ref, queued("a")), 0), [{ type: "resolve", ref: frame.ref, value: queued("a") }]);
    assert.deepEqual([ledger.unsettled, ledger.settled], [1, false]);
    const [effect] = ledger.handle(receipt("sent", ["a"], { at: 12.5 }), 0);
    assert.deepEqual(effect.receipt, { op: "sent", channel: ARN, ids: ["a"], at: 12.5 });
    assert.deepEqual([ledger.unsettled, ledger.settled], [0, true]);
  });

  test("after a reconnect, unacked frames and acked-but-unreceipted cues go again with the same ids", () => {
    const ledger = ledgerAt();
    const first = ledger.submit([cue("a"), cue("b")], { single: false, now: 0 });
    const second = ledger.submit([cue("c")], { single: true, now: 0 });
    written(ledger);
    ledger.handle(ack(first.ref, queued("a"), queued("b")), 0);
    ledger.handle(receipt("sent", ["a"], { at: 1 }), 0);
    assert.equal(ledger.connected(1), 1); // b has no receipt: it goes again, first
    const frames = written(ledger, 1);
    assert.deepEqual(frames.map((f) => f.op), ["cues", "cue"]);
    assert.deepEqual(frames[0].cues, [cue("b")]);
    assert.deepEqual([frames[1].ref, frames[1].id], [second.ref, "c"]);
    // A gateway that still knows b says it was delivered: the ledger makes its receipt.
    const effects = ledger.handle(ack(frames[0].ref, { ...queued("b"), status: "duplicate", delivered: true }), 1);
    assert.deepEqual(effects, [{ type: "receipt", receipt: { op: "sent", channel: ARN, ids: ["b"], at: null } }]);
    assert.equal(ledger.resent, 1);
  });

  test("a dropped receipt for shutdown is not final: the cue goes to the next gateway", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    ledger.handle(ack(frame.ref, queued("a")), 0);
    assert.deepEqual(ledger.handle(receipt("dropped", ["a"], { reason: "shutdown" }), 0), []);
    ledger.connected(1);
    assert.deepEqual(written(ledger, 1)[0].cues, [cue("a")]);
  });

  test("queue_full is retried after retry_after_ms; shutting_down holds writes for the next connection", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    assert.deepEqual(ledger.handle(nack(frame.ref, { code: "queue_full", retry_after_ms: 250 }), 0), []);
    assert.deepEqual(ledger.due(0.2), { frames: [], wakeAt: 0.25 });
    assert.equal(ledger.due(0.25).frames.length, 1);
    ledger.handle(nack(frame.ref, { code: "shutting_down", retry_after_ms: 5000 }), 0.3);
    ledger.submit([cue("b")], { single: true, now: 0.3 });
    assert.deepEqual(ledger.due(1), { frames: [], wakeAt: 5.3 });
    ledger.connected(2);
    assert.deepEqual(written(ledger, 2).map((f) => f.id), ["a", "b"]);
  });

  test("other nacks reject with the gateway's code and its HTTP status; retries are bounded", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    const [effect] = ledger.handle(nack(frame.ref, { code: "forbidden", message: "no", channel: ARN }), 0);
    assert.equal(effect.type, "reject");
    assert.ok(effect.error instanceof GatewayError);
    assert.deepEqual([effect.error.status, effect.error.code, effect.error.details.channel], [403, "forbidden", ARN]);
    const full = ledger.submit([cue("b")], { single: true, now: 0 });
    for (let n = 0; n < 3; n++) {
      assert.equal(ledger.due(n).frames.length, 1);
      assert.deepEqual(ledger.handle(nack(full.ref, { code: "queue_full", retry_after_ms: 100 }), n), []);
    }
    assert.equal(ledger.due(3).frames.length, 1);
    assert.equal(ledger.handle(nack(full.ref, { code: "queue_full", retry_after_ms: 100 }), 3)[0].error.code, "queue_full");
  });

  test("a re-sent cue the gateway refuses gets a dropped receipt with the error code", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    ledger.handle(ack(frame.ref, queued("a")), 0);
    ledger.connected(1);
    const [resend] = written(ledger, 1);
    const effects = ledger.handle(nack(resend.ref, { code: "forbidden" }), 1);
    assert.deepEqual(effects[0], { type: "receipt", receipt: { op: "dropped", channel: ARN, ids: ["a"], reason: "forbidden" } });
    assert.ok(ledger.settled);
  });

  test("an answer for a frame written on an older connection is ignored; a ref-less nack answers the oldest", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    ledger.connected(1);
    assert.deepEqual(ledger.handle(ack(frame.ref, queued("a")), 1), []);
    written(ledger, 1);
    const [effect] = ledger.handle(nack(null, { code: "body_too_large" }), 1);
    assert.deepEqual([effect.type, effect.ref, effect.error.status], ["reject", frame.ref, 413]);
  });

  test("a close with 1009 fails the oldest unanswered frame instead of sending it again", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    const [effect] = ledger.closed(1009);
    assert.deepEqual([effect.ref, effect.error.code], [frame.ref, "body_too_large"]);
    assert.deepEqual(ledger.closed(1006), []);
  });

  test("a cancel's ack resolves it and settles a cue of an earlier connection with dropped/cancelled", () => {
    const ledger = ledgerAt();
    const frame = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    ledger.handle(ack(frame.ref, queued("a")), 0);
    const cancel = ledger.submitCancel("a", "show", { now: 0 });
    assert.deepEqual(written(ledger).at(-1), { op: "cancel", ref: cancel.ref, channel: "show", id: "a" });
    const effects = ledger.handle(ack(cancel.ref, { id: "a", channel: ARN, status: "cancelled", state: "scheduled" }), 0);
    assert.deepEqual(effects, [
      { type: "receipt", receipt: { op: "dropped", channel: ARN, ids: ["a"], reason: "cancelled" } },
      { type: "resolve", ref: cancel.ref, value: { id: "a", channel: ARN, status: "cancelled", state: "scheduled" } },
    ]);
    assert.ok(ledger.settled);
  });

  test("end rejects every waiter; abandon forgets unwritten frames and keeps written ones unwaited", () => {
    const ledger = ledgerAt();
    const sent = ledger.submit([cue("a")], { single: true, now: 0 });
    written(ledger);
    const unsent = ledger.submit([cue("b")], { single: true, now: 0 });
    ledger.abandon(unsent.ref);
    ledger.abandon(sent.ref);
    assert.deepEqual([...ledger.frames.keys()], [sent.ref]);
    const waiting = ledger.submit([cue("c")], { single: true, now: 0 });
    const error = new GatewayError(0, "stream_closed", "closed");
    assert.deepEqual(ledger.end(error), [{ type: "reject", ref: waiting.ref, error }]);
  });

  test("refuses a frame larger than the gateway takes before it is written", () => {
    const ledger = new StreamLedger({ maxFrameBytes: 100 });
    assert.throws(() => ledger.submit([{ ...cue("a"), data: "x".repeat(200) }], { single: true, now: 0 }), { code: "body_too_large", status: 413 });
  });

  test("chunks groups at most 100 items and about maxBytes of JSON", () => {
    const items = Array.from({ length: 250 }, (_, n) => ({ cue: n }));
    assert.deepEqual(chunks(items, 1e9).map((g) => g.length), [100, 100, 50]);
    assert.deepEqual(chunks([{ cue: "x".repeat(8) }, { cue: "y".repeat(8) }], 15).map((g) => g.length), [1, 1]);
  });
});

describe("Backoff and RetryPolicy", () => {
  test("attempt n waits between half and all of initial * 2**n, capped", () => {
    const backoff = new Backoff({ initial: 0.1, maximum: 1 });
    assert.deepEqual([0, 1, 2, 3, 4].map((n) => backoff.delay(n, () => 0)), [0.05, 0.1, 0.2, 0.4, 0.5]);
    assert.deepEqual([0, 3, 60].map((n) => backoff.delay(n, () => 1)), [0.1, 0.8, 1]);
    assert.throws(() => new Backoff({ initial: 2, maximum: 1 }), RangeError);
  });

  test("Retry-After wins over the backoff, within max retries and the deadline", () => {
    const policy = new RetryPolicy({ maxRetries: 2, deadline: 1 });
    assert.equal(policy.wait(0, { started: 0, now: 0, retryAfter: 0.5, rand: () => 0 }), 0.5);
    assert.equal(policy.wait(0, { started: 0, now: 0, retryAfter: 0.5, rand: () => 1 }), 0.55);
    assert.equal(policy.wait(0, { started: 0, now: 0.6, retryAfter: 0.5, rand: () => 0 }), null);
    assert.equal(policy.wait(2, { started: 0, now: 0, rand: () => 0 }), null);
  });
});
