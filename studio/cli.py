"""The `studio` command: the same core as the window, driven from a terminal or a CI script.

Imports stay lazy: `studio --help` and `studio inspect` of ONNX/TFLite never load torch or TensorFlow."""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from studio import __version__
from studio.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studio", description="Package trained models for edge devices: inspect, optimize, sweep, export,"
                                   " deploy.")
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _crash_log(exc: BaseException) -> str:
    from studio.core.paths import cache_dir, ensure

    path = ensure(cache_dir()) / "crash.log"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(traceback.format_exception(exc)))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    from studio.core.errors import Cancelled, StudioError

    try:
        return int(args.run(args) or 0)
    except Cancelled:
        print("studio: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nstudio: interrupted", file=sys.stderr)
        return 130
    except StudioError as exc:
        print(f"studio: error: {exc.one_line()}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback; it goes to the crash log
        print(f"studio: internal error: {type(exc).__name__}: {exc} (details in {_crash_log(exc)})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
