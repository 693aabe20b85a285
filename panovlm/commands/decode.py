"""`panovlm decode IMAGE...`: load images exactly as training does and print each verdict."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "decode", help="load images exactly as training does and print each verdict"
    )
    parser.add_argument("paths", nargs="+", metavar="IMAGE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sanitize.check import ImageDamaged, decode_file

    failed = 0
    for path in args.paths:
        try:
            image = decode_file(path)
        except ImageDamaged as exc:
            failed += 1
            print(f"{path}\tdamaged\t{exc.verdict.error_type}\t{exc.verdict.error}")
        else:
            print(f"{path}\tok\t{image.width}x{image.height}")
    return 1 if failed else 0
