"""Cancel from any replica, with the answers of one process.

One script decides atomically where a cue stands. A cue no replica has read yet (or whose
partition has no owner: nobody can send it, the call budget is fenced by the lease) is cancelled
in Redis there and then. A cue an owner holds (queued, scheduled, in a call, repeating) is the
owner's to cancel: the request goes to it (`asking.py`), it cancels in its queues exactly as a
single process does, writes the settlement, and answers. An owner that is handing the partition
over answers that it moved, and the asking replica looks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from metadata_gateway.core.errors import CueError, already_sent, not_found
from metadata_gateway.core.events import DropReason
from metadata_gateway.core.pending import CueState
from metadata_gateway.distributed.asking import ReplicaRequests
from metadata_gateway.distributed.keys import GROUP, PartitionKeys, partition_of
from metadata_gateway.distributed.probe import RedisProbe
from metadata_gateway.distributed.store import COUNT_OUT, decode_cue
from metadata_gateway.intake.seam import Cancelled

if TYPE_CHECKING:  # types only: the consumer and the gateway are the runtime's to make
    from metadata_gateway.core.gateway import Gateway
    from metadata_gateway.distributed.consumer import PartitionConsumer

log = logging.getLogger(__name__)

CANCEL_DEADLINE_S = 4.0  # a partition changes hands in well under this
LOOK_AGAIN_S = 0.1  # after an owner answered that the partition moved

# KEYS: stream, counts, entries, id marker, the channel's scheduled set, its states, the state
# channels set, the lease. ARGV: group, channel, id.
# Returns {"cancelled", "entry", body}, {"cancelled", "state"}, {"owner", replica, what} (what:
# "entry", "state" or "unknown"), {"sent"} or {"none"}.
_CANCEL = (
    COUNT_OUT
    + """
local stream, counts, entries, idkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local scheduled, states, state_channels, lease = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local group, channel, id = ARGV[1], ARGV[2], ARGV[3]
local owner = redis.call("GET", lease)
local field = channel .. " " .. id
local indexed = redis.call("HGET", entries, field)
if indexed then
  local entry, size, member = string.match(indexed, "^(%S+) (%d+) ?(.*)$")
  if owner and #redis.call("XPENDING", stream, group, entry, entry, 1) > 0 then
    return {"owner", owner, "entry"}
  end
  local found = redis.call("XRANGE", stream, entry, entry)
  redis.call("HDEL", entries, field)
  redis.call("XACK", stream, group, entry)
  if member ~= "" then redis.call("ZREM", scheduled, member) end
  redis.call("DEL", idkey)
  if redis.call("XDEL", stream, entry) == 1 then count_out(counts, channel, tonumber(size)) end
  if #found == 0 then return {"none"} end
  local fields = found[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == "c" then return {"cancelled", "entry", fields[i + 1]} end
  end
  return {"none"}
end
if redis.call("HEXISTS", states, id) == 1 then
  if owner then return {"owner", owner, "state"} end
  redis.call("HDEL", states, id)
  if redis.call("HLEN", states) == 0 then redis.call("SREM", state_channels, channel) end
  return {"cancelled", "state"}
end
if redis.call("GET", idkey) == "d" then return {"sent"} end
if owner then return {"owner", owner, "unknown"} end
return {"none"}
"""
)


class Cancels:
    """Cancels a cue wherever it stands in the deployment."""

    def __init__(
        self,
        redis: Redis,
        gateway: Gateway,
        consumer: PartitionConsumer,
        *,
        partitions: int,
        probe: RedisProbe,
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self._gateway = gateway
        self._consumer = consumer
        self._partitions = partitions
        self._probe = probe
        self._publish = publish
        self._script = redis.register_script(_CANCEL)
        self.requests: ReplicaRequests | None = None  # set once the runtime starts

    def __repr__(self) -> str:
        return f"<Cancels partitions={self._partitions}>"

    async def cancel(self, channel: str, cue_id: str) -> Cancelled:
        """Cancel `cue_id` of `channel`; raise `not_found`, `already_sent`, or `unavailable`
        when its owner does not answer in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_DEADLINE_S
        while True:
            answer = await self._look(channel, cue_id)
            kind = _text(answer[0])
            if kind == "cancelled":
                return self._cancelled_here(channel, cue_id, answer[2:])
            if kind == "sent":
                raise already_sent(cue_id, channel)
            if kind == "none":
                raise not_found(cue_id, channel)
            owner, what = _text(answer[1]), _text(answer[2])
            reply = await self._ask(owner, channel, cue_id)
            status = None if reply is None else reply.get("status")
            if reply is not None and status == "cancelled":
                return Cancelled(cue_id, channel, str(reply["state"]))
            if status == "already_sent":
                raise already_sent(cue_id, channel)
            if status == "not_found" and what == "unknown":
                raise not_found(cue_id, channel)
            # No answer, or the partition is changing hands: look again, for a while.
            if loop.time() >= deadline:
                raise CueError(
                    "unavailable",
                    f"the replica that sends {channel} did not answer; retry after the time given",
                    status=503,
                    retry_after=1.0,
                )
            await asyncio.sleep(LOOK_AGAIN_S)

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Cancel in this replica's queues, as the owner, for whichever replica asked."""
        channel, cue_id = str(request.get("channel")), str(request.get("id"))
        if not self._consumer.owns(channel):
            return {"status": "moved"}
        try:
            state = self._gateway.cancel(channel, cue_id)
        except CueError as exc:
            return {"status": exc.code}
        try:
            # Settled in Redis before the answer: a crash now must not bring the cue back.
            await self._consumer.flush()
        except (RedisError, OSError) as exc:
            log.warning("cancel not yet written to Redis", extra={"error": str(exc)})
        return {"status": "cancelled", "state": state.value}

    async def _look(self, channel: str, cue_id: str) -> list[Any]:
        part = PartitionKeys(partition_of(channel, self._partitions))
        keys = [
            part.stream,
            part.counts,
            part.entries,
            part.idempotency(channel, cue_id),
            part.scheduled(channel),
            part.states(channel),
            part.state_channels,
            part.lease,
        ]
        with self._probe.timed("cancel"):
            answer: list[Any] = await self._script(keys=keys, args=[GROUP, channel, cue_id])
        return answer

    async def _ask(self, owner: str, channel: str, cue_id: str) -> dict[str, Any] | None:
        assert self.requests is not None, "started by the runtime"
        return await self.requests.ask(owner, {"op": "cancel", "channel": channel, "id": cue_id})

    def _cancelled_here(self, channel: str, cue_id: str, body: list[Any]) -> Cancelled:
        """Cancelled in Redis: tell the WebSocket clients waiting for it, as the owner would."""
        reason = DropReason.CANCELLED.value
        self._publish({"op": "dropped", "channel": channel, "ids": [cue_id], "reason": reason})
        if not body:
            return Cancelled(cue_id, channel, CueState.REPEATING.value)
        cue = decode_cue(body[0])
        held = cue.not_before is not None and cue.not_before > self._gateway.wall_clock()
        state = CueState.SCHEDULED if held else CueState.QUEUED
        return Cancelled(cue_id, channel, state.value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
