"""The `repro` command. Each command group lives in its own module and registers itself here."""

import argparse
import sys
from importlib import import_module

from repro.clip.errors import ClipError
from repro.config import ConfigError
from repro.data.errors import DataError

# Command groups, in the order `repro --help` lists them.
COMMAND_MODULES = ("repro.cli.data", "repro.cli.clip", "repro.cli.train", "repro.cli.model", "repro.cli.tables", "repro.cli.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repro",
        description="Reproduction suite for 'Image-free Domain Generalization via CLIP for 3D Hand Pose Estimation' (WACV 2023).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, ClipError, ConfigError) as err:
        print(f"repro: error: {err}", file=sys.stderr)
        return 2
