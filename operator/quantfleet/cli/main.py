"""The `quantfleet` command: one subcommand per module in this package."""

import argparse
import importlib
import sys

# Each module registers its own subcommand with `register(subparsers)`; imported lazily by name so
# that `quantfleet crds` does not pay for the cluster tooling.
SUBCOMMANDS = ["crds", "dev", "plan", "demo", "operator", "report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantfleet", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"quantfleet.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
