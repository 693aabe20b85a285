"""The `panovlm` command: the training side's tools."""

from __future__ import annotations

import argparse
import sys

from panovlm import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="panovlm", description="Training-side tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser(
        "decode", help="load images exactly as training does and print each verdict"
    )
    decode.add_argument("paths", nargs="+", metavar="IMAGE")
    args = parser.parse_args(argv)
    return _decode(args.paths)


def _decode(paths: list[str]) -> int:
    from sanitize.check import ImageDamaged, decode_file

    failed = 0
    for path in paths:
        try:
            image = decode_file(path)
        except ImageDamaged as exc:
            failed += 1
            print(f"{path}\tdamaged\t{exc.verdict.error_type}\t{exc.verdict.error}")
        else:
            print(f"{path}\tok\t{image.width}x{image.height}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
