"""The account's stream keys: one per channel (IVS's quota), each with its secret value and its
tags (kept in the account's one tag table, which TagResource also reaches)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from metadata_gateway.local_ivs.accounts import channel_account, require_owner
from metadata_gateway.local_ivs.errors import IvsError, batch_error, not_found
from metadata_gateway.local_ivs.ids import IdFactory
from metadata_gateway.local_ivs.pagination import paginate, position
from metadata_gateway.local_ivs.resources import StreamKey
from metadata_gateway.local_ivs.settings import LocalIvsSettings
from metadata_gateway.local_ivs.validation import check_arn_list, check_stream_key_arn

MAX_STREAM_KEYS_PER_CHANNEL = 1  # IVS quota "Stream keys per channel", not adjustable


class StreamKeys:
    """Stream keys by ARN, in the order they were made."""

    def __init__(
        self,
        settings: LocalIvsSettings,
        *,
        ids: IdFactory,
        positions: Iterator[int],
        tags: dict[str, dict[str, str]],
    ) -> None:
        self.settings = settings
        self._ids = ids
        self._positions = positions
        self._tags = tags
        self._keys: dict[str, StreamKey] = {}

    def __repr__(self) -> str:
        return f"<StreamKeys keys={len(self._keys)}>"

    def new(self, channel_arn: str, tags: dict[str, str] | None = None) -> StreamKey:
        """Make a key for the channel (whose existence the caller checked)."""
        account = channel_account(channel_arn, self.settings.account_id)
        prefix = f"arn:aws:ivs:{self.settings.region}:{account}:stream-key/"
        arn = prefix + self._ids.resource_id()
        while arn in self._keys:
            arn = prefix + self._ids.resource_id()
        key = StreamKey(
            arn=arn,
            value=self._ids.stream_key_value(self.settings.region),
            channel_arn=channel_arn,
            position=next(self._positions),
        )
        self._keys[arn] = key
        self._tags[arn] = dict(tags or {})
        return key

    def create(self, channel_arn: str, tags: dict[str, str] | None) -> dict[str, Any]:
        """CreateStreamKey's answer; a second key of one channel is a quota error."""
        if len(self.of_channel(channel_arn)) >= MAX_STREAM_KEYS_PER_CHANNEL:
            raise IvsError(
                "ServiceQuotaExceededException",
                f"Exceeded the quota of {MAX_STREAM_KEYS_PER_CHANNEL} stream key per channel",
            )
        return {"streamKey": self.to_json(self.new(channel_arn, tags))}

    def get(self, field: str, arn: str) -> StreamKey:
        """The key `arn` names (a ValidationException naming `field`, or not found)."""
        check_stream_key_arn(field, arn)
        require_owner(arn)
        key = self._keys.get(arn)
        if key is None:
            raise not_found(f"Resource: {arn} not found")
        return key

    def batch_get(self, arns: list[str]) -> dict[str, Any]:
        """BatchGetStreamKey's answer: known keys, and an error entry per unknown ARN."""
        check_arn_list("arns", arns, check_stream_key_arn)
        for arn in arns:
            require_owner(arn)
        keys = [self.to_json(self._keys[arn]) for arn in arns if arn in self._keys]
        errors = [batch_error(arn) for arn in arns if arn not in self._keys]
        return {"streamKeys": keys, "errors": errors}

    def page(self, channel_arn: str, *, next_token: str | None, max_results: int) -> dict[str, Any]:
        """ListStreamKeys' answer for one channel, without secret values."""
        page, token = paginate(
            self.of_channel(channel_arn),
            position_of=position,
            listing=f"stream-keys:{channel_arn.rsplit('/', 1)[-1]}",
            next_token=next_token,
            max_results=max_results,
        )
        answer: dict[str, Any] = {
            "streamKeys": [key.to_summary(tags=self._tags[key.arn]) for key in page]
        }
        if token:
            answer["nextToken"] = token
        return answer

    def of_channel(self, channel_arn: str) -> list[StreamKey]:
        """The channel's keys."""
        return [key for key in self._keys.values() if key.channel_arn == channel_arn]

    def delete(self, arn: str) -> None:
        """Delete one key and its tags."""
        del self._keys[arn]
        del self._tags[arn]

    def to_json(self, key: StreamKey) -> dict[str, Any]:
        """The StreamKey shape, secret value and tags included."""
        return key.to_json(tags=self._tags[key.arn])
