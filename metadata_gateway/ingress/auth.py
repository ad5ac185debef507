"""Who may post cues: bearer tokens stored as SHA-256 hashes, each with channels and a rate."""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from metadata_gateway.core.cues import Cue
from metadata_gateway.core.errors import CueError

TOKEN_BYTES = 32  # 256 bits of randomness per token
MIN_BURST = 100  # a full batch (100 cues) always fits, whatever the rate
# Browsers cannot set headers on a WebSocket, only subprotocols: a client offers the plain
# protocol (which the gateway selects) and the bearer one, which carries the token.
WS_PROTOCOL = "metadata-gateway.v1"
WS_BEARER_PREFIX = "metadata-gateway.bearer."


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as stored in the configuration."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new random token."""
    return "mgw_" + secrets.token_urlsafe(TOKEN_BYTES)


def bearer_from_subprotocols(header: str | None) -> str | None:
    """The token a `Sec-WebSocket-Protocol` header carries, as `Bearer <token>`; None if none.

    A bearer protocol offered without `metadata-gateway.v1` is refused (400): the gateway could
    select no protocol, and the browser would drop the connection anyway.
    """
    if not header:
        return None
    offered = [item.strip() for item in header.split(",")]
    tokens = [p[len(WS_BEARER_PREFIX) :] for p in offered if p.startswith(WS_BEARER_PREFIX)]
    if not tokens:
        return None
    if WS_PROTOCOL not in offered or len(tokens) > 1:
        raise CueError(
            "invalid_request",
            f"offer the subprotocols {WS_PROTOCOL!r} and one {WS_BEARER_PREFIX!r}<token>",
            status=400,
        )
    return f"Bearer {tokens[0]}"


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """One configured client: a name, the hash of its token, its channels and its cue rate."""

    name: str
    sha256: str
    channels: tuple[str, ...] = ("*",)  # aliases, or ARN patterns with * wildcards
    rate: float = 100.0  # cues per second, with a burst of one second's worth

    def allows(self, arn: str, aliases: Mapping[str, str]) -> bool:
        """Whether this client may post to the channel with this ARN."""
        for pattern in self.channels:
            if aliases.get(pattern) == arn or fnmatch.fnmatchcase(arn, pattern):
                return True
        return False


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class Authenticator:
    """Checks bearer tokens, channel scopes and per-client rates."""

    specs: Sequence[TokenSpec]
    aliases: Mapping[str, str]
    clock: Callable[[], float]
    _by_hash: dict[str, TokenSpec] = field(init=False)
    _buckets: dict[str, _Bucket] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_hash = {spec.sha256.lower(): spec for spec in self.specs}

    def __repr__(self) -> str:
        return f"<Authenticator clients={len(self._by_hash)}>"

    def authenticate(self, authorization: str | None) -> TokenSpec:
        """The client a `Authorization: Bearer <token>` header names; 401 otherwise."""
        if not authorization or not authorization.startswith("Bearer "):
            raise CueError("unauthorized", "send Authorization: Bearer <token>", status=401)
        spec = self._by_hash.get(hash_token(authorization[7:].strip()))
        if spec is None:
            raise CueError("unauthorized", "the token is not valid", status=401)
        return spec

    def authorize(self, spec: TokenSpec, cues: Sequence[Cue]) -> None:
        """Refuse (403) cues for channels outside the client's scope, then spend its rate (429)."""
        for cue in cues:
            if not spec.allows(cue.channel, self.aliases):
                raise CueError(
                    "forbidden",
                    f"token {spec.name!r} may not post to {cue.channel}",
                    status=403,
                    channel=cue.channel,
                )
        self.spend(spec, len(cues))

    def authorize_channel(self, spec: TokenSpec, arn: str) -> None:
        """Refuse (403) an operation on a channel outside the client's scope."""
        if not spec.allows(arn, self.aliases):
            raise CueError(
                "forbidden", f"token {spec.name!r} may not act on {arn}", status=403, channel=arn
            )

    def spend(self, spec: TokenSpec, count: int) -> None:
        """Take `count` cues from the client's budget, or refuse with client_rate_limited."""
        now = self.clock()
        burst = max(spec.rate, MIN_BURST)
        bucket = self._buckets.get(spec.name)
        if bucket is None:
            bucket = self._buckets[spec.name] = _Bucket(tokens=burst, updated=now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * spec.rate)
        bucket.updated = now
        if count > bucket.tokens:
            raise CueError(
                "client_rate_limited",
                f"token {spec.name!r} may post {spec.rate:g} cues/s",
                status=429,
                retry_after=(count - bucket.tokens) / spec.rate,
            )
        bucket.tokens -= count


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a request and what they may do: a client's token, or anyone with auth off."""

    spec: TokenSpec | None = None
    auth: Authenticator | None = None

    def authorize(self, cues: Sequence[Cue]) -> None:
        """Refuse (403) cues outside the client's channels, or (429) beyond its rate."""
        if self.auth is not None and self.spec is not None:
            self.auth.authorize(self.spec, cues)

    def authorize_channel(self, arn: str) -> None:
        """Refuse (403) an operation on a channel outside the client's scope."""
        if self.auth is not None and self.spec is not None:
            self.auth.authorize_channel(self.spec, arn)


ANYONE = Caller()  # auth off: every request may do everything


def authenticate(auth: Authenticator | None, authorization: str | None) -> Caller:
    """The caller an `Authorization` header value names (401 without a valid token); anyone
    when auth is off. Both transports call this, the WebSocket with its subprotocol's token."""
    if auth is None:
        return ANYONE
    return Caller(auth.authenticate(authorization), auth)
