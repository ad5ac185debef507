import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { GatewayClient, GatewayError } from "../index.js";
import { freePort, startGateway, startLocalIvs, waitFor } from "./gateway.js";

const TOKEN = "mgw_http-test";
let ivs;
let arn;
let gw;

before(async () => {
  ivs = await startLocalIvs();
  arn = await ivs.channel("http");
  gw = await startGateway(ivs, { token: TOKEN, channels: { show: arn } });
});
after(async () => {
  await gw?.stop();
  await ivs?.stop();
});

const cue = (n, extra = {}) => ({ channel: "show", type: "custom", data: { n }, ...extra });

describe("GatewayClient over HTTP against a real gateway", () => {
  test("send gives every cue an id, keeps given ids, and the cues reach IVS once", async () => {
    const client = new GatewayClient(gw.url, { token: TOKEN });
    const plain = cue(1);
    const one = await client.send(plain);
    const many = await client.send([cue(2, { id: "mine-2" }), cue(3)]);
    assert.equal(plain.id, undefined); // the caller's cue is left alone
    assert.deepEqual([one.status, one.channel, one.id.length], ["queued", arn, 20]);
    assert.deepEqual(many.map((r) => r.id.length), [6, 20]);
    const expected = [one.id, "mine-2", many[1].id];
    await waitFor(async () => (await ivs.ids(arn)).length >= 3, { what: "3 cues at IVS" });
    assert.deepEqual((await ivs.ids(arn)).filter((id) => expected.includes(id)), expected);
    const again = await client.send(cue(2, { id: "mine-2" }));
    assert.deepEqual([again.status, again.delivered], ["duplicate", true]);
    assert.equal(client.retries, 0);
  });

  test("cancel removes a scheduled cue, and a second cancel is a typed not_found", async () => {
    const client = new GatewayClient(gw.url, { token: TOKEN });
    const held = await client.send(cue(4, { id: "later/1", not_before: Date.now() + 60_000 }));
    const cancelled = await client.cancel(held.id, "show");
    assert.deepEqual(cancelled, { id: "later/1", channel: arn, status: "cancelled", state: "scheduled" });
    const info = await client.channel("show");
    assert.equal(info.scheduled, 0);
    await assert.rejects(client.cancel(held.id, arn), (error) => error instanceof GatewayError && error.status === 404 && error.code === "not_found");
    assert.equal(client.retries, 0);
  });

  test("4xx answers throw GatewayError with the gateway's code and details, without retrying", async () => {
    const client = new GatewayClient(gw.url, { token: TOKEN });
    await assert.rejects(client.send({ ...cue(5), channel: "nobody" }), { name: "GatewayError", status: 404, code: "unknown_channel" });
    await assert.rejects(client.send([cue(6), { channel: "show", type: "quiz" }]), (error) => {
      assert.deepEqual([error.status, error.code, error.details.index, error.details.field], [400, "invalid_cue", 1, "data"]);
      return true;
    });
    await assert.rejects(new GatewayClient(gw.url, { token: "mgw_wrong" }).send(cue(7)), { status: 401, code: "unauthorized" });
    await assert.rejects(client.send(Array.from({ length: 101 }, (_, n) => cue(n))), RangeError);
    assert.deepEqual([client.retries, client.requests], [0, 2]);
  });

  test("channels() reads every page", async () => {
    const client = new GatewayClient(gw.url, { token: TOKEN });
    const channels = await client.channels();
    assert.ok(channels.some((c) => c.channel === arn && c.alias === "show"));
  });
});

describe("Retry-After", () => {
  test("a 429 client_rate_limited is waited out as the gateway asks, then goes through once", async () => {
    const slow = await startGateway(ivs, { token: TOKEN, channels: { show: arn }, rate: 2 });
    try {
      const client = new GatewayClient(slow.url, { token: TOKEN });
      await client.send(Array.from({ length: 100 }, (_, n) => cue(n))); // the whole burst
      const impatient = new GatewayClient(slow.url, { token: TOKEN, maxRetries: 0 });
      const refused = await impatient.send(cue(100)).catch((error) => error);
      assert.deepEqual([refused.status, refused.code], [429, "client_rate_limited"]);
      assert.ok(refused.retryAfter > 0.3 && refused.retryAfter <= 0.5, `retryAfter ${refused.retryAfter}`);
      const started = performance.now();
      const result = await client.send(cue(101, { id: "after-wait" }));
      const waited = (performance.now() - started) / 1000;
      assert.equal(result.status, "queued");
      assert.ok(client.retries >= 1);
      // The backoff alone would have come back after at most 0.1 s.
      assert.ok(waited >= 0.3, `waited ${waited} s`);
    } finally {
      await slow.stop();
    }
  });

  test("a gateway that is not listening is retried with backoff, then gives up as unreachable", async () => {
    const client = new GatewayClient(`http://127.0.0.1:${await freePort()}`, { maxRetries: 2, retryDeadline: 1 });
    await assert.rejects(client.send(cue(1)), { name: "GatewayUnavailable", status: 0, code: "unreachable" });
    assert.equal(client.retries, 2);
  });
});
