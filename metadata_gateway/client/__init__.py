"""A client for backends: send cues to a metadata gateway over HTTP or a reconnecting stream,
and decode the payloads viewers receive (`CueDecoder`).

It imports aiohttp's client side and orjson only, never the gateway's server modules.
"""

from metadata_gateway.client.cue_decoder import CueDecoder, Damage, DecodedCue, RawPayload
from metadata_gateway.client.errors import GatewayError, GatewayUnavailable
from metadata_gateway.client.gateway_client import GatewayClient
from metadata_gateway.client.results import Cancelled, CueJson, CueResult, Receipt, new_cue_id
from metadata_gateway.client.retry import Backoff, RetryPolicy
from metadata_gateway.client.stream import CueStream

__all__ = [
    "Backoff",
    "Cancelled",
    "CueDecoder",
    "CueJson",
    "CueResult",
    "CueStream",
    "Damage",
    "DecodedCue",
    "GatewayClient",
    "GatewayError",
    "GatewayUnavailable",
    "RawPayload",
    "Receipt",
    "RetryPolicy",
    "new_cue_id",
]
