/**
 * Decodes metadata_gateway's payloads as an IVS player hands them over.
 *
 * The gateway packs cues into `{"v":1,"c":[{"i":ID,"t":TYPE,"d":DATA},...]}` (at most 1 KB per
 * PutMetadata call). A channel with `payload_encoding = "deflate"` sends that envelope deflated,
 * as `~z` and base85 text, and a cue too big for one payload comes as `~p` parts in consecutive
 * payloads, which the decoder reassembles and hands over once, whole (docs/wire-format.md).
 * Delivery is at least once and state cues are re-sent on purpose, so the decoder remembers the
 * ids it has passed on and drops repeats. Any other text (a `raw` cue, or someone else's
 * metadata) is passed through untouched. A damaged payload is reported to `onDamage`, never
 * thrown: `decode` does not throw.
 *
 * @example
 * import { CueDecoder } from "metadata-gateway-client";
 * const decoder = new CueDecoder({ onDamage: (damage) => console.warn(damage.reason) });
 * player.addEventListener(PlayerEventType.TEXT_METADATA_CUE, (cue) => {
 *   for (const item of decoder.decode(cue.text)) {
 *     if (item.kind === "raw") handleRaw(item.text);
 *     else if (item.type === "quiz") showQuestion(item.data);
 *   }
 * });
 *
 * @module cue_decoder
 */

import { inflateSync } from "fflate";

/** The envelope version this decoder understands. */
export const ENVELOPE_VERSION = 1;

/** The version of the `~z` / `~p` framing this decoder understands. */
export const FORMAT_VERSION = 1;

/** The most bytes an envelope may inflate to; the gateway never sends more. */
export const MAX_ENVELOPE_BYTES = 65_536;

/**
 * How many ids a decoder remembers by default. A channel carries at most 5 calls/s of at most
 * 1 KB, so this covers well over an hour of small cues; older ids are forgotten first.
 */
export const DEFAULT_REMEMBERED_IDS = 10_000;

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Preset dictionaries by id (docs/wire-format.md): the envelope's keys and usual cue shapes. */
const DICTIONARIES = new Map([
  [
    1,
    encoder.encode(
      '{"i":"","t":"custom","d":{}},{"i":"","t":"state","d":{}},' +
        '{"i":"","t":"poll","d":{"poll_id":""}},{"i":"","t":"quiz","d":{"question_id":""}},' +
        '{"i":"","t":"caption","d":{"text":"","lang":"","final":false}}]}{"v":1,"c":[{"i":"',
    ),
  ],
]);

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
 * What was wrong with a payload, or with a cue in parts that was cut off.
 * @typedef {object} Damage
 * @property {"corrupt" | "unsupported" | "incomplete"} reason
 * @property {string} detail
 */

/**
 * An envelope entry as it travels: `{"i": id, "t": type, "d": data}`.
 * @typedef {object} EnvelopeItem
 * @property {string} i
 * @property {string} t
 * @property {unknown} d
 */

class Damaged extends Error {
  /**
   * @param {Damage["reason"]} reason
   * @param {string} detail
   */
  constructor(reason, detail) {
    super(detail);
    this.reason = reason;
  }
}

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

const B85 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
const B85_VALUES = new Int16Array(128).fill(-1);
for (let n = 0; n < B85.length; n++) B85_VALUES[B85.charCodeAt(n)] = n;

/**
 * Base85 (RFC 1924 alphabet) to bytes; a last group of n + 1 characters holds n bytes.
 * @param {string} text
 * @param {number} start - where the base85 text starts in `text`
 * @returns {Uint8Array}
 */
export function base85Decode(text, start = 0) {
  const length = text.length - start;
  if (length % 5 === 1) throw new Damaged("corrupt", "base85 text of impossible length");
  const out = new Uint8Array(Math.floor(length / 5) * 4 + Math.max(0, (length % 5) - 1));
  let o = 0;
  for (let i = start; i < text.length; i += 5) {
    let value = 0;
    for (let j = i; j < i + 5; j++) {
      // A short last group is padded with the highest digit, as Python's b85decode does.
      const code = j < text.length ? text.charCodeAt(j) : 126;
      const digit = code < 128 ? B85_VALUES[code] : -1;
      if (digit < 0) throw new Damaged("corrupt", `not base85 at ${j}`);
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) throw new Damaged("corrupt", `base85 group overflows at ${i}`);
    for (let shift = 24; shift >= 0 && o < out.length; shift -= 8) {
      out[o++] = Math.floor(value / 2 ** shift) & 0xff;
    }
  }
  return out;
}

const CRC_TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c >>> 0;
}

/**
 * CRC-32 (as zlib's crc32) of `bytes`.
 * @param {Uint8Array} bytes
 * @returns {number}
 */
export function crc32(bytes) {
  let crc = 0xffffffff;
  for (let n = 0; n < bytes.length; n++) crc = CRC_TABLE[(crc ^ bytes[n]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * @param {Uint8Array} frame
 * @param {number} at
 */
const readUint32 = (frame, at) =>
  ((frame[at] << 24) | (frame[at + 1] << 16) | (frame[at + 2] << 8) | frame[at + 3]) >>> 0;

/** @param {number} header */
function dictionaryOf(header) {
  const version = header >> 4;
  const dictionary = DICTIONARIES.get(header & 0x0f);
  if (version !== FORMAT_VERSION || dictionary === undefined) {
    throw new Damaged("unsupported", `format ${version}, dictionary ${header & 0x0f}`);
  }
  return dictionary;
}

/**
 * Inflate a deflated envelope, check its CRC-32 and parse it.
 * @param {number} header
 * @param {Uint8Array} stream
 * @param {number} crc
 * @returns {Cue[]}
 */
function inflateEnvelope(header, stream, crc) {
  const dictionary = dictionaryOf(header);
  let envelope;
  try {
    envelope = inflateSync(stream, { dictionary, out: new Uint8Array(MAX_ENVELOPE_BYTES + 1) });
  } catch (error) {
    throw new Damaged("corrupt", `not deflate: ${/** @type {Error} */ (error).message}`);
  }
  if (envelope.length > MAX_ENVELOPE_BYTES) {
    throw new Damaged("corrupt", "inflates past 65536 bytes");
  }
  if (crc32(envelope) !== crc) throw new Damaged("corrupt", "CRC-32 mismatch");
  let text;
  try {
    text = utf8.decode(envelope);
  } catch {
    throw new Damaged("corrupt", "the inflated bytes are not UTF-8");
  }
  const cues = parseEnvelope(text);
  if (cues === null) throw new Damaged("corrupt", "the inflated text is not an envelope");
  return cues;
}

/** Turns metadata texts into new cues, once each, and raw payloads. */
export class CueDecoder {
  /** @type {Set<string>} */
  #seen = new Set();
  /** @type {number} */
  #limit;
  /** @type {((damage: Damage) => void) | undefined} */
  #onDamage;
  /** @type {{crc: number, count: number, header: number, segments: Uint8Array[]} | null} */
  #assembly = null;

  /** Payloads, or cues in parts, reported as damaged so far. */
  damaged = 0;

  /**
   * @param {object} [options]
   * @param {number} [options.rememberedIds] - ids kept for dropping repeats (oldest forgotten)
   * @param {(damage: Damage) => void} [options.onDamage] - told of each damaged payload
   */
  constructor({ rememberedIds = DEFAULT_REMEMBERED_IDS, onDamage } = {}) {
    if (!Number.isInteger(rememberedIds) || rememberedIds < 1) {
      throw new RangeError(`rememberedIds must be a positive integer, not ${rememberedIds}`);
    }
    this.#limit = rememberedIds;
    this.#onDamage = onDamage;
  }

  /**
   * Decode one metadata text; never throws.
   * @param {string} text - what the player reported (`cue.text`)
   * @returns {Decoded[]} the cues this payload completes, not seen before, in the gateway's
   *   order, or the raw payload
   */
  decode(text) {
    try {
      if (typeof text !== "string") throw new Damaged("corrupt", "not text");
      if (text.startsWith("~p")) return this.#fresh(this.#part(text));
      this.#cutOff();
      if (text.startsWith("~z")) {
        const frame = base85Decode(text, 2);
        if (frame.length < 6) {
          throw new Damaged("corrupt", "a compressed payload shorter than its header");
        }
        return this.#fresh(inflateEnvelope(frame[0], frame.subarray(5), readUint32(frame, 1)));
      }
      const cues = parseEnvelope(text);
      if (cues === null) return [{ kind: "raw", text }];
      return this.#fresh(cues);
    } catch (error) {
      if (!(error instanceof Damaged)) throw error;
      this.#report(error.reason, error.message);
      return [];
    }
  }

  /**
   * @param {string} text
   * @returns {Cue[]}
   */
  #part(text) {
    const frame = base85Decode(text, 2);
    if (frame.length < 8) throw new Damaged("corrupt", "a part shorter than its header");
    const [header, crc, index, count] = [frame[0], readUint32(frame, 1), frame[5], frame[6]];
    if (count < 2 || index >= count) throw new Damaged("corrupt", `part ${index} of ${count}`);
    const assembly = this.#assembly;
    if (assembly !== null && assembly.crc === crc && assembly.count === count) {
      const held = assembly.segments.length;
      if (index === held) {
        assembly.segments.push(frame.subarray(7));
        if (index < count - 1) return [];
        this.#assembly = null;
        const stream = new Uint8Array(assembly.segments.reduce((n, s) => n + s.length, 0));
        let at = 0;
        for (const segment of assembly.segments) {
          stream.set(segment, at);
          at += segment.length;
        }
        return inflateEnvelope(assembly.header, stream, crc);
      }
      if (index < held) return []; // a part sent again (delivery is at least once)
    }
    this.#cutOff();
    if (index === 0) {
      dictionaryOf(header);
      this.#assembly = { crc, count, header, segments: [frame.subarray(7)] };
    }
    // A later part without its start: joined mid-cue, so nothing of it can be handed over.
    return [];
  }

  #cutOff() {
    const assembly = this.#assembly;
    this.#assembly = null;
    if (assembly !== null) {
      this.#report(
        "incomplete",
        `a cue in parts stopped after ${assembly.segments.length} of ${assembly.count}`,
      );
    }
  }

  /**
   * @param {Damage["reason"]} reason
   * @param {string} detail
   */
  #report(reason, detail) {
    this.damaged += 1;
    this.#onDamage?.({ reason, detail });
  }

  /**
   * @param {Cue[]} cues
   * @returns {Cue[]}
   */
  #fresh(cues) {
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
