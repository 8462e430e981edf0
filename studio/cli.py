"""The `studio` command: the same core as the window, driven from a terminal or a CI script.

Imports stay lazy: `studio --help` and `studio inspect` of ONNX/TFLite never load torch or TensorFlow."""
from __future__ import annotations

import argparse

from studio import __version__
from studio.commands import (
    bundle_cmd,
    debug_quant_cmd,
    demo_cmd,
    devices_cmd,
    diff_cmd,
    gui_cmd,
    inspect_cmd,
    monitor_cmd,
    optimize_cmd,
    profile_cmd,
    samples_cmd,
    sweep_cmd,
)
from studio.commands.dispatch import CommandParser, dispatch

COMMANDS = [inspect_cmd, optimize_cmd, sweep_cmd, debug_quant_cmd, diff_cmd, profile_cmd, bundle_cmd, devices_cmd,
            monitor_cmd, samples_cmd, demo_cmd, gui_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="studio", description="Package trained models for edge devices: inspect, optimize, sweep, export,"
                                   " deploy.")
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
