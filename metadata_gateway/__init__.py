"""metadata_gateway: timed metadata into Amazon IVS live streams, within IVS's limits."""

__version__ = "0.1.0"
