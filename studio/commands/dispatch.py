"""Running a parsed subcommand the way every Studio command line does: errors become one line on stderr and an exit
code (1 for bad input, 130 for cancel, 2 for a bug, whose traceback goes to the crash log), never a traceback."""
from __future__ import annotations

import argparse
import os
import sys


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None, default=None) -> int:
    """Run the chosen subcommand; errors become one line on stderr and an exit code, never a traceback."""
    args = parser.parse_args(argv)
    if not getattr(args, "run", None) and default is not None:
        args.run = default
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    from studio.core.base.errors import Cancelled, StudioError, crash_log

    try:
        return int(args.run(args) or 0)
    except Cancelled:
        print(f"{parser.prog}: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except StudioError as exc:
        print(f"{parser.prog}: error: {exc.one_line()}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback; it goes to the crash log
        print(f"{parser.prog}: internal error: {type(exc).__name__}: {exc} (details in {crash_log(exc)})",
              file=sys.stderr)
        return 2
