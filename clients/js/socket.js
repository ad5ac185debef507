// Opening the gateway's WebSocket: the runtime's own in browsers, `ws` on Node (which tells the
// status of a refused upgrade, and can ping).

import { CODE_OF_STATUS, GatewayError, GatewayUnavailable, retryAfterSeconds } from "./errors.js";

export const WS_PROTOCOL = "metadata-gateway.v1";
export const WS_BEARER_PREFIX = "metadata-gateway.bearer.";
// A subprotocol name is an HTTP token (RFC 6455 4.1, RFC 7230 3.2.6).
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A handshake answered with these may succeed later (the gateway is full or restarting).
export const RETRYABLE_HANDSHAKE = new Set([429, 502, 503, 504]);

const isNode = typeof process !== "undefined" && typeof process.versions?.node === "string";

/**
 * The subprotocols and headers that carry `token` on the upgrade: a subprotocol where the
 * token's characters allow it (browsers can send nothing else), else the Authorization header.
 * @param {string | undefined} token
 */
export function upgradeAuth(token) {
  if (!token) return { protocols: [WS_PROTOCOL], headers: {} };
  if (TOKEN_CHARS.test(token)) return { protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}${token}`], headers: {} };
  if (!isNode) throw new TypeError("this token has characters a browser cannot send on a WebSocket");
  return { protocols: [WS_PROTOCOL], headers: { Authorization: `Bearer ${token}` } };
}

/**
 * An open WebSocket to `url`, or the error that refused it (retryable or not).
 * @param {string} url
 * @param {{protocols: string[], headers: Record<string, string>}} auth
 * @returns {Promise<WebSocket>}
 */
export async function openSocket(url, { protocols, headers }) {
  const Impl = isNode ? (await import("ws")).default : globalThis.WebSocket;
  return new Promise((resolve, reject) => {
    const ws = isNode ? new Impl(url, protocols, { headers, perMessageDeflate: false }) : new Impl(url, protocols);
    const fail = (error) => {
      cleanup();
      reject(error);
    };
    const onOpen = () => {
      cleanup();
      resolve(ws);
    };
    const onError = (event) => fail(new GatewayUnavailable("unreachable", event?.message ?? "the WebSocket failed to open"));
    const onClose = () => fail(new GatewayUnavailable("unreachable", "the WebSocket closed before it opened"));
    const cleanup = () => {
      ws.removeEventListener("open", onOpen);
      ws.removeEventListener("error", onError);
      ws.removeEventListener("close", onClose);
      if (isNode) {
        ws.removeAllListeners("unexpected-response");
        ws.on("error", () => {}); // a socket given up on may still report; the shell listens too
      }
    };
    ws.addEventListener("open", onOpen);
    ws.addEventListener("error", onError);
    ws.addEventListener("close", onClose);
    if (isNode) {
      ws.on("unexpected-response", (request, response) => {
        const status = response.statusCode;
        const error = new GatewayError(status, CODE_OF_STATUS[status] ?? `http_${status}`, `the WebSocket upgrade got ${status}`);
        const seconds = retryAfterSeconds(response.headers["retry-after"]);
        if (seconds !== null) error.details.retry_after_ms = seconds * 1000;
        response.resume();
        request.destroy();
        fail(error);
      });
    }
  });
}

/** Whether a socket can ping (ws on Node; browsers answer the gateway's pings but send none). */
export function canPing(ws) {
  return typeof ws.ping === "function";
}
