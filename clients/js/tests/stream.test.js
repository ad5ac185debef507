import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { GatewayClient, GatewayError } from "../index.js";
import { startGateway, startLocalIvs, waitFor } from "./gateway.js";

const TOKEN = "mgw_stream-test";
let ivs;

before(async () => {
  ivs = await startLocalIvs();
});
after(async () => {
  await ivs?.stop();
});

const cue = (arn, n, extra = {}) => ({ channel: arn, type: "custom", data: { n }, ...extra });

/** Every receipt of `stream`, read through its async iterator until it ends. */
function collect(stream) {
  const receipts = [];
  const done = (async () => {
    for await (const receipt of stream) receipts.push(receipt);
  })();
  return { receipts, done };
}

describe("GatewayClient.stream against a real gateway", () => {
  test("acks each send, then receipts arrive as an async iterator and as events", async () => {
    const arn = await ivs.channel("acks");
    const gw = await startGateway(ivs, { token: TOKEN });
    try {
      const stream = await new GatewayClient(gw.url, { token: TOKEN }).stream();
      const events = [];
      stream.addEventListener("receipt", (event) => events.push(event.detail));
      const { receipts, done } = collect(stream);
      const one = await stream.send(cue(arn, 1));
      const many = await stream.send([cue(arn, 2), cue(arn, 3, { id: "three" })]);
      assert.equal(one.status, "queued");
      assert.deepEqual(many.map((r) => r.status), ["queued", "queued"]);
      await stream.waitSettled();
      assert.equal(stream.unsettled, 0);
      await stream.close();
      await done;
      const sent = receipts.flatMap((r) => (r.op === "sent" ? r.ids : []));
      assert.deepEqual(sent.sort(), [one.id, many[0].id, "three"].sort());
      assert.deepEqual(events, receipts);
      assert.ok(receipts.every((r) => r.channel === arn && typeof r.at === "number"));
    } finally {
      await gw.stop();
    }
  });

  test("nacks reject the send with a typed GatewayError; the stream carries on", async () => {
    const arn = await ivs.channel("nacks");
    const gw = await startGateway(ivs, { token: TOKEN });
    try {
      const stream = await new GatewayClient(gw.url, { token: TOKEN }).stream({ receipts: false });
      await assert.rejects(stream.send(cue("nobody", 0)), (error) => error instanceof GatewayError && error.status === 404 && error.code === "unknown_channel");
      await assert.rejects(stream.send([cue(arn, 1), { channel: arn, type: "nope", data: {} }]), { code: "invalid_cue", status: 400 });
      await assert.rejects(stream.cancel("no-such-cue", arn), { code: "not_found", status: 404 });
      const held = await stream.send(cue(arn, 2, { not_before: Date.now() + 60_000 }));
      assert.deepEqual(await stream.cancel(held.id, arn), { id: held.id, channel: arn, status: "cancelled", state: "scheduled" });
      assert.equal((await stream.send(cue(arn, 3))).status, "queued");
      assert.equal(stream.reconnects, 0);
      await stream.close();
      await assert.rejects(stream.send(cue(arn, 4)), { name: "GatewayUnavailable", code: "stream_closed" });
    } finally {
      await gw.stop();
    }
  });

  test("a wrong token is refused at the upgrade with unauthorized, not retried", async () => {
    const gw = await startGateway(ivs, { token: TOKEN });
    try {
      await assert.rejects(new GatewayClient(gw.url, { token: "mgw_wrong" }).stream(), { name: "GatewayError", status: 401, code: "unauthorized" });
      const tokenFree = gw.log().join("\n");
      assert.ok(!tokenFree.includes("mgw_wrong") && !tokenFree.includes(TOKEN));
    } finally {
      await gw.stop();
    }
  });

  test("a gateway stopped with SIGTERM and restarted mid-load delivers every cue exactly once", async () => {
    const arn = await ivs.channel("restart");
    const gw = await startGateway(ivs, { token: TOKEN });
    try {
      const stream = await new GatewayClient(gw.url, { token: TOKEN }).stream();
      const { receipts, done } = collect(stream);
      const total = 150;
      const sends = [];
      let restarted = null;
      for (let n = 0; n < total; n++) {
        sends.push(stream.send(cue(arn, n, { id: `r-${n}` })));
        if (n === 50) restarted = gw.restart(); // SIGTERM; the sends go on while it is down
        await new Promise((r) => setTimeout(r, 10));
      }
      await restarted;
      const results = await Promise.all(sends);
      assert.equal(results.length, total);
      await stream.waitSettled();
      const expected = Array.from({ length: total }, (_, n) => `r-${n}`);
      await waitFor(async () => new Set(await ivs.ids(arn)).size === total, { within: 30_000, what: "every cue at IVS" });
      const delivered = await ivs.ids(arn);
      assert.deepEqual([...delivered].sort(), [...expected].sort()); // each id once: no loss, no repeat
      assert.ok(stream.reconnects >= 1);
      await stream.close();
      await done;
      const receipted = receipts.flatMap((r) => (r.op === "sent" ? r.ids : []));
      assert.deepEqual([...new Set(receipted)].sort(), [...expected].sort());
      assert.deepEqual(receipts.filter((r) => r.op === "dropped"), []);
    } finally {
      await gw.stop();
    }
  });
});
