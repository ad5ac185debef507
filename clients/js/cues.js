// Cue ids and the shapes the gateway answers with.

export const MAX_CUES_PER_REQUEST = 100; // the gateway's bound on the cues of one request or frame
const ID_BYTES = 10; // 80 random bits: no collision in the gateway's 10-minute idempotency window

/** A fresh random cue id (20 hex characters), short enough for the gateway's 64-character limit. */
export function newCueId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(ID_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A copy of `cue` that has an `id`, so that sending it again is idempotent.
 * @param {Record<string, unknown>} cue
 */
export function withId(cue) {
  if (cue === null || typeof cue !== "object" || Array.isArray(cue)) {
    throw new TypeError(`a cue must be an object, not ${cue === null ? "null" : typeof cue}`);
  }
  return cue.id === undefined || cue.id === null ? { ...cue, id: newCueId() } : { ...cue };
}

/**
 * Cues with ids, refusing before sending a batch the gateway would refuse for its size.
 * @param {Record<string, unknown>[]} cues
 */
export function prepareBatch(cues) {
  if (!Array.isArray(cues) || cues.length < 1 || cues.length > MAX_CUES_PER_REQUEST) {
    throw new RangeError(`a batch holds 1 to ${MAX_CUES_PER_REQUEST} cues`);
  }
  return cues.map(withId);
}

/**
 * One entry of a 202 body's or an ack's `cues` list.
 * @param {any} entry
 */
export function cueResult(entry) {
  if (typeof entry?.id !== "string" || typeof entry?.channel !== "string" || typeof entry?.status !== "string") {
    throw new TypeError(`unexpected cue result ${JSON.stringify(entry)}`);
  }
  const result = { id: entry.id, channel: entry.channel, status: entry.status };
  return typeof entry.delivered === "boolean" ? { ...result, delivered: entry.delivered } : result;
}

/**
 * A cancel's answer: the body of `DELETE /v1/cues/{id}` or its ack's entry.
 * @param {any} entry
 */
export function cancelled(entry) {
  if (typeof entry?.id !== "string" || typeof entry?.channel !== "string" || typeof entry?.state !== "string") {
    throw new TypeError(`unexpected cancel answer ${JSON.stringify(entry)}`);
  }
  return { id: entry.id, channel: entry.channel, status: "cancelled", state: entry.state };
}
