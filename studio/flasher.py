"""`studio-flash`: the field technician's flasher. The flash screen, bundle verification and SSH push only; it
imports neither torch nor TensorFlow (tests/installer enforce it), so the standalone build stays small.

    studio-flash                      open the flash screen
    studio-flash BUNDLE               open it with this bundle (verified at once)
    studio-flash verify BUNDLE        check a bundle (exit 1 with the reason)
    studio-flash push BUNDLE --device NAME[,NAME]   and status, rollback, devices ...: as in `studio`
"""
from __future__ import annotations

import argparse
import sys

from studio import __version__
from studio.commands import bundle_cmd, devices_cmd
from studio.commands.dispatch import CommandParser, dispatch


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="studio-flash", description="Flash model bundles onto devices.")
    parser.add_argument("--version", action="version", version=f"studio-flash {__version__}")
    parser.add_argument("--pubkey", metavar="K.pub", help="publisher key bundles must be signed with (flash screen)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bundle_cmd.add_verify_parser(sub)
    devices_cmd.add_parser(sub)
    parser.set_defaults(commands=set(sub.choices))
    return parser


def open_screen(args) -> int:
    from studio.gui.app import run_flash

    return run_flash(getattr(args, "bundle_path", None), args.pubkey)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = parser.get_default("commands")
    bundle = None
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        bundle = argv.pop(0)  # `studio-flash BUNDLE`: open the screen with it
    parser.set_defaults(bundle_path=bundle)
    return dispatch(parser, argv, default=open_screen)


if __name__ == "__main__":
    sys.exit(main())
