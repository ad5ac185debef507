"""Browser tests' helpers: a gateway with the demo pages on a local IVS, and the Node driver."""
