"""The `metadata-gateway` command: `serve` runs the gateway, `local-ivs` runs the local IVS."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import metadata_gateway.local_ivs.cli as local_ivs_cli
from metadata_gateway.config import ConfigError, load_settings
from metadata_gateway.ingress.auth import hash_token, new_token
from metadata_gateway.log import setup_logging


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    # Every default is None so that an unset flag leaves the TOML file or MG_* variable in force.
    add = parser.add_argument
    add("--config", metavar="FILE", help="TOML settings file (also MG_CONFIG)")
    add("--host", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, help="port to listen on (default 8080)")
    add("--region", help="AWS region of the IVS client (default us-west-2)")
    add("--endpoint-url", help="IVS endpoint, for a local or private IVS")
    add("--channel-rate", type=int, help="PutMetadata calls/s per channel (default 5, IVS's max)")
    add("--account-rate", type=int, help="PutMetadata calls/s per account (default 155, IVS's max)")
    add("--local-ivs", action="store_const", const=True, help="run a local IVS with a demo channel")
    add("--local-ivs-port", type=int, help="port of the local IVS (default: any free port)")
    add(
        "--playback",
        action="store_const",
        const=True,
        help="with --local-ivs: live HLS at each channel's playbackUrl, for /viewer (needs ffmpeg)",
    )
    add("--drain-timeout", type=float, help="seconds to send queued cues on SIGTERM (default 10)")
    add("--channel-max-cues", type=int, help="queued cues per channel (default 1000)")
    add("--channel-max-bytes", type=int, help="queued bytes per channel (default 262144)")
    add("--total-max-cues", type=int, help="queued cues in the process (default 100000)")
    add("--total-max-bytes", type=int, help="queued bytes in the process (default 64 MiB)")
    add("--max-body-bytes", type=int, help="largest request body (default 262144)")
    add(
        "--payload-encoding",
        choices=("json", "deflate"),
        help="payloads as plain JSON (default) or deflated for the gateway's decoders",
    )
    add("--max-cue-bytes", type=int, help="largest cue envelope, sent in parts (default 16384)")
    add(
        "--events-queue-url",
        help="SQS queue of IVS stream events from an EventBridge rule (MG_EVENTS_QUEUE_URL)",
    )
    add("--sqs-endpoint-url", help="SQS endpoint for --events-queue-url, e.g. a local one")
    add("--events-probe-interval", type=float, help="offline probe while events flow (30 s)")
    add("--offline-probe-interval", type=float, help="probe of offline channels (default 3 s)")
    add("--redis-url", help="Redis for distributed mode, e.g. redis://host:6379/0 (MG_REDIS_URL)")
    add(
        "--redis-wait-replicas",
        type=int,
        help="Redis replicas that must have a cue before it is acknowledged (default 0)",
    )
    add("--replica-id", help="this replica's unique name in Redis (MG_REPLICA_ID; default: host)")
    add("--log-level", choices=("debug", "info", "warning", "error"), help="default info")
    add("--tokens-file", metavar="FILE", help="TOML file of [[tokens]] (also MG_TOKENS_FILE)")
    add(
        "--insecure-no-auth",
        action="store_const",
        const=True,
        help="accept cues without tokens (anyone who can reach the port can post)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    from metadata_gateway.running.server import run

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "run")}
    try:
        settings = load_settings(flags=flags)
        if not settings.tokens and not (settings.local_ivs or settings.insecure_no_auth):
            raise ConfigError(
                "no API tokens are configured: add [[tokens]] (see `metadata-gateway token`), "
                "or pass --insecure-no-auth to accept cues from anyone who can connect"
            )
    except ConfigError as exc:
        print(f"metadata-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    return run(settings)


def _run_token(args: argparse.Namespace) -> int:
    token = new_token()
    channels = ", ".join(f'"{c}"' for c in args.channels)
    print(f"token (give it to the client; it is shown once and stored nowhere):\n  {token}\n")
    print("add to the gateway's config or tokens file:\n")
    print("[[tokens]]")
    print(f'name = "{args.name}"')
    print(f'sha256 = "{hash_token(token)}"')
    print(f"channels = [{channels}]")
    print(f"rate = {args.rate:g}  # cues per second")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="metadata-gateway",
        description="Timed metadata into Amazon IVS live streams, within IVS's limits.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gateway")
    _add_serve_arguments(serve)
    serve.set_defaults(run=_run_serve)
    token = commands.add_parser("token", help="print a new API token and its config entry")
    token.add_argument("--name", default="client", help="the client's name (default client)")
    token.add_argument(
        "--channels",
        nargs="+",
        default=["*"],
        metavar="CHANNEL",
        help="aliases or ARN patterns it may post to (default: all)",
    )
    token.add_argument("--rate", type=float, default=100.0, help="cues per second (default 100)")
    token.set_defaults(run=_run_token)
    local = commands.add_parser(
        "local-ivs", help="run a local Amazon IVS (the same wire API and limits) on loopback"
    )
    local_ivs_cli.add_arguments(local)
    local.set_defaults(run=local_ivs_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code
