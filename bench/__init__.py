"""The metadata gateway's benchmark suite: `python -m bench [--quick] [--json FILE]`."""
