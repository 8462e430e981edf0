"""Running a parsed subcommand the way every Studio command line does: errors become one line on stderr and an exit
code (1 for bad input, bad arguments included, 130 for cancel, 2 for a bug, whose traceback goes to the crash log),
never a traceback or a usage dump."""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn


class CommandParser(argparse.ArgumentParser):
    """argparse, except that a bad argument is bad input like any other: one line naming the command, and exit 1
    (argparse itself prints the whole usage text and exits 2). `--help` is unchanged. Subparsers inherit the class."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_defaults(command_parser=self)  # the innermost command wins, to name it in "unrecognized arguments"

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(1, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None, default=None) -> int:
    """Run the chosen subcommand; errors become one line on stderr and an exit code, never a traceback."""
    args, extra = parser.parse_known_args(argv)
    command = getattr(args, "command_parser", parser)
    if extra:
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "run", None) and default is not None:
        args.run = default
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    from studio.core.base.errors import Cancelled, StudioError, crash_log, short, unexpected

    try:
        return int(args.run(args) or 0)
    except Cancelled:
        print(f"{command.prog}: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\n{command.prog}: interrupted", file=sys.stderr)
        return 130
    except StudioError as exc:
        print(f"{command.prog}: error: {exc.one_line()}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback; it goes to the crash log
        print(f"{command.prog}: {unexpected(short(exc, 300), crash_log(exc))}", file=sys.stderr)
        return 2
