"""Distributed mode: several gateway processes share one Redis (see docs/scaling.md).

Only this package imports redis; the core reaches it through the `Intake`, `CallGate` and
`DeliveryListener` seams.
"""

from metadata_gateway.distributed.runtime import DistributedRuntime

__all__ = ["DistributedRuntime"]
