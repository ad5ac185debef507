// The gateway's client for backends and browsers: cues over HTTP with idempotent retries, or a
// stream over the WebSocket.

import { UNAVAILABLE, GatewayError, GatewayUnavailable } from "./errors.js";
import { cancelled, cueResult, prepareBatch, withId } from "./cues.js";
import { Backoff, RetryPolicy } from "./retry.js";
import { GatewayStream } from "./stream.js";
import { upgradeAuth } from "./socket.js";

// Full (429), or shutting down or restarting behind a proxy (502-504): worth trying again.
export const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);
const DEFAULT_TIMEOUT_S = 10;
const PAGE = 1000; // the gateway's largest page of channels

/** Whether sending the same request again (same cue ids) may succeed. */
export function retryable(error) {
  return error instanceof GatewayError && (RETRYABLE_STATUSES.has(error.status) || error.status === UNAVAILABLE);
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const now = () => performance.now() / 1000;

/**
 * Sends cues to a metadata gateway. Every cue gets an `id` before it leaves (a random one unless
 * it has its own), so a retry is idempotent: the gateway answers `duplicate` for one it has.
 */
export class GatewayClient {
  #token;

  /**
   * @param {string} url - the gateway's base URL, e.g. `http://127.0.0.1:8080`
   * @param {object} [options]
   */
  constructor(url, { token, maxRetries = 5, retryDeadline = 30, backoff = new Backoff(), timeout = DEFAULT_TIMEOUT_S, fetch = globalThis.fetch } = {}) {
    this.url = String(url).replace(/\/+$/, "");
    this.#token = token;
    this.retry = new RetryPolicy({ maxRetries, deadline: retryDeadline, backoff });
    this.timeout = timeout;
    this.fetch = fetch;
    this.requests = 0;
    this.retries = 0;
  }

  /**
   * Send one cue (resolves to its result) or an array of 1 to 100 cues, all or none (their
   * results), retrying while the gateway is full, restarting or unreachable.
   * @param {Record<string, unknown> | Record<string, unknown>[]} cueOrCues
   */
  async send(cueOrCues) {
    const single = !Array.isArray(cueOrCues);
    const body = single ? withId(cueOrCues) : { cues: prepareBatch(cueOrCues) };
    const answer = await this.#retrying("POST", "/v1/cues", JSON.stringify(body), 202);
    let results;
    try {
      results = answer.cues.map(cueResult);
    } catch (error) {
      throw new GatewayError(202, "invalid_response", `unexpected answer: ${error.message}`);
    }
    return single ? results[0] : results;
  }

  /**
   * Cancel a queued, scheduled or repeating cue (`DELETE /v1/cues/{id}?channel=`).
   * @param {string} id
   * @param {string} channel - an alias or ARN
   */
  async cancel(id, channel) {
    if (!id || !channel) throw new TypeError("cancel needs a cue id and a channel");
    const path = `/v1/cues/${encodeURIComponent(id)}?channel=${encodeURIComponent(channel)}`;
    return cancelled(await this.#retrying("DELETE", path, null, 200));
  }

  /**
   * One channel's state, with its scheduled and repeating cues.
   * @param {string} aliasOrArn
   */
  async channel(aliasOrArn) {
    return this.#retrying("GET", `/v1/channels/${encodeURIComponent(aliasOrArn)}`, null, 200);
  }

  /** Every channel the gateway knows (all pages), configured aliases first. */
  async channels() {
    const all = [];
    let cursor = null;
    do {
      const query = `limit=${PAGE}${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
      const page = await this.#retrying("GET", `/v1/channels?${query}`, null, 200);
      all.push(...page.channels);
      cursor = page.next_cursor ?? null;
    } while (cursor !== null);
    return all;
  }

  /**
   * Open a WebSocket session for cues and their receipts; resolves once connected.
   * @param {object} [options]
   */
  async stream({ receipts = true, reconnectBackoff, reconnectDeadline = 30, heartbeat = 20, maxFrameBytes } = {}) {
    const url = new URL(`${this.url}/v1/ws`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const stream = new GatewayStream(url.href, {
      auth: upgradeAuth(this.#token),
      retry: this.retry,
      reconnectBackoff,
      reconnectDeadline,
      heartbeat,
      maxFrameBytes,
      receipts,
    });
    return stream.open();
  }

  async #retrying(method, path, body, expect) {
    const started = now();
    for (let retry = 0; ; retry++) {
      let error;
      try {
        return await this.#request(method, path, body, expect);
      } catch (caught) {
        error = caught;
      }
      const wait = this.retry.wait(retry, { started, now: now(), retryAfter: error.retryAfter ?? null });
      if (!retryable(error) || wait === null) throw error;
      this.retries += 1;
      await sleep(wait);
    }
  }

  async #request(method, path, body, expect) {
    this.requests += 1;
    const headers = {};
    if (body !== null) headers["Content-Type"] = "application/json";
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    let response;
    let text;
    try {
      response = await this.fetch(`${this.url}${path}`, { method, headers, body, signal: AbortSignal.timeout(this.timeout * 1000) });
      text = await response.text();
    } catch (error) {
      throw new GatewayUnavailable("unreachable", `${error?.name}: ${error?.cause?.code ?? error?.message}`);
    }
    if (response.status !== expect) throw GatewayError.fromBody(response.status, text, response.headers.get("Retry-After"));
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new GatewayError(response.status, "invalid_response", `unexpected answer: ${error.message}`);
    }
  }
}
