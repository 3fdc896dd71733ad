"""vLLM's own `vllm serve` parser, asked from outside serving/.venv (run with its python).

    options   print operator/quantfleet/api/vllm_options.py: every option of `vllm serve`
    ask       read {"resolve": [argument, ...], "parse": [[argument, ...], ...]} on stdin and
              print as JSON: "options", that module's text; "dests", each option string's dest;
              "resolve", for each argument the dests vLLM reads it as (its own preprocessing,
              then argparse's option matching; "?ambiguous" where argparse refuses an
              abbreviation, null for an option it does not know); "parse", for each argument
              list, `vllm serve MODEL <arguments>` parsed as vLLM does, the dests whose value
              changed or the parser's error

Regenerate the options module with
`serving/.venv/bin/python serving/vllm_parser.py options > operator/quantfleet/api/vllm_options.py`.
"""

import argparse
import importlib.metadata
import json
import sys
from typing import Any

from vllm.entrypoints.cli import serve
from vllm.utils.argparse_utils import FlexibleArgumentParser

# The positional model every parse starts with, as the operator's argument list does.
MODEL = "/models/m"
MAX_LINE = 100


class RefusedError(Exception):
    """argparse's error, raised instead of printing usage and exiting."""


def refuse(message: str) -> None:
    raise RefusedError(message)


def serve_parsers() -> tuple[FlexibleArgumentParser, FlexibleArgumentParser]:
    """The `vllm` parser with its `serve` subcommand, built as vllm.entrypoints.cli.main does."""
    top = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = top.add_subparsers(required=False, dest="subparser")
    (command,) = serve.cmd_init()
    sub = command.subparser_init(subparsers)
    for parser in (top, sub):
        parser.error = refuse  # type: ignore[method-assign]
    return top, sub


def options_module(sub: FlexibleArgumentParser) -> str:
    version = importlib.metadata.version("vllm")
    actions = sorted(
        " ".join(action.option_strings) for action in sub._actions if action.option_strings
    )
    lines = [
        f'"""The options of `vllm serve` in vLLM {version} (serving/.venv), one action a line:',
        "its option strings. What spec.serving.extraArgs is checked against",
        "(quantfleet.api.vllm_args). Generated, not edited:",
        "`serving/.venv/bin/python serving/vllm_parser.py options >",
        'operator/quantfleet/api/vllm_options.py`; tests/serving fails when it drifts."""',
        "",
        f'VLLM_VERSION = "{version}"',
        "VLLM_SERVE_OPTIONS = (",
        *(f'    "{action}",' for action in actions),
        ")",
    ]
    too_long = [line for line in lines if len(line) > MAX_LINE]
    assert not too_long, too_long
    return "\n".join(lines) + "\n"


def resolve(top: FlexibleArgumentParser, sub: FlexibleArgumentParser, args: list[str]) -> Any:
    """What vLLM reads each argument as: its own preprocessing (underscores, `=`, dotted keys,
    -O, --model moved to the positional), then argparse's matching of each option it leaves."""
    processed: list[list[str]] = []
    parse_args = argparse.ArgumentParser.parse_args
    # Stop where vLLM hands its rewritten list to argparse; leave a --config file unread.
    argparse.ArgumentParser.parse_args = (  # type: ignore[method-assign]
        lambda self, args=None, namespace=None: processed.append(list(args or []))
    )
    top._pull_args_from_config = lambda args: args  # type: ignore[method-assign]
    results = []
    try:
        for arg in args:
            processed.clear()
            top.parse_args(["serve", MODEL, arg, "1"])
            (after,) = processed
            dests = [] if after[1] == MODEL else ["model_tag"]
            for token in after[2:]:
                if not token.startswith("-"):
                    continue
                try:
                    found = sub._parse_optional(token)
                except RefusedError:
                    dests.append("?ambiguous")
                    continue
                action = found[0] if isinstance(found, tuple) else None
                dests.append(action.dest if action else None)
            results.append(dests)
    finally:
        argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign]
        del top._pull_args_from_config
    return results


def parse(top: FlexibleArgumentParser, cases: list[list[str]]) -> Any:
    """`vllm serve MODEL <case>` parsed by vLLM as it is: the dests it changed, or its error."""
    default = vars(top.parse_args(["serve", MODEL]))
    results = []
    for case in cases:
        try:
            parsed = vars(top.parse_args(["serve", MODEL, *case]))
        except (RefusedError, ValueError, OSError) as error:
            results.append({"error": str(error)})
            continue
        changed = sorted(dest for dest, value in parsed.items() if default.get(dest) != value)
        results.append({"dests": changed})
    return results


def main() -> None:
    top, sub = serve_parsers()
    if sys.argv[1] == "options":
        sys.stdout.write(options_module(sub))
        return
    asked = json.load(sys.stdin)
    dests = {option: action.dest for action in sub._actions for option in action.option_strings}
    answer = {
        "options": options_module(sub),
        "dests": dests,
        "parse": parse(top, asked["parse"]),
        "resolve": resolve(top, sub, asked["resolve"]),
    }
    # The last line: vLLM logs to stdout too.
    print("\n" + json.dumps(answer))


if __name__ == "__main__":
    main()
