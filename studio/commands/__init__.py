"""Subcommands of the `studio` CLI, one module each; every module exposes add_parser(subparsers)."""
from studio.commands import (bundle_cmd, demo_cmd, devices_cmd, gui_cmd, inspect_cmd, optimize_cmd, samples_cmd,
                             sweep_cmd)

COMMANDS = [inspect_cmd, optimize_cmd, sweep_cmd, bundle_cmd, devices_cmd, samples_cmd, demo_cmd, gui_cmd]
