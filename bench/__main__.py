"""`python -m bench [--quick] [--json FILE]`: run the benchmark, print the table, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson

from bench import runner
from bench.profile import FULL, QUICK, SMOKE
from bench.report import render

PROFILES = {"full": FULL, "quick": QUICK, "smoke": SMOKE}
INTERRUPTED = 130  # the shell's code for a run stopped by a signal


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Start a local IVS and the gateway on 127.0.0.1, drive them, report figures.",
    )
    parser.add_argument("--quick", action="store_true", help="the short profile (< 90 s)")
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), help="full (default), quick, or smoke (tests)"
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        choices=list(runner.SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--auth",
        choices=("token", "off"),
        default="token",
        help="gateway auth: a bearer token on every request as deployed (default), or off",
    )
    parser.add_argument(
        "--logs", metavar="DIR", help="keep the child processes' logs in DIR (default: removed)"
    )
    return parser


async def _cancellable(run: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run `run`, cancelling it on SIGTERM as on Ctrl-C, so that it stops its children."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit code is 0 even when targets are missed (they are reported)."""
    args = build_parser().parse_args(argv)
    profile = PROFILES[args.profile or ("quick" if args.quick else "full")]
    log_dir = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        document = asyncio.run(
            _cancellable(
                runner.run(
                    profile,
                    only=args.only or (),
                    log_dir=log_dir,
                    auth=args.auth == "token",
                    command=command,
                )
            )
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"[bench] interrupted; child logs kept in {log_dir}", file=sys.stderr)
        return INTERRUPTED
    except BaseException:
        print(f"[bench] failed; child logs kept in {log_dir}", file=sys.stderr)
        raise
    if not args.logs:
        shutil.rmtree(log_dir, ignore_errors=True)
    print(render(document))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
