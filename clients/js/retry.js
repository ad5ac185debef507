// When to try again: exponential backoff with jitter, within a number of retries and a deadline.
// Times are seconds, as in the Python client; `rand` is injectable so tests are exact.

const MAX_DOUBLINGS = 32; // 2**32 times any sane initial delay is past any maximum
const RETRY_AFTER_JITTER = 0.1; // spread clients told the same Retry-After over 10% more, never less

/** Exponential backoff: attempt n waits a random half to all of `initial * 2**n`, capped. */
export class Backoff {
  /** @param {{initial?: number, maximum?: number}} [options] */
  constructor({ initial = 0.1, maximum = 5.0 } = {}) {
    if (!(initial > 0 && initial <= maximum)) throw new RangeError("backoff needs 0 < initial <= maximum");
    this.initial = initial;
    this.maximum = maximum;
    Object.freeze(this);
  }

  /**
   * Seconds to wait before retry number `attempt` (counted from 0).
   * @param {number} attempt
   * @param {() => number} [rand]
   */
  delay(attempt, rand = Math.random) {
    const ceiling = Math.min(this.maximum, this.initial * 2 ** Math.min(Math.max(attempt, 0), MAX_DOUBLINGS));
    return ceiling * (0.5 + 0.5 * rand());
  }
}

/** How hard to retry: at most `maxRetries` times, none starting after `deadline` seconds. */
export class RetryPolicy {
  /** @param {{maxRetries?: number, deadline?: number, backoff?: Backoff}} [options] */
  constructor({ maxRetries = 5, deadline = 30.0, backoff = new Backoff() } = {}) {
    if (maxRetries < 0 || deadline < 0) throw new RangeError("maxRetries and deadline must not be negative");
    this.maxRetries = maxRetries;
    this.deadline = deadline;
    this.backoff = backoff;
    Object.freeze(this);
  }

  /**
   * Seconds to wait before retry number `retry` (from 0), or null to give up.
   * @param {number} retry
   * @param {{started: number, now: number, retryAfter?: number | null, rand?: () => number}} at
   */
  wait(retry, { started, now, retryAfter = null, rand = Math.random }) {
    if (retry >= this.maxRetries) return null;
    const wait = retryAfter !== null ? retryAfter * (1 + RETRY_AFTER_JITTER * rand()) : this.backoff.delay(retry, rand);
    return now + wait > started + this.deadline ? null : wait;
  }
}
