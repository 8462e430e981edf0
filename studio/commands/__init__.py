"""Subcommands of the `studio` CLI, one module each; every module exposes add_parser(subparsers)."""
