// The stream's book-keeping, with no socket and no clock of its own: which frames are waiting
// for an ack, which acknowledged cues are waiting for a receipt, and what to write (again) on a
// connection. The I/O shell (stream.js) feeds it messages and times, and carries out the effects
// it returns. It mirrors metadata_gateway.client.ledger (the Python client) rule for rule.

import { GatewayError } from "./errors.js";
import { MAX_CUES_PER_REQUEST, cancelled, cueResult } from "./cues.js";
import { RetryPolicy } from "./retry.js";

export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024; // the gateway's default max_body_bytes
export const MESSAGE_TOO_BIG = 1009; // the close code for a frame far over the gateway's limit
export const RETRYABLE_CODES = new Set(["queue_full", "client_rate_limited", "shutting_down"]);

const encoder = new TextEncoder();
const keyOf = (channel, id) => `${channel}\u0000${id}`;

/**
 * @typedef {object} Frame
 * @property {number} ref
 * @property {"cue" | "cues" | "cancel"} op
 * @property {Record<string, unknown>[]} cues - empty for a cancel
 * @property {string} data - the frame as written
 * @property {number} started - when it was first queued (seconds)
 * @property {boolean} waiting - someone awaits its ack (false for the ledger's own re-sends)
 * @property {{channel: string, id: string}[] | null} keys - known for re-sends of acked cues
 * @property {number} written - the connection (generation) it was last written on; 0: none
 * @property {number} retries
 * @property {number} notBefore
 */

/**
 * What the shell must do: settle a waiter, hand out a receipt, or log.
 * @typedef {{type: "resolve", ref: number, value: unknown}
 *   | {type: "reject", ref: number, error: GatewayError}
 *   | {type: "receipt", receipt: import("./index.js").Receipt}
 *   | {type: "warning", message: string, code?: string}} Effect
 */

/** The stream's state: frames until their ack, acknowledged cues until their receipt. */
export class StreamLedger {
  /** @type {Map<number, Frame>} in the order they are to be written */
  frames = new Map();
  /** @type {Map<string, {channel: string, id: string, cue: Record<string, unknown>}>} */
  unreceipted = new Map();
  /** @type {number[]} refs written on this connection, unanswered, in order */
  answers = [];
  generation = 0;
  holdUntil = 0; // the gateway is shutting down: write nothing before this
  nextRef = 1;
  resent = 0;

  /**
   * @param {{retry?: RetryPolicy, maxFrameBytes?: number, rand?: () => number}} [options]
   */
  constructor({ retry = new RetryPolicy(), maxFrameBytes = DEFAULT_MAX_FRAME_BYTES, rand = Math.random } = {}) {
    this.retry = retry;
    this.maxFrameBytes = maxFrameBytes;
    this.rand = rand;
  }

  /** Cues sent that have no ack or no receipt yet. */
  get unsettled() {
    let count = this.unreceipted.size;
    for (const frame of this.frames.values()) count += frame.cues.length;
    return count;
  }

  /** Whether every cue sent has its ack and its receipt, and every cancel its answer. */
  get settled() {
    return this.frames.size === 0 && this.unreceipted.size === 0;
  }

  /**
   * Queue a `cue` (single) or `cues` frame; its ack resolves the waiter with its ref.
   * @param {Record<string, unknown>[]} cues - with ids already
   * @param {{single: boolean, now: number}} options
   */
  submit(cues, { single, now }) {
    const ref = this.nextRef++;
    const message = single ? { ...cues[0], op: "cue", ref } : { op: "cues", ref, cues };
    return this.#add({ ref, op: single ? "cue" : "cues", cues, message, now, waiting: true });
  }

  /**
   * Queue a `cancel` frame for cue `id` of `channel` (an alias or ARN).
   * @param {string} id
   * @param {string} channel
   * @param {{now: number}} options
   */
  submitCancel(id, channel, { now }) {
    const ref = this.nextRef++;
    const message = { op: "cancel", ref, channel, id };
    return this.#add({ ref, op: "cancel", cues: [], message, now, waiting: true });
  }

  #add({ ref, op, cues, message, now, waiting, keys = null }) {
    const data = JSON.stringify(message);
    const size = encoder.encode(data).length;
    if (waiting && size > this.maxFrameBytes) {
      throw new GatewayError(413, "body_too_large", `the frame takes ${size} bytes, over ${this.maxFrameBytes}`);
    }
    /** @type {Frame} */
    const frame = { ref, op, cues, data, started: now, waiting, keys, written: 0, retries: 0, notBefore: 0 };
    this.frames.set(ref, frame);
    return frame;
  }

  /**
   * The caller stopped waiting for frame `ref`: forget it unless it may be queued already.
   * @param {number} ref
   */
  abandon(ref) {
    const frame = this.frames.get(ref);
    if (frame === undefined) return;
    if (frame.written) frame.waiting = false; // keep it, so that its receipt is followed
    else this.frames.delete(ref);
  }

  /**
   * A new connection is open: acknowledged cues whose receipts were lost go first, again.
   * @param {number} now
   * @returns {number} how many acknowledged cues are sent again
   */
  connected(now) {
    this.generation += 1;
    this.answers = [];
    this.holdUntil = 0;
    if (this.unreceipted.size === 0) return 0;
    const items = [...this.unreceipted.values()];
    this.unreceipted.clear();
    const requeued = new Map();
    for (const chunk of chunks(items, Math.floor(this.maxFrameBytes / 2))) {
      const ref = this.nextRef++;
      const cues = chunk.map((item) => item.cue);
      const keys = chunk.map(({ channel, id }) => ({ channel, id }));
      const message = { op: "cues", ref, cues };
      const frame = { ref, op: "cues", cues, data: JSON.stringify(message), started: now, waiting: false, keys, written: 0, retries: 0, notBefore: 0 };
      requeued.set(ref, frame);
    }
    this.frames = new Map([...requeued, ...this.frames]);
    this.resent += items.length;
    return items.length;
  }

  /**
   * The frames to write now on this connection, in order (each marked written), and when to
   * ask again (Infinity: when something new is queued).
   * @param {number} now
   * @returns {{frames: Frame[], wakeAt: number}}
   */
  due(now) {
    const frames = [];
    let wakeAt = Infinity;
    if (now < this.holdUntil) return { frames, wakeAt: this.holdUntil };
    for (const frame of this.frames.values()) {
      if (frame.written === this.generation) continue;
      if (frame.notBefore > now) {
        wakeAt = Math.min(wakeAt, frame.notBefore);
        continue;
      }
      frame.written = this.generation;
      this.answers.push(frame.ref);
      frames.push(frame);
    }
    return { frames, wakeAt };
  }

  /**
   * One text message from the gateway.
   * @param {string} text
   * @param {number} now
   * @returns {Effect[]}
   */
  handle(text, now) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return [{ type: "warning", message: "unexpected message from the gateway" }];
    }
    switch (message?.op) {
      case "ack":
        return this.#onAck(message);
      case "nack":
        return this.#onNack(message, now);
      case "sent":
      case "dropped":
        return this.#onReceipt(message);
      default:
        return [];
    }
  }

  /**
   * The connection closed with `code`: a frame far too large must not close the next one too.
   * @param {number} code
   * @returns {Effect[]}
   */
  closed(code) {
    if (code !== MESSAGE_TOO_BIG || this.answers.length === 0) return [];
    const frame = this.frames.get(this.answers[0]);
    return frame ? this.#fail(frame, new GatewayError(413, "body_too_large", "the frame is too large")) : [];
  }

  /**
   * The stream ended: every waiter fails with `error`.
   * @param {GatewayError} error
   * @returns {Effect[]}
   */
  end(error) {
    const effects = [];
    for (const frame of this.frames.values()) {
      if (frame.waiting) effects.push({ type: "reject", ref: frame.ref, error });
    }
    this.frames.clear();
    return effects;
  }

  /** The frame an ack or nack answers; one with no ref answers the oldest unanswered. */
  #answered(ref) {
    if (ref === null || ref === undefined) ref = this.answers[0];
    const index = typeof ref === "number" ? this.answers.indexOf(ref) : -1;
    if (index >= 0) this.answers.splice(index, 1);
    const frame = typeof ref === "number" ? this.frames.get(ref) : undefined;
    return frame !== undefined && frame.written === this.generation ? frame : null;
  }

  #onAck(message) {
    const frame = this.#answered(message.ref);
    if (frame === null) return [];
    if (frame.op === "cancel") return this.#onCancelAck(frame, message);
    let results;
    try {
      results = message.cues.map(cueResult);
    } catch (error) {
      return this.#fail(frame, new GatewayError(0, "invalid_response", `unexpected ack: ${error.message}`));
    }
    this.frames.delete(frame.ref);
    /** @type {Map<string, string[]>} */
    const delivered = new Map();
    frame.cues.forEach((cue, index) => {
      const result = results[index];
      if (result === undefined) return;
      if (result.status === "queued" || result.delivered === false) {
        this.unreceipted.set(keyOf(result.channel, result.id), { channel: result.channel, id: result.id, cue });
      } else if (result.delivered) {
        delivered.set(result.channel, [...(delivered.get(result.channel) ?? []), result.id]);
      }
    });
    /** @type {Effect[]} */
    const effects = [...delivered].map(([channel, ids]) => ({ type: "receipt", receipt: { op: "sent", channel, ids, at: null } }));
    if (frame.waiting) effects.push({ type: "resolve", ref: frame.ref, value: frame.op === "cue" ? results[0] : results });
    return effects;
  }

  #onCancelAck(frame, message) {
    let result;
    try {
      result = cancelled(message.cues[0]);
    } catch (error) {
      return this.#fail(frame, new GatewayError(0, "invalid_response", `unexpected ack: ${error.message}`));
    }
    this.frames.delete(frame.ref);
    /** @type {Effect[]} */
    const effects = [];
    // A cue of an earlier connection has no subscription for its `dropped` receipt: make it.
    if (this.unreceipted.delete(keyOf(result.channel, result.id))) {
      effects.push({ type: "receipt", receipt: { op: "dropped", channel: result.channel, ids: [result.id], reason: "cancelled" } });
    }
    if (frame.waiting) effects.push({ type: "resolve", ref: frame.ref, value: result });
    return effects;
  }

  #onNack(message, now) {
    const error = GatewayError.fromError(null, message.error);
    const frame = this.#answered(message.ref);
    if (frame === null) return [{ type: "warning", message: "nack for no known frame", code: error.code }];
    let wait = null;
    if (RETRYABLE_CODES.has(error.code)) {
      wait = this.retry.wait(frame.retries, { started: frame.started, now, retryAfter: error.retryAfter, rand: this.rand });
    }
    if (wait === null) return this.#fail(frame, error);
    frame.retries += 1;
    frame.written = 0;
    // The connection is about to close: the next one gets the frame, unless it lasts.
    if (error.code === "shutting_down") this.holdUntil = Math.max(this.holdUntil, now + wait);
    else frame.notBefore = now + wait;
    return [];
  }

  #fail(frame, error) {
    this.frames.delete(frame.ref);
    if (frame.waiting) return [{ type: "reject", ref: frame.ref, error }];
    /** @type {Map<string, string[]>} */
    const byChannel = new Map();
    for (const { channel, id } of frame.keys ?? []) byChannel.set(channel, [...(byChannel.get(channel) ?? []), id]);
    // A re-send refused: those cues are lost.
    /** @type {Effect[]} */
    const effects = [...byChannel].map(([channel, ids]) => ({ type: "receipt", receipt: { op: "dropped", channel, ids, reason: error.code } }));
    effects.push({ type: "warning", message: "cues not re-sent", code: error.code });
    return effects;
  }

  #onReceipt(message) {
    if (typeof message.channel !== "string" || !Array.isArray(message.ids)) {
      return [{ type: "warning", message: "unexpected receipt from the gateway" }];
    }
    // The process gave up on them only because it is stopping: they stay unreceipted and go,
    // with the same ids, to whichever gateway the stream reaches next.
    if (message.op === "dropped" && message.reason === "shutdown") return [];
    const ids = message.ids.map(String);
    for (const id of ids) this.unreceipted.delete(keyOf(message.channel, id));
    const receipt =
      message.op === "sent"
        ? { op: "sent", channel: message.channel, ids, at: typeof message.at === "number" ? message.at : null }
        : { op: "dropped", channel: message.channel, ids, reason: message.reason ?? null };
    return [{ type: "receipt", receipt }];
  }
}

/**
 * Items in order, grouped at most 100 and about `maxBytes` of JSON to a frame.
 * @template {{cue: unknown}} T
 * @param {T[]} items
 * @param {number} maxBytes
 * @returns {T[][]}
 */
export function chunks(items, maxBytes) {
  /** @type {T[][]} */
  const groups = [];
  let size = 0;
  for (const item of items) {
    const itemSize = encoder.encode(JSON.stringify(item.cue)).length;
    if (groups.length === 0 || groups[groups.length - 1].length >= MAX_CUES_PER_REQUEST || size + itemSize > maxBytes) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(item);
    size += itemSize;
  }
  return groups;
}

