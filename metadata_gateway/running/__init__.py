"""Running the process: the aiohttp app and its lifetime, the task registry, the one
shutdown sequence, and `serve`."""
