// The I/O shell around StreamLedger: one WebSocket at a time, reconnected with backoff, its
// messages fed to the ledger and the ledger's effects carried out.

import { GatewayError, GatewayUnavailable } from "./errors.js";
import { prepareBatch, withId } from "./cues.js";
import { StreamLedger } from "./ledger.js";
import { Backoff, RetryPolicy } from "./retry.js";
import { RETRYABLE_HANDSHAKE, canPing, openSocket } from "./socket.js";

const now = () => performance.now() / 1000;
const OPEN = 1;

/**
 * Cues and their receipts over a WebSocket that reconnects when it drops; see the README.
 * Events: `receipt` (detail: the receipt), `reconnect` (detail: {resent}), `close` (detail:
 * {error}), `warning` (detail: {message, code}).
 */
export class GatewayStream extends EventTarget {
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {Map<number, {resolve: (value: any) => void, reject: (error: any) => void}>} */
  #waiters = new Map();
  /** @type {import("./index.js").Receipt[]} */
  #queue = [];
  #readers = [];
  #settledWaiters = [];
  #timer = null;
  #ended = false;
  /** @type {GatewayError | null} */
  #failure = null;
  #closing = false;

  /**
   * @param {string} url - the gateway's `/v1/ws` URL
   * @param {object} options
   */
  constructor(url, { auth, retry = new RetryPolicy(), reconnectBackoff = new Backoff({ initial: 0.05, maximum: 2 }), reconnectDeadline = 30, heartbeat = 20, maxFrameBytes, receipts = true }) {
    super();
    this.url = url;
    this.auth = auth;
    this.reconnectBackoff = reconnectBackoff;
    this.reconnectDeadline = reconnectDeadline;
    this.heartbeat = heartbeat;
    this.keepReceipts = receipts;
    this.ledger = new StreamLedger({ retry, maxFrameBytes });
    this.reconnects = 0;
    /** @type {Promise<void> | null} */
    this.done = null;
  }

  /** Cues sent on this stream that have no ack or no receipt yet. */
  get unsettled() {
    return this.ledger.unsettled;
  }

  /** Acknowledged cues sent again after a reconnect. */
  get resent() {
    return this.ledger.resent;
  }

  /** Connect (retrying until `reconnectDeadline`) and start serving; resolves to the stream. */
  async open() {
    const ws = await this.#connect();
    this.done = this.#run(ws);
    return this;
  }

  /**
   * Send one cue (resolves to its result) or an array of 1 to 100 (all or none; their results).
   * @param {Record<string, unknown> | Record<string, unknown>[]} cueOrCues
   */
  send(cueOrCues) {
    const single = !Array.isArray(cueOrCues);
    const cues = single ? [withId(cueOrCues)] : prepareBatch(cueOrCues);
    return this.#enqueue(() => this.ledger.submit(cues, { single, now: now() }));
  }

  /**
   * Cancel a queued, scheduled or repeating cue; resolves to the cancel's ack entry.
   * @param {string} id
   * @param {string} channel
   */
  cancel(id, channel) {
    if (!id || !channel) throw new TypeError("cancel needs a cue id and a channel");
    return this.#enqueue(() => this.ledger.submitCancel(id, channel, { now: now() }));
  }

  #enqueue(submit) {
    if (this.#ended) return Promise.reject(this.#failure ?? new GatewayUnavailable("stream_closed", "the stream was closed"));
    let frame;
    try {
      frame = submit();
    } catch (error) {
      return Promise.reject(error);
    }
    const promise = new Promise((resolve, reject) => this.#waiters.set(frame.ref, { resolve, reject }));
    this.#pump();
    return promise;
  }

  /** Receipts as they arrive, until the stream closes (throwing if it failed); one reader. */
  async *receipts() {
    if (!this.keepReceipts) throw new Error("this stream was opened with receipts: false");
    while (true) {
      if (this.#queue.length > 0) {
        yield this.#queue.shift();
        continue;
      }
      if (this.#ended) {
        if (this.#failure) throw this.#failure;
        return;
      }
      await new Promise((resolve) => this.#readers.push(resolve));
    }
  }

  [Symbol.asyncIterator]() {
    return this.receipts();
  }

  /** Wait until every cue sent is acked and receipted, or the stream ended (its failure). */
  async waitSettled() {
    if (!this.ledger.settled && !this.#ended) await new Promise((resolve) => this.#settledWaiters.push(resolve));
    if (this.#failure) throw this.#failure;
  }

  /** Close the connection; sends still waiting fail, and `receipts()` ends. */
  async close() {
    this.#closing = true;
    const ws = this.#ws;
    if (ws && ws.readyState <= OPEN) ws.close(1000);
    this.#end(null);
    await this.done?.catch(() => {});
  }

  async #connect() {
    const started = now();
    for (let attempt = 0; ; attempt++) {
      let error;
      try {
        return await openSocket(this.url, this.auth);
      } catch (caught) {
        error = caught;
      }
      if (!(error instanceof GatewayError) || (error.status !== 0 && !RETRYABLE_HANDSHAKE.has(error.status))) throw error;
      // A gateway shutting down says when to come back; its replacement may be up sooner.
      let wait = this.reconnectBackoff.delay(attempt);
      if (error.retryAfter !== null) wait = Math.min(Math.max(wait, error.retryAfter), this.reconnectBackoff.maximum);
      if (now() + wait > started + this.reconnectDeadline || this.#closing) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    }
  }

  async #run(ws) {
    try {
      while (!this.#closing) {
        await this.#serve(ws);
        if (this.#closing) break;
        ws = await this.#connect();
        if (this.#closing) {
          ws.close(1000);
          break;
        }
        this.reconnects += 1;
      }
      this.#end(null);
    } catch (error) {
      const failure = error instanceof GatewayError ? error : new GatewayUnavailable("client_error", String(error));
      this.#end(failure);
    }
  }

  /** Write frames and read answers on one connection until it closes. */
  #serve(ws) {
    this.#ws = ws;
    const resent = this.ledger.connected(now());
    if (this.reconnects > 0 || resent > 0) this.dispatchEvent(new CustomEvent("reconnect", { detail: { resent } }));
    return new Promise((resolve) => {
      let alive = true;
      let pinger = null;
      if (this.heartbeat && canPing(ws)) {
        // No pong within half a beat: the connection is dead even if TCP has not noticed.
        ws.on("pong", () => (alive = true));
        pinger = setInterval(() => {
          if (!alive) return ws.terminate();
          alive = false;
          ws.ping();
        }, (this.heartbeat * 1000) / 2);
      }
      const onMessage = (event) => {
        const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
        this.#apply(this.ledger.handle(text, now()));
        this.#pump();
      };
      const onClose = (event) => {
        ws.removeEventListener("message", onMessage);
        ws.removeEventListener("close", onClose);
        if (pinger) clearInterval(pinger);
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = null;
        this.#ws = null;
        this.#apply(this.ledger.closed(event.code));
        resolve();
      };
      ws.addEventListener("message", onMessage);
      ws.addEventListener("close", onClose);
      ws.addEventListener("error", () => {}); // a close event follows
      this.#pump();
    });
  }

  /** Write what is due on the open connection, and set the timer for what comes due later. */
  #pump() {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const { frames, wakeAt } = this.ledger.due(now());
    for (const frame of frames) ws.send(frame.data);
    if (wakeAt !== Infinity) this.#timer = setTimeout(() => this.#pump(), Math.max(0, (wakeAt - now()) * 1000));
    this.#checkSettled();
  }

  #apply(effects) {
    for (const effect of effects) {
      if (effect.type === "resolve" || effect.type === "reject") {
        const waiter = this.#waiters.get(effect.ref);
        this.#waiters.delete(effect.ref);
        if (effect.type === "resolve") waiter?.resolve(effect.value);
        else waiter?.reject(effect.error);
      } else if (effect.type === "receipt") {
        if (this.keepReceipts) this.#queue.push(effect.receipt);
        this.#wakeReaders();
        this.dispatchEvent(new CustomEvent("receipt", { detail: effect.receipt }));
      } else {
        this.dispatchEvent(new CustomEvent("warning", { detail: { message: effect.message, code: effect.code } }));
      }
    }
    this.#checkSettled();
  }

  #wakeReaders() {
    for (const wake of this.#readers.splice(0)) wake();
  }

  #checkSettled() {
    if (this.ledger.settled || this.#ended) for (const wake of this.#settledWaiters.splice(0)) wake();
  }

  #end(failure) {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    this.#apply(this.ledger.end(failure ?? new GatewayUnavailable("stream_closed", "the stream was closed")));
    for (const waiter of this.#waiters.values()) waiter.reject(failure ?? new GatewayUnavailable("stream_closed", "the stream was closed"));
    this.#waiters.clear();
    this.#wakeReaders();
    this.#checkSettled();
    this.dispatchEvent(new CustomEvent("close", { detail: { error: failure } }));
  }
}
