"""`studio gui` (the window) and `studio flash` (the technician's flash screen)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("gui", help="open the studio window (the last project, a project file or a model)")
    p.add_argument("path", nargs="?", metavar="PROJECT|MODEL",
                   help="a .studio.json project, or a model to start a new session with")
    p.set_defaults(run=run_gui)
    p = sub.add_parser("flash", help="open the flash screen: pick a bundle, pick devices, flash")
    p.add_argument("bundle", nargs="?", help="bundle to open (it is verified at once)")
    p.add_argument("--pubkey", metavar="K.pub", help="publisher key the bundle's signature must match")
    p.set_defaults(run=run_flash)


def run_gui(args) -> int:
    from studio.gui.app import run

    return run(args.path)


def run_flash(args) -> int:
    from studio.gui.app import run_flash as flash

    return flash(args.bundle, args.pubkey)
