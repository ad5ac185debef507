"""Settings: one frozen dataclass, built from defaults, a TOML file, `MG_*` variables and flags."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from metadata_gateway.core.arn import parse_channel_arn
from metadata_gateway.core.cues import DEFAULT_MAX_CUE_BYTES, MAX_CUE_BYTES, resolve_channel
from metadata_gateway.core.errors import CueError
from metadata_gateway.core.pending import Encoding
from metadata_gateway.ingress.auth import TokenSpec
from metadata_gateway.sending.accounts import AccountCredentials, parse_accounts

IVS_CHANNEL_RATE = 5  # PutMetadata calls/s per channel, an IVS quota that cannot be raised
IVS_ACCOUNT_RATE = 155  # PutMetadata calls/s per account and region, likewise fixed
ENV_PREFIX = "MG_"
_REPLICA_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class ConfigError(ValueError):
    """A setting that cannot work, with a message that says which and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway can be told; see README.md for each setting."""

    host: str = "127.0.0.1"
    port: int = 8080
    region: str = "us-west-2"
    endpoint_url: str | None = None
    channel_rate: int = IVS_CHANNEL_RATE
    account_rate: int = IVS_ACCOUNT_RATE
    local_ivs: bool = False
    local_ivs_port: int = 0
    playback: bool = False
    channels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    payload_encoding: str = "json"  # json or deflate (docs/wire-format.md)
    # Per channel (alias or ARN): {"payload_encoding": ...}; TOML [channel_options."<name>"].
    channel_options: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    max_cue_bytes: int = DEFAULT_MAX_CUE_BYTES
    channel_max_cues: int = 1_000
    channel_max_bytes: int = 256 * 1024
    total_max_cues: int = 100_000
    total_max_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 256 * 1024
    drain_timeout: float = 10.0
    keepalive_timeout: float = 15.0  # also bounds how long a client may take to send headers
    body_timeout: float = 10.0
    ws_max_in_flight: int = 1_000
    ws_heartbeat: float = 20.0
    ws_outbound_max_bytes: int = 1024 * 1024
    ivs_timeout: float = 5.0
    offline_probe_interval: float = 3.0
    window_margin: float = 0.002
    # After a restart the previous process's calls of the last second still count at IVS.
    startup_hold: float = 1.0
    log_level: str = "info"
    tokens: tuple[TokenSpec, ...] = ()
    regions: tuple[str, ...] = ()  # regions cues may name; empty: those botocore knows for IVS

    insecure_no_auth: bool = False
    redis_url: str | None = None  # set: distributed mode (docs/scaling.md)
    redis_partitions: int = 16  # streams the channels are hashed over; fixed for a deployment
    # IVS stream events (README "Stream events"): the SQS queue an EventBridge rule fills.
    events_queue_url: str | None = None
    sqs_endpoint_url: str | None = None  # a local SQS server, for development
    events_probe_interval: float = 30.0  # offline channels' probe while events flow
    # [accounts."<12-digit id>"]: whose credentials call the channels of that account.
    accounts: Mapping[str, AccountCredentials] = field(default_factory=lambda: MappingProxyType({}))
    # Replicas that must have a cue before it is answered 202 (Redis WAIT); 1 with Sentinel, so
    # that a failover keeps every acknowledged cue (docs/scaling.md).
    redis_wait_replicas: int = 0
    # This replica's name in Redis (leases, heartbeats, requests); the pod name in Kubernetes.
    # Unset: the host name and a random suffix. Two live replicas must never share one.
    replica_id: str | None = None

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, not {self.port}")
        if not 0 <= self.local_ivs_port <= 65535:
            raise ConfigError(f"local_ivs_port must be 0-65535, not {self.local_ivs_port}")
        if self.playback and not self.local_ivs:
            raise ConfigError("playback needs local_ivs: the local IVS is what plays the channels")
        if not 1 <= self.channel_rate <= IVS_CHANNEL_RATE:
            raise ConfigError(
                f"channel_rate must be 1-{IVS_CHANNEL_RATE} (IVS allows no more), "
                f"not {self.channel_rate}"
            )
        if not 1 <= self.account_rate <= IVS_ACCOUNT_RATE:
            raise ConfigError(
                f"account_rate must be 1-{IVS_ACCOUNT_RATE} (IVS allows no more), "
                f"not {self.account_rate}"
            )
        for name in (
            "channel_max_cues",
            "channel_max_bytes",
            "total_max_cues",
            "total_max_bytes",
            "max_body_bytes",
            "ws_max_in_flight",
            "ws_outbound_max_bytes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in (
            "drain_timeout",
            "ivs_timeout",
            "offline_probe_interval",
            "events_probe_interval",
            "ws_heartbeat",
            "keepalive_timeout",
            "body_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be greater than 0")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://", "redis+sentinel://")
        ):
            raise ConfigError(
                "redis_url must start with redis://, rediss://, unix:// or redis+sentinel://"
            )
        if self.sqs_endpoint_url is not None and self.events_queue_url is None:
            raise ConfigError("sqs_endpoint_url is used only with events_queue_url")
        if self.events_queue_url is not None and not self.events_queue_url.startswith(
            ("https://", "http://")
        ):
            raise ConfigError("events_queue_url must be the queue's URL (https://sqs...)")
        if not 1 <= self.redis_partitions <= 1024:
            raise ConfigError(f"redis_partitions must be 1-1024, not {self.redis_partitions}")
        if not 0 <= self.redis_wait_replicas <= 16:
            raise ConfigError(f"redis_wait_replicas must be 0-16, not {self.redis_wait_replicas}")
        if self.replica_id is not None and not _REPLICA_ID.fullmatch(self.replica_id):
            raise ConfigError(
                f"replica_id must be 1-64 letters, digits, '.', '_' or '-', not {self.replica_id!r}"
            )
        if self.window_margin < 0:
            raise ConfigError("window_margin must not be negative")
        if not 0 <= self.startup_hold <= 60:
            raise ConfigError("startup_hold must be 0-60 seconds")
        encodings = ", ".join(e.value for e in Encoding)
        if self.payload_encoding not in _ENCODINGS:
            raise ConfigError(
                f"payload_encoding must be one of {encodings}, not {self.payload_encoding!r}"
            )
        if not 1024 <= self.max_cue_bytes <= MAX_CUE_BYTES:
            raise ConfigError(
                f"max_cue_bytes must be 1024-{MAX_CUE_BYTES}, not {self.max_cue_bytes}"
            )
        for name, options in self.channel_options.items():
            if self.resolve(name) is None:
                raise ConfigError(
                    f"channel_options {name!r}: not a configured alias nor a channel ARN"
                )
            unknown = options.keys() - {"payload_encoding"}
            if unknown:
                raise ConfigError(
                    f"channel_options {name!r}: unknown option {sorted(unknown)[0]!r}"
                )
            if options.get("payload_encoding", "json") not in _ENCODINGS:
                raise ConfigError(
                    f"channel_options {name!r}: payload_encoding must be one of {encodings}"
                )

        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level must be debug, info, warning or error")
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ConfigError("token names must be unique")
        for token in self.tokens:
            if not _SHA256.fullmatch(token.sha256):
                raise ConfigError(f"token {token.name!r}: sha256 must be 64 hex digits")
            if token.rate <= 0:
                raise ConfigError(f"token {token.name!r}: rate must be greater than 0")
            if not token.channels:
                raise ConfigError(f"token {token.name!r}: channels must name at least one")
        for alias, arn in self.channels.items():
            if parse_channel_arn(arn) is None:
                raise ConfigError(f"channel alias {alias!r}: {arn!r} is not an IVS channel ARN")
            if alias.startswith("arn:") or not alias:
                raise ConfigError(f"channel alias {alias!r} must be a name, not an ARN")

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def encoding(self, arn: str) -> Encoding:
        """The payload encoding of the channel with this ARN: its own option, or the default."""
        for name, options in self.channel_options.items():
            if "payload_encoding" in options and self.resolve(name) == arn:
                return Encoding(options["payload_encoding"])
        return Encoding(self.payload_encoding)

    def resolve(self, channel: str) -> str | None:
        """The ARN an alias or ARN names, or None if it names none."""
        try:
            return resolve_channel(channel, self.channels)
        except CueError:
            return None


_FIELDS = {f.name: f for f in fields(Settings)}
_ENCODINGS = frozenset(e.value for e in Encoding)


def load_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Merge defaults < TOML file < `MG_*` environment < command-line flags, then validate."""
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    path = flags.pop("config", None) or config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    tokens_file = flags.pop("tokens_file", None) or environ.get(f"{ENV_PREFIX}TOKENS_FILE")
    values: dict[str, Any] = {}
    if path:
        values.update(_from_toml(Path(path)))
    if tokens_file:
        # Kept apart so that a secret store can mount it without the rest of the settings.
        extra = _from_toml(Path(tokens_file))
        if extra.keys() - {"tokens"}:
            raise ConfigError(f"tokens file {tokens_file} may only hold [[tokens]]")
        values["tokens"] = (*values.get("tokens", ()), *extra.get("tokens", ()))
    for name in _FIELDS:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and name not in ("channels", "tokens", "channel_options", "accounts"):
            values[name] = _convert(name, raw, source=f"{ENV_PREFIX}{name.upper()}")
    values.update({k: v for k, v in flags.items() if k in _FIELDS})
    if "channels" in values:
        values["channels"] = MappingProxyType(dict(values["channels"]))
    if "channel_options" in values:
        values["channel_options"] = MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in values["channel_options"].items()}
        )
    try:
        return Settings(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        if name == "channels":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f'config file {path}: [channels] maps alias = "ARN"')
            values[name] = value
        elif name == "channel_options":
            if not isinstance(value, dict) or not all(
                isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
                for v in value.values()
            ):
                raise ConfigError(
                    f'config file {path}: [channel_options."<alias or ARN>"] holds '
                    'payload_encoding = "json" | "deflate"'
                )
            values[name] = value
        elif name == "tokens":
            values[name] = tuple(_token(entry, path) for entry in _as_list(value, path))
        elif name == "accounts":
            try:
                values[name] = MappingProxyType(parse_accounts(value))
            except ValueError as exc:
                raise ConfigError(f"config file {path}: {exc}") from None
        elif name == "regions":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"config file {path}: regions must be a list of region names")
            values[name] = tuple(value)
        else:
            values[name] = _check_type(name, value, source=f"config file {path}")
    return values


def _convert(name: str, raw: str, *, source: str) -> Any:
    kind = _FIELDS[name].type
    if kind == "tuple[str, ...]":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(f"{source}: {raw!r} is not a valid {kind}") from None
    return raw


def _check_type(name: str, value: object, *, source: str) -> object:
    kind = _FIELDS[name].type
    expected: tuple[type, ...] = {
        "int": (int,),
        "float": (int, float),
        "bool": (bool,),
    }.get(str(kind), (str,))
    if (isinstance(value, bool) and kind != "bool") or not isinstance(value, expected):
        raise ConfigError(f"{source}: {name} must be a {kind}")
    if kind == "float" and isinstance(value, int | float):
        return float(value)
    return value


def _as_list(value: object, path: Path) -> list[object]:
    if not isinstance(value, list):
        raise ConfigError(f"config file {path}: tokens must be [[tokens]] tables")
    return value


def _token(entry: object, path: Path) -> TokenSpec:
    where = f"config file {path}: [[tokens]]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} entries must be tables")
    unknown = entry.keys() - {"name", "sha256", "channels", "rate"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name, digest = entry.get("name"), entry.get("sha256")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: every token needs a name")
    if not isinstance(digest, str):
        raise ConfigError(f"{where} {name!r}: sha256 is required (never the token itself)")
    channels = entry.get("channels", ["*"])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise ConfigError(f"{where} {name!r}: channels must be a list of aliases or ARN patterns")
    rate = entry.get("rate", 100.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ConfigError(f"{where} {name!r}: rate must be a number of cues per second")
    return TokenSpec(name=name, sha256=digest, channels=tuple(channels), rate=float(rate))
