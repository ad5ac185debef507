"""`metadata-gateway local-ivs`: run the local IVS until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
from collections.abc import Callable

from metadata_gateway.local_ivs.accounts import parse_account_option
from metadata_gateway.local_ivs.playback import PlaybackUnavailable
from metadata_gateway.local_ivs.server import LocalIvs
from metadata_gateway.local_ivs.settings import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_ACCOUNT_RATE,
    DEFAULT_CHANNEL_RATE,
    DEFAULT_HOST,
    DEFAULT_MAX_CHANNELS,
    DEFAULT_MAX_EVENTS,
    DEFAULT_PORT,
    DEFAULT_REGION,
    LocalIvsSettings,
)

logger = logging.getLogger("metadata_gateway.local_ivs")

ENV_PREFIX = "MG_LOCAL_IVS_"


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, not {value}")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _option(
    parser: argparse.ArgumentParser,
    name: str,
    default: object,
    kind: Callable[[str], object],
    help_text: str,
) -> None:
    env = ENV_PREFIX + name.upper().replace("-", "_")
    # argparse runs `kind` over a string default too, so a bad environment value is reported
    # like a bad flag.
    parser.add_argument(
        f"--{name}",
        type=kind,
        default=os.environ.get(env, str(default)),
        help=f"{help_text} (env {env}; default %(default)s)",
    )


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, not {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the local IVS's options (each also read from `MG_LOCAL_IVS_<NAME>`) to `parser`."""
    _option(parser, "host", DEFAULT_HOST, str, "address to listen on")
    _option(parser, "port", DEFAULT_PORT, _port, "port to listen on, 0 for any free port")
    _option(parser, "region", DEFAULT_REGION, str, "region named in ARNs")
    _option(parser, "account-id", DEFAULT_ACCOUNT_ID, str, "account named in ARNs")
    _option(
        parser,
        "channel-rate",
        DEFAULT_CHANNEL_RATE,
        _at_least_one,
        "PutMetadata calls/s per channel",
    )
    _option(
        parser,
        "account-rate",
        DEFAULT_ACCOUNT_RATE,
        _at_least_one,
        "PutMetadata calls/s per account",
    )
    _option(parser, "max-events", DEFAULT_MAX_EVENTS, _at_least_one, "accepted payloads kept")
    _option(parser, "max-channels", DEFAULT_MAX_CHANNELS, _at_least_one, "channel quota")
    env = ENV_PREFIX + "PLAYBACK"
    # `--playback` alone turns it on; like the other options, a bad MG_LOCAL_IVS_PLAYBACK is
    # reported by argparse, which runs `_flag` over the string default.
    parser.add_argument(
        "--playback",
        nargs="?",
        const=True,
        type=_flag,
        default=os.environ.get(env, "false"),
        metavar="BOOL",
        help=f"serve live HLS with timed ID3 at each channel's playbackUrl; needs ffmpeg"
        f" (env {env}; default off)",
    )
    _add_account_and_event_arguments(parser)


def _account(text: str) -> tuple[str, str]:
    try:
        return parse_account_option(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_account_and_event_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--account",
        action="append",
        type=_account,
        default=[],
        metavar="KEY_ID=ACCOUNT",
        help="requests signed with access key KEY_ID act in ACCOUNT (repeatable); "
        "other keys act in --account-id",
    )
    for name, help_text in (
        ("events-queue-url", "SQS queue to send EventBridge-shaped IVS Stream State Change events"),
        ("sqs-endpoint-url", "SQS endpoint for --events-queue-url, e.g. a local moto_server"),
    ):
        env = ENV_PREFIX + name.upper().replace("-", "_")
        parser.add_argument(
            f"--{name}", default=os.environ.get(env) or None, help=f"{help_text} (env {env})"
        )


def settings_from(args: argparse.Namespace) -> LocalIvsSettings:
    """Return the settings the parsed arguments name (ValueError if they are inconsistent)."""
    return LocalIvsSettings(
        host=args.host,
        port=args.port,
        region=args.region,
        account_id=args.account_id,
        channel_rate=args.channel_rate,
        account_rate=args.account_rate,
        max_events=args.max_events,
        max_channels=args.max_channels,
        playback=args.playback,
        accounts=tuple(args.account),
        events_queue_url=args.events_queue_url,
        sqs_endpoint_url=args.sqs_endpoint_url,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(settings: LocalIvsSettings) -> None:
    """Run the local IVS until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if not _is_loopback(settings.host):
        logger.warning(
            "listening on %s: the local IVS accepts any credentials and its /_local/ admin API "
            "has no authentication; keep it on loopback",
            settings.host,
        )
    try:
        async with LocalIvs(settings) as ivs:
            logger.info(
                "local IVS listening on %s (region %s, account %s)",
                ivs.url,
                settings.region,
                settings.account_id,
            )
            if settings.playback:
                logger.info(
                    "playback on: %s/_local/playback/<channel id>.m3u8 serves each live channel",
                    ivs.url,
                )
            await stop.wait()
            logger.info("local IVS stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Run the local IVS the arguments describe; returns the process exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        settings = settings_from(args)
    except ValueError as error:
        logger.error("invalid settings: %s", error)
        return 2
    try:
        asyncio.run(serve(settings))
    except PlaybackUnavailable as error:
        logger.error("%s", error)
        return 2
    except OSError as error:
        logger.error("cannot listen on %s:%s: %s", settings.host, settings.port, error)
        return 1
    except KeyboardInterrupt:
        # A Ctrl-C before the signal handlers were installed: still a requested, clean stop.
        return 0
    return 0
