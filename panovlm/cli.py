"""The `panovlm` command: the training side's tools, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys

from panovlm import __version__

# Each module has `register(commands)`, which adds its subparser with `run=` set.
COMMAND_MODULES = (
    "panovlm.commands.decode",
    "panovlm.commands.train",
    "panovlm.commands.clean",
    "panovlm.commands.disk",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="panovlm", description="Training-side tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
