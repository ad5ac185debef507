"""A client for backends: send cues to a metadata gateway over HTTP or a reconnecting stream.

It imports aiohttp's client side and orjson only, never the gateway's server modules.
"""

from metadata_gateway.client.errors import GatewayError, GatewayUnavailable
from metadata_gateway.client.gateway_client import GatewayClient
from metadata_gateway.client.results import Cancelled, CueJson, CueResult, Receipt, new_cue_id
from metadata_gateway.client.retry import Backoff, RetryPolicy
from metadata_gateway.client.stream import CueStream

__all__ = [
    "Backoff",
    "Cancelled",
    "CueJson",
    "CueResult",
    "CueStream",
    "GatewayClient",
    "GatewayError",
    "GatewayUnavailable",
    "Receipt",
    "RetryPolicy",
    "new_cue_id",
]
