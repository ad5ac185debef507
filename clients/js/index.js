// metadata-gateway-client: send cues to a metadata gateway (Node 20+ and browsers), and decode
// them in the player.

export { GatewayClient, RETRYABLE_STATUSES, retryable } from "./client.js";
export { GatewayStream } from "./stream.js";
export { StreamLedger } from "./ledger.js";
export { GatewayError, GatewayUnavailable, STATUS_OF_CODE } from "./errors.js";
export { Backoff, RetryPolicy } from "./retry.js";
export { MAX_CUES_PER_REQUEST, newCueId, withId } from "./cues.js";
export { WS_BEARER_PREFIX, WS_PROTOCOL } from "./socket.js";
export {
  CueDecoder,
  DEFAULT_REMEMBERED_IDS,
  ENVELOPE_VERSION,
  FORMAT_VERSION,
  MAX_ENVELOPE_BYTES,
  parseEnvelope,
} from "./cue_decoder.js";
