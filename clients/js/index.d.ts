// Hand-written declarations for metadata-gateway-client (the package has no build step).

export {
  CueDecoder,
  DEFAULT_REMEMBERED_IDS,
  ENVELOPE_VERSION,
  FORMAT_VERSION,
  MAX_ENVELOPE_BYTES,
  parseEnvelope,
  type Cue as DecodedCue,
  type Damage,
  type Decoded,
  type RawPayload,
} from "./cue_decoder.js";

/** A cue as the API takes it (see the gateway's README). */
export interface CueInput {
  channel: string;
  type: "quiz" | "poll" | "caption" | "custom" | "state" | "raw" | (string & {});
  data: unknown;
  id?: string;
  key?: string;
  ttl_ms?: number;
  priority?: "high" | "normal" | "low" | (string & {});
  not_before?: number | string;
  repeat_ms?: number;
}

/** The gateway's answer for one cue: `queued`, or `duplicate` of one it already had. */
export interface CueResult {
  id: string;
  /** The channel ARN, even when the cue named an alias. */
  channel: string;
  status: "queued" | "duplicate";
  /** For a duplicate: had the original reached IVS already? */
  delivered?: boolean;
}

/** A cancel's answer. */
export interface Cancelled {
  id: string;
  channel: string;
  status: "cancelled";
  state: "queued" | "scheduled" | "repeating" | (string & {});
}

/** What became of cues sent over a stream. `at` is null when the client made the receipt. */
export type Receipt =
  | { op: "sent"; channel: string; ids: string[]; at: number | null }
  | { op: "dropped"; channel: string; ids: string[]; reason: string | null };

/** One channel as `GET /v1/channels` lists it. */
export interface ChannelInfo {
  channel: string;
  alias: string | null;
  pending: number;
  pending_bytes: number;
  scheduled: number;
  repeating: number;
  live: boolean | null;
  sent_requests: number;
  delivered_cues: number;
  last_error: string | null;
}

/** One channel with its scheduled and repeating cues (`GET /v1/channels/{channel}`). */
export interface ChannelDetail extends ChannelInfo {
  scheduled_cues: { id: string; type: string; not_before: number }[];
  repeating_cues: { id: string; key: string; repeat_ms: number }[];
}

/** A request the gateway refused: HTTP status (a nack's: the code's), stable code, details. */
export declare class GatewayError extends Error {
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>);
  readonly status: number;
  readonly code: string;
  /** The gateway's message. */
  readonly detail: string;
  readonly details: Record<string, unknown>;
  /** Seconds the gateway asked to wait before trying again, or null. */
  readonly retryAfter: number | null;
}

/** The gateway could not be reached (status 0): `unreachable`, `stream_closed`, ... */
export declare class GatewayUnavailable extends GatewayError {
  constructor(code: string, message: string);
}

export declare const STATUS_OF_CODE: Readonly<Record<string, number>>;
export declare const RETRYABLE_STATUSES: ReadonlySet<number>;
export declare function retryable(error: unknown): boolean;
export declare const MAX_CUES_PER_REQUEST: 100;
export declare const WS_PROTOCOL: "metadata-gateway.v1";
export declare const WS_BEARER_PREFIX: "metadata-gateway.bearer.";
export declare function newCueId(): string;
export declare function withId<T extends object>(cue: T): T & { id: string };

/** Exponential backoff with jitter; seconds. */
export declare class Backoff {
  constructor(options?: { initial?: number; maximum?: number });
  readonly initial: number;
  readonly maximum: number;
  delay(attempt: number, rand?: () => number): number;
}

/** At most `maxRetries` retries, none starting after `deadline` seconds. */
export declare class RetryPolicy {
  constructor(options?: { maxRetries?: number; deadline?: number; backoff?: Backoff });
  readonly maxRetries: number;
  readonly deadline: number;
  readonly backoff: Backoff;
  wait(retry: number, at: { started: number; now: number; retryAfter?: number | null; rand?: () => number }): number | null;
}

export interface GatewayClientOptions {
  /** Sent as `Authorization: Bearer` over HTTP, and as a subprotocol on the WebSocket. */
  token?: string;
  maxRetries?: number;
  /** Seconds after which no retry starts. */
  retryDeadline?: number;
  backoff?: Backoff;
  /** Seconds per HTTP request. */
  timeout?: number;
  fetch?: typeof globalThis.fetch;
}

export interface StreamOptions {
  /** Keep receipts for `receipts()` (events fire either way). */
  receipts?: boolean;
  reconnectBackoff?: Backoff;
  /** Seconds of reconnecting before the stream gives up. */
  reconnectDeadline?: number;
  /** Seconds between pings (Node only; browsers answer the gateway's). */
  heartbeat?: number | null;
  maxFrameBytes?: number;
}

/** Sends cues to a metadata gateway, with an id on every cue and retries. */
export declare class GatewayClient {
  constructor(url: string | URL, options?: GatewayClientOptions);
  readonly url: string;
  readonly requests: number;
  readonly retries: number;
  send(cue: CueInput): Promise<CueResult>;
  send(cues: CueInput[]): Promise<CueResult[]>;
  cancel(id: string, channel: string): Promise<Cancelled>;
  channel(aliasOrArn: string): Promise<ChannelDetail>;
  channels(): Promise<ChannelInfo[]>;
  stream(options?: StreamOptions): Promise<GatewayStream>;
}

export interface GatewayStreamEventMap {
  receipt: CustomEvent<Receipt>;
  reconnect: CustomEvent<{ resent: number }>;
  close: CustomEvent<{ error: GatewayError | null }>;
  warning: CustomEvent<{ message: string; code?: string }>;
}

/** Cues and receipts over a WebSocket that reconnects and re-sends with the same ids. */
export declare class GatewayStream extends EventTarget implements AsyncIterable<Receipt> {
  readonly url: string;
  readonly reconnects: number;
  readonly resent: number;
  readonly unsettled: number;
  send(cue: CueInput): Promise<CueResult>;
  send(cues: CueInput[]): Promise<CueResult[]>;
  cancel(id: string, channel: string): Promise<Cancelled>;
  receipts(): AsyncGenerator<Receipt, void, undefined>;
  [Symbol.asyncIterator](): AsyncIterator<Receipt>;
  waitSettled(): Promise<void>;
  close(): Promise<void>;
  addEventListener<K extends keyof GatewayStreamEventMap>(
    type: K,
    listener: (event: GatewayStreamEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

/** The stream's pure book-keeping (exported for tests and custom transports). */
export declare class StreamLedger {
  constructor(options?: { retry?: RetryPolicy; maxFrameBytes?: number; rand?: () => number });
  readonly unsettled: number;
  readonly settled: boolean;
  readonly resent: number;
}
