"""What spec.serving.extraArgs may not pass to `vllm serve`: a flag the operator owns or one that
carries a secret, in any spelling vLLM's parser reads as it (issue 32)."""

import re
from collections.abc import Iterable

from quantfleet.api.common import Rule
from quantfleet.api.vllm_options import VLLM_SERVE_OPTIONS

# vLLM flags the operator sets itself (builders.serving.vllm_args) or that would undo what it
# sets, each with what to use instead: in extraArgs they would contradict the plan, rename what
# clients ask for, or point the probes and the Service at nothing. Keyed by one option string of
# the flag; its aliases (-tp) come from VLLM_SERVE_OPTIONS.
OWNED_VLLM_FLAGS = {
    "--model": "the operator serves the promoted checkpoint",
    "--config": "a config file could set any flag the operator owns; give its flags here instead",
    "--port": "the operator serves on port 8000, where its probes and Service look",
    "--host": "the server listens on every address, where its probes and Service look",
    "--uds": "the server listens on TCP port 8000, where its probes and Service look",
    "--headless": "the server answers HTTP on port 8000, where its probes and Service look",
    "--grpc": "the server answers HTTP on port 8000, where its probes and Service look",
    "--served-model-name": "the model is served under the QuantizedModel's name",
    "--tensor-parallel-size": "use spec.serving.gpusPerReplica",
    # Each multiplies the GPUs a replica needs beyond the plan's (pipeline x tensor x prefill
    # context x data parallel sizes, vLLM's ParallelConfig.world_size_across_dp).
    "--pipeline-parallel-size": "a replica's GPUs (spec.serving.gpusPerReplica) are all tensor "
    "parallel",
    "--prefill-context-parallel-size": "a replica's GPUs (spec.serving.gpusPerReplica) are all "
    "tensor parallel",
    "--data-parallel-size": "use spec.serving.replicas",
    "--max-model-len": "use spec.serving.maxModelLength",
    "--limit-mm-per-prompt": "use spec.serving.imagesPerPrompt",
}

# vLLM flags whose value is a secret: in extraArgs it would be written in plain text into the
# Deployment's pod template, for anyone who can read Deployments. tests/serving holds every vLLM
# option named like a token, key or password to this list or to its reason for not being one.
SECRET_VLLM_FLAGS = {
    "--hf-token": "give the hub token by reference, in spec.source.tokenSecretRef",
    "--api-key": "the serving API takes no key by reference yet; put authentication in front "
    "of the Service",
}


def option_strings(flag: str) -> tuple[str, ...]:
    """`flag` and its aliases: the option strings of its action in vLLM's parser."""
    (action,) = (line.split() for line in VLLM_SERVE_OPTIONS if flag in line.split())
    return tuple(action)


def _abbreviations(option: str) -> str:
    """A regex for `option` and each abbreviation of it argparse reads (at least one letter
    after the dashes); in a long option `_` may stand for `-`, as vLLM reads it."""
    dashes = "--" if option.startswith("--") else "-"
    name = [("[-_]" if char == "-" and dashes == "--" else char) for char in option[len(dashes) :]]
    nested = ""
    for char in reversed(name[1:]):
        nested = f"({char}{nested})?"
    return f"{dashes}{name[0]}{nested}"


def spellings_pattern(options: Iterable[str], end: str = "$") -> str:
    """A regex for every argument vLLM reads as one of `options`: the option or an abbreviation
    of it (argparse's allow_abbrev; a prefix shared with other options is one argparse refuses
    anyway), `_` for `-`, then nothing, `=value` or `.key` (vLLM's dotted sub-keys). `end` is
    the anchor: RE2 (CEL) reads `$` as the end of the text, Python's re needs `\\Z` for that.

    No other option of vLLM is an abbreviation of one of these (argparse would take it as
    itself), nor is one of these a two-character short option (-x4 would be -x 4):
    tests/serving holds this to vLLM's parser."""
    options = list(options)
    assert all(re.fullmatch(r"--?[a-z0-9][-a-z0-9]+", option) for option in options), options
    return f"^({'|'.join(map(_abbreviations, options))})([.=]|{end})"


def flag_rule(flag: str, instead: str) -> Rule:
    """extraArgs may not hold `flag` in any spelling vLLM reads as it."""
    options = option_strings(flag)
    spelled = re.compile(spellings_pattern(options, end=r"\Z"))
    aliases = "".join(f"{alias}, " for alias in options if alias != flag)
    return Rule(
        "!has(self.extraArgs) || "
        f"!self.extraArgs.exists(a, a.matches('{spellings_pattern(options)}'))",
        lambda serving: not any(spelled.match(arg) for arg in serving.extra_args),
        f"may not set {flag}, in any spelling vLLM reads as it ({aliases}an abbreviation, _ for "
        f"-, =value, .key): {instead}",
        ".extraArgs",
    )


def extra_args_rules() -> tuple[Rule, ...]:
    """One rule for each flag extraArgs may not set."""
    return tuple(
        flag_rule(flag, instead) for flag, instead in (OWNED_VLLM_FLAGS | SECRET_VLLM_FLAGS).items()
    )
