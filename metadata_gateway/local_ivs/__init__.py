"""A local Amazon IVS: the real control-plane wire API and PutMetadata limits on loopback.

Point botocore at it with ``endpoint_url=LocalIvs.url`` and any credentials; docs/local_ivs.md
describes the operations, the admin API under ``/_local/`` and the behaviour chosen where IVS's
documentation is silent.

Throughput, measured on the project's 2-core machine: the local IVS in its own process, one
aiobotocore client in another keeping 50 PutMetadata calls in flight for 5 s over 200 live channels
(limits raised so nothing throttles), answered ~1,700 calls/s with no errors; the client's signing
was the bottleneck (the server spent ~0.15 ms of CPU per call, and raw unsigned POSTs reached
~10,700 calls/s). IVS itself allows the gateway 155 calls/s per account, so this is never the limit.
"""

from metadata_gateway.local_ivs.app import create_local_ivs_app
from metadata_gateway.local_ivs.errors import IvsError
from metadata_gateway.local_ivs.events import MetadataEvent
from metadata_gateway.local_ivs.faults import Fault
from metadata_gateway.local_ivs.server import LocalIvs
from metadata_gateway.local_ivs.settings import LocalIvsSettings
from metadata_gateway.local_ivs.state import LocalIvsState

__all__ = [
    "Fault",
    "IvsError",
    "LocalIvs",
    "LocalIvsSettings",
    "LocalIvsState",
    "MetadataEvent",
    "create_local_ivs_app",
]
