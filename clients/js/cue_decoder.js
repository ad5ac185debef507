/**
 * Decodes metadata_gateway's payloads as an IVS player hands them over.
 *
 * The gateway packs cues into `{"v":1,"c":[{"i":ID,"t":TYPE,"d":DATA},...]}` (at most 1 KB per
 * PutMetadata call). Delivery is at least once and state cues are re-sent on purpose, so the
 * decoder remembers the ids it has passed on and drops repeats. Any other text (a `raw` cue, or
 * someone else's metadata) is passed through untouched.
 *
 * @example
 * import { CueDecoder } from "metadata-gateway-cue-decoder";
 * const decoder = new CueDecoder();
 * player.addEventListener(PlayerEventType.TEXT_METADATA_CUE, (cue) => {
 *   for (const item of decoder.decode(cue.text)) {
 *     if (item.kind === "raw") handleRaw(item.text);
 *     else if (item.type === "quiz") showQuestion(item.data);
 *   }
 * });
 *
 * @module cue_decoder
 */

/** The envelope version this decoder understands. */
export const ENVELOPE_VERSION = 1;

/**
 * How many ids a decoder remembers by default. A channel carries at most 5 calls/s of at most
 * 1 KB, so this covers well over an hour of small cues; older ids are forgotten first.
 */
export const DEFAULT_REMEMBERED_IDS = 10_000;

/**
 * One cue from the gateway's envelope.
 * @typedef {object} Cue
 * @property {"cue"} kind
 * @property {string} id - the cue's id (`i`): the client's idempotency key or the gateway's
 * @property {string} type - `quiz`, `poll`, `caption`, `custom`, `state`, ...
 * @property {unknown} data - the cue's `data`, as posted
 */

/**
 * A payload that is not the gateway's envelope, passed through as it came.
 * @typedef {object} RawPayload
 * @property {"raw"} kind
 * @property {string} text
 */

/** @typedef {Cue | RawPayload} Decoded */

/**
 * An envelope entry as it travels: `{"i": id, "t": type, "d": data}`.
 * @typedef {object} EnvelopeItem
 * @property {string} i
 * @property {string} t
 * @property {unknown} d
 */

/**
 * Parse a metadata text as the gateway's envelope.
 * @param {string} text - what the player reported (`cue.text`)
 * @returns {Cue[] | null} its cues in order (repeats included), or null if it is not an envelope
 */
export function parseEnvelope(text) {
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    return null;
  }
  if (
    envelope === null ||
    typeof envelope !== "object" ||
    envelope.v !== ENVELOPE_VERSION ||
    !Array.isArray(envelope.c)
  ) {
    return null;
  }
  /** @type {Cue[]} */
  const cues = [];
  for (const item of envelope.c) {
    // One malformed entry means this is not the gateway's envelope but a lookalike.
    if (!isItem(item)) return null;
    cues.push({ kind: "cue", id: item.i, type: item.t, data: item.d });
  }
  return cues;
}

/**
 * @param {unknown} item
 * @returns {item is EnvelopeItem}
 */
function isItem(item) {
  if (item === null || typeof item !== "object" || Array.isArray(item)) return false;
  const { i, t } = /** @type {Record<string, unknown>} */ (item);
  return typeof i === "string" && i !== "" && typeof t === "string" && "d" in item;
}

/** Turns metadata texts into new cues, once each, and raw payloads. */
export class CueDecoder {
  /** @type {Set<string>} */
  #seen = new Set();
  /** @type {number} */
  #limit;

  /**
   * @param {object} [options]
   * @param {number} [options.rememberedIds] - ids kept for dropping repeats (oldest forgotten)
   */
  constructor({ rememberedIds = DEFAULT_REMEMBERED_IDS } = {}) {
    if (!Number.isInteger(rememberedIds) || rememberedIds < 1) {
      throw new RangeError(`rememberedIds must be a positive integer, not ${rememberedIds}`);
    }
    this.#limit = rememberedIds;
  }

  /**
   * Decode one metadata text.
   * @param {string} text - what the player reported (`cue.text`)
   * @returns {Decoded[]} cues not seen before, in the gateway's order, or the raw payload
   */
  decode(text) {
    const cues = parseEnvelope(text);
    if (cues === null) return [{ kind: "raw", text }];
    return cues.filter((cue) => this.#remember(cue.id));
  }

  /**
   * Whether a cue id has already been passed on (and is still remembered).
   * @param {string} id
   * @returns {boolean}
   */
  has(id) {
    return this.#seen.has(id);
  }

  /** How many ids are remembered. */
  get size() {
    return this.#seen.size;
  }

  /**
   * @param {string} id
   * @returns {boolean} true if the id is new
   */
  #remember(id) {
    if (this.#seen.has(id)) return false;
    this.#seen.add(id);
    if (this.#seen.size > this.#limit) {
      // A Set iterates in insertion order: the first id is the oldest.
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    return true;
  }
}
