"""Redis clients from a URL: `redis://`, `rediss://` and `unix://` as redis-py reads them, and
`redis+sentinel://[:password@]host:port[,host:port...]/service[/db]` through Sentinel, which
follows the primary across failovers."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


def connect(url: str, **options: Any) -> Redis:
    """A client for `url`; `options` are connection settings (timeouts)."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return Redis.from_url(url, **options)
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
        hosts.append((host, int(port) if port else SENTINEL_PORT))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a Sentinel URL names the service: redis+sentinel://host:port/service")
    password = unquote(parts.password) if parts.password else None
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(hosts, sentinel_kwargs=dict(options), **options)
    client: Redis = sentinel.master_for(path[0], db=db, password=password)
    return client
