/** The envelope version this decoder understands. */
export declare const ENVELOPE_VERSION: 1;
/** The compressed and part format version this decoder understands. */
export declare const FORMAT_VERSION: 1;
/** The largest envelope a compressed payload or a cue in parts may inflate to. */
export declare const MAX_ENVELOPE_BYTES: number;
/** How many ids a decoder remembers by default. */
export declare const DEFAULT_REMEMBERED_IDS: number;

/** What was wrong with a payload, or with a cue in parts that was cut off. */
export interface Damage {
  reason: "corrupt" | "unsupported" | "incomplete";
  detail: string;
}

/** One cue from the gateway's envelope. */
export interface Cue {
  kind: "cue";
  id: string;
  type: string;
  data: unknown;
}

/** A payload that is not the gateway's envelope, passed through as it came. */
export interface RawPayload {
  kind: "raw";
  text: string;
}

export type Decoded = Cue | RawPayload;

/** Parse a metadata text as the gateway's envelope: its cues in order, or null. */
export declare function parseEnvelope(text: string): Cue[] | null;

/** Base85 (RFC 1924 alphabet) text from `start` on, as bytes; throws on damage. */
export declare function base85Decode(text: string, start?: number): Uint8Array;

/** CRC-32 of `bytes`, as zlib computes it. */
export declare function crc32(bytes: Uint8Array): number;

/** Turns metadata texts into new cues, once each, and raw payloads. */
export declare class CueDecoder {
  constructor(options?: { rememberedIds?: number; onDamage?: (damage: Damage) => void });
  /** Payloads, or cues in parts, reported as damaged so far. */
  damaged: number;
  /** The cues this payload completes, whatever its encoding; never throws. */
  decode(text: string): Decoded[];
  has(id: string): boolean;
  readonly size: number;
}
