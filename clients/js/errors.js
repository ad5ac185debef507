// The errors the client raises: what the gateway refused, or that it could not be reached.

/** The HTTP status the gateway gives each code; a WebSocket nack carries the code only. */
export const STATUS_OF_CODE = Object.freeze({
  invalid_json: 400,
  invalid_cue: 400,
  invalid_op: 400,
  invalid_request: 400,
  invalid_channel: 400,
  unauthorized: 401,
  forbidden: 403,
  unknown_channel: 404,
  not_found: 404,
  already_sent: 409,
  cue_too_large: 413,
  body_too_large: 413,
  queue_full: 429,
  client_rate_limited: 429,
  shutting_down: 503,
});

/** A refused WebSocket upgrade has a status but no body the client reads: its likely code. */
export const CODE_OF_STATUS = Object.freeze({ 401: "unauthorized", 403: "forbidden", 503: "shutting_down" });

/** The status of an error that never got an HTTP answer. */
export const UNAVAILABLE = 0;

/** A request the gateway refused, with its HTTP status, stable `code`, message and details. */
export class GatewayError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [details]
   */
  constructor(status, code, message, details = {}) {
    super(message ? `${code}: ${message}` : code);
    this.name = "GatewayError";
    this.status = status;
    this.code = code;
    this.detail = message;
    this.details = { ...details };
  }

  /** Seconds the gateway asked the client to wait before trying again, if it said. */
  get retryAfter() {
    const value = this.details.retry_after_ms;
    return typeof value === "number" && value >= 0 ? value / 1000 : null;
  }

  /**
   * The error an `{code, message, ...}` object describes (a body's or a nack's).
   * @param {number | null} status - null for a nack: the code's HTTP status is used
   * @param {unknown} error
   */
  static fromError(status, error) {
    if (error === null || typeof error !== "object" || typeof error.code !== "string") {
      return new GatewayError(status ?? UNAVAILABLE, "invalid_response", `unexpected error: ${JSON.stringify(error)}`);
    }
    const { code, message, ...details } = /** @type {Record<string, any>} */ (error);
    return new GatewayError(status ?? STATUS_OF_CODE[code] ?? UNAVAILABLE, code, typeof message === "string" ? message : "", details);
  }

  /**
   * The error an HTTP error response describes.
   * @param {number} status
   * @param {string} body
   * @param {string | null} [retryAfter] - its `Retry-After` header
   */
  static fromBody(status, body, retryAfter = null) {
    let error;
    try {
      error = JSON.parse(body)?.error;
    } catch {
      error = { code: `http_${status}`, message: body.slice(0, 200) };
    }
    if (error === null || typeof error !== "object" || typeof error.code !== "string") {
      error = { code: `http_${status}`, message: `unexpected body ${body.slice(0, 200)}` };
    }
    const seconds = retryAfterSeconds(retryAfter);
    // The body's milliseconds are exact; the header (whole seconds) is the fallback.
    if (error.retry_after_ms === undefined && seconds !== null) error = { ...error, retry_after_ms: seconds * 1000 };
    return GatewayError.fromError(status, error);
  }
}

/** The gateway could not be reached (or the stream closed) before it answered. */
export class GatewayUnavailable extends GatewayError {
  /**
   * @param {string} code - `unreachable`, `stream_closed`, ...
   * @param {string} message
   */
  constructor(code, message) {
    super(UNAVAILABLE, code, message);
    this.name = "GatewayUnavailable";
  }
}

/**
 * A `Retry-After` header in seconds, if it holds a number (the gateway never sends dates).
 * @param {string | null | undefined} header
 */
export function retryAfterSeconds(header) {
  if (header === null || header === undefined || header.trim() === "") return null;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}
