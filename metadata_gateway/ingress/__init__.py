"""The web edge: HTTP and WebSocket endpoints, request documents, authentication.

aiohttp is imported here and in `running/`, nowhere else."""
