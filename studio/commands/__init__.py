"""Subcommands of the `studio` CLI, one module each; every module exposes add_parser(subparsers)."""
from studio.commands import inspect_cmd

COMMANDS = [inspect_cmd]
