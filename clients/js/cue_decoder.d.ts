/** The envelope version this decoder understands. */
export declare const ENVELOPE_VERSION: 1;
/** How many ids a decoder remembers by default. */
export declare const DEFAULT_REMEMBERED_IDS: number;

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

/** Turns metadata texts into new cues, once each, and raw payloads. */
export declare class CueDecoder {
  constructor(options?: { rememberedIds?: number });
  decode(text: string): Decoded[];
  has(id: string): boolean;
  readonly size: number;
}
