"""The call budgets every replica shares: the arrival-safe sliding window, kept in Redis.

`SlidingWindowLimiter`'s rule on Redis's own clock: a call may start at `t` only if fewer than
`limit` earlier calls have an answer time after `t - window`. Each key is a ZSET of calls; a call
in flight is scored `start + ivs_timeout` (the latest it can be answered), and re-scored with its
real answer time on release. A channel and its account are checked and charged in one script.
A GCRA (or any bucket with burst = rate) counts starts, not possible arrivals, and lets twice the
rate reach IVS in one window when latency varies; this does not (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from metadata_gateway.distributed.keys import PartitionKeys, budget_keys, busy_key, partition_of
from metadata_gateway.distributed.probe import RedisProbe

log = logging.getLogger(__name__)

MAX_RETRY_S = 0.25  # ask again at least this often: a call counted as in flight may end sooner
REDIS_DOWN_RETRY_S = 0.5  # no budget can be proven while Redis is away: wait, do not send
NOT_OWNED_RETRY_S = 0.5  # a channel whose partition moved away: its cues are evicted meanwhile

# KEYS: channel window, account window, optionally the channel's partition lease.
# ARGV: channel limit, account limit, window (us), in-flight horizon (us), member, replica.
# Returns {1, 0} (admitted), {0, wait in us}, or {-1, 0}: the lease is not ours (fenced).
_ACQUIRE = """
if KEYS[3] and redis.call("GET", KEYS[3]) ~= ARGV[6] then return {-1, 0} end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[3])
local wait = 0
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  redis.call("ZREMRANGEBYSCORE", KEYS[i], "-inf", now - window)
  local n = redis.call("ZCARD", KEYS[i])
  if n >= limit then
    local first = redis.call("ZRANGE", KEYS[i], n - limit, n - limit, "WITHSCORES")
    local until_ = tonumber(first[2]) + window - now
    if until_ > wait then wait = until_ end
    if wait <= 0 then wait = 1 end
  end
end
if wait > 0 then return {0, wait} end
local horizon = now + tonumber(ARGV[4])
for i = 1, 2 do
  redis.call("ZADD", KEYS[i], horizon, ARGV[5])
  redis.call("PEXPIRE", KEYS[i], math.floor((tonumber(ARGV[4]) + window) / 1000) + 1000)
end
return {1, 0}
"""

# KEYS: channel window, account window. ARGV: member. The call's answer time is now.
_RELEASE = """
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, 2 do redis.call("ZADD", KEYS[i], "XX", now, ARGV[1]) end
return 1
"""


class RedisCallGate:
    """A `CallGate`: both PutMetadata quotas, for all replicas together."""

    def __init__(
        self,
        redis: Redis,
        *,
        replica: str,
        channel_rate: int,
        account_rate: int,
        ivs_timeout: float,
        margin: float,
        partitions: int | None = None,
        probe: RedisProbe | None = None,
    ) -> None:
        self._redis = redis
        self._probe = probe or RedisProbe()
        self._partitions = partitions  # set: refuse calls for partitions whose lease is not ours
        self._replica = replica
        self._channel_rate = channel_rate
        self._account_rate = account_rate
        self._window_us = round((1.0 + margin) * 1e6) + 1000  # +1 ms: Redis time vs our answer
        self._horizon_us = round((ivs_timeout + 0.5) * 1e6)
        self._ids = itertools.count()
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self.refused = 0  # calls the shared budget deferred
        self.admitted = 0
        self.fenced = 0  # calls refused because another replica holds the lease
        self.owns: Callable[[str], bool] = lambda channel_arn: True  # set once partitions exist

    def __repr__(self) -> str:
        return (
            f"<RedisCallGate admitted={self.admitted} refused={self.refused} fenced={self.fenced}>"
        )

    async def acquire(self, channel_arn: str, budget: tuple[str, str]) -> tuple[object, float]:
        """Charge one call to the channel and its account, or say how long to wait."""
        if not self.owns(channel_arn):
            return None, NOT_OWNED_RETRY_S
        keys = budget_keys(channel_arn, budget)
        member = f"{self._replica}:{next(self._ids)}"
        fence = []
        if self._partitions is not None:
            fence = [PartitionKeys(partition_of(channel_arn, self._partitions)).lease]
        try:
            with self._probe.timed("budget"):
                admitted, wait_us = await self._acquire(
                    keys=[*keys, *fence],
                    args=[
                        self._channel_rate,
                        self._account_rate,
                        self._window_us,
                        self._horizon_us,
                        member,
                        self._replica,
                    ],
                )
        except (RedisError, OSError) as exc:
            log.warning("call budget unavailable", extra={"error": str(exc)})
            return None, REDIS_DOWN_RETRY_S
        if int(admitted) == -1:
            self.fenced += 1
            return None, NOT_OWNED_RETRY_S
        if int(admitted) != 1:
            self.refused += 1
            return None, min(MAX_RETRY_S, int(wait_us) / 1e6)
        self.admitted += 1
        return (keys, member), 0.0

    async def outlook(self, channel_arn: str, budget: tuple[str, str]) -> tuple[float, int]:
        """Seconds until the channel's shared window lets its next call start (on Redis's
        clock, by the rule `acquire` applies), and the account's busy channels on all
        replicas; what a `Retry-After` needs to know of a channel another replica may send."""
        channel_key, _ = budget_keys(channel_arn, budget)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(channel_key, 0, -1, withscores=True)
            pipe.hvals(busy_key(budget))
            (seconds, micros), calls, busy = await pipe.execute()
        now = seconds * 1_000_000 + micros
        ends = [score for _, score in calls if score > now - self._window_us]
        wait = 0.0
        if len(ends) >= self._channel_rate:
            first = ends[len(ends) - self._channel_rate]
            wait = max(0.0, (first + self._window_us - now) / 1e6)
        return wait, sum(int(count) for count in busy)

    async def release(self, ticket: object) -> None:
        """Record the call's answer time; left in flight (counted until its horizon) on error."""
        assert isinstance(ticket, tuple)
        keys, member = ticket
        try:
            await self._release(keys=list(keys), args=[member])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the call is over: its window entry ages out at its horizon
            log.warning("could not record a call's end", extra={"error": str(exc)})
