"""spec.serving.extraArgs held to vLLM's own parser (serving/.venv; no server starts, one
subprocess asks serving/vllm_parser.py): each spelling refused is one vLLM reads as a flag that
extraArgs may not set, each spelling vLLM reads as such a flag is refused, each argument allowed
is one vLLM reads as another flag, and the committed option list is vLLM's."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from factories.vllm import SERVING_PYTHON
from quantfleet.api.quantizedmodel import Serving
from quantfleet.api.vllm_args import OWNED_VLLM_FLAGS, SECRET_VLLM_FLAGS
from quantfleet.api.vllm_options import VLLM_SERVE_OPTIONS

REPO = Path(__file__).resolve().parents[2]
PARSER = REPO / "serving" / "vllm_parser.py"
OPTIONS_MODULE = REPO / "operator" / "quantfleet" / "api" / "vllm_options.py"
FLAGS = OWNED_VLLM_FLAGS | SECRET_VLLM_FLAGS
# A config file for --config: vLLM reads the flags in it as if given on the command line.
CONFIG = "port: 9000\n"

# Spellings refused, each with the dest vLLM's parser sets from it (its value as given).
REFUSED: list[Any] = [
    pytest.param(["--tensor-parallel", "3"], "tensor_parallel_size", id="tp-abbreviated"),
    pytest.param(["--tensor=3"], "tensor_parallel_size", id="tp-abbreviated-to-a-word"),
    pytest.param(["-t", "3"], "tensor_parallel_size", id="tp-short-abbreviated"),
    pytest.param(["-tp=3"], "tensor_parallel_size", id="tp-short-equals"),
    pytest.param(["--tensor_parallel_size", "3"], "tensor_parallel_size", id="tp-underscores"),
    pytest.param(["--tensor-parallel-size.x", "3"], "tensor_parallel_size", id="tp-dotted-key"),
    pytest.param(["--served-model", "other"], "served_model_name", id="served-abbreviated"),
    pytest.param(["--served_model=other"], "served_model_name", id="served-underscores"),
    pytest.param(["--served-model-name.x", "y"], "served_model_name", id="served-dotted-key"),
    pytest.param(["--max_model=4096"], "max_model_len", id="max-model-len-abbreviated"),
    pytest.param(["--limit-mm-per-prompt.image", "4"], "limit_mm_per_prompt", id="mm-dotted"),
    pytest.param(["--limit-mm", '{"image": 4}'], "limit_mm_per_prompt", id="mm-abbreviated"),
    pytest.param(["--por=9000"], "port", id="port-abbreviated"),
    pytest.param(["--hos", "127.0.0.1"], "host", id="host-abbreviated"),
    pytest.param(["--config", "{config}"], "port", id="config-file-sets-the-port"),
    pytest.param(["--uds=/tmp/vllm.sock"], "uds", id="unix-socket"),
    pytest.param(["--headless"], "headless", id="headless"),
    pytest.param(["--grpc"], "grpc", id="grpc"),
    pytest.param(["-pp", "2"], "pipeline_parallel_size", id="pipeline-parallel"),
    pytest.param(["--prefill-context=2"], "prefill_context_parallel_size", id="pcp-abbreviated"),
    pytest.param(["--data_parallel_size=2"], "data_parallel_size", id="data-parallel"),
    pytest.param(["-dp", "2"], "data_parallel_size", id="data-parallel-short"),
    pytest.param(["--hf-token=hf_abc"], "hf_token", id="hub-token"),
    pytest.param(["--hf_tok", "hf_abc"], "hf_token", id="hub-token-abbreviated"),
    pytest.param(["--api-k=sk-abc"], "api_key", id="api-key-abbreviated"),
    pytest.param(["--api_key", "sk-abc"], "api_key", id="api-key-underscores"),
]
# Arguments allowed: vLLM parses each into flags extraArgs may set.
ALLOWED: list[Any] = [
    pytest.param(["--enforce-eager", "--max-num-seqs=8"], id="common-tuning"),
    pytest.param(["--gpu-memory-utilization", "0.85"], id="memory-share"),
    pytest.param(["--compilation-config.mode=3"], id="dotted-key-of-another-flag"),
    pytest.param(["-O3"], id="optimization-level"),
    pytest.param(["--kv-cache-dtype=fp8"], id="kv-cache-dtype"),
    pytest.param(["--grpc-port=50051"], id="longer-than-an-owned-flag"),
    pytest.param(["--data-parallel-size-local=1"], id="dp-local-not-dp-size"),
    pytest.param(["-dpn", "0"], id="short-flag-longer-than-an-owned-one"),
    pytest.param(["--max-num-batched-tokens", "8192"], id="starts-like-max-model-len"),
    pytest.param(["--seed", "-1"], id="a-negative-value"),
    pytest.param(["--override-generation-config", '{"temperature": 0.2}'], id="json-value"),
    pytest.param(["--tokenizer=Qwen/Qwen2.5-VL-7B-Instruct"], id="tokenizer-is-no-token"),
    pytest.param(["--ssl-keyfile=/tls/key.pem"], id="a-key-file-path-is-no-secret"),
]
# vLLM options named like a secret that are not one, each with why; SECRET_VLLM_FLAGS holds those
# that are. A new vLLM option so named fails the test below until it is put in one or the other.
NOT_SECRETS = {
    "--ssl-keyfile": "a path to the TLS key, not the key",
    "--spec-tokens": "a count of speculative tokens",
    "--tokens-only": "a switch",
    "--return-tokens-as-token-ids": "a switch",
    "--max-num-batched-tokens": "a count",
    "--max-num-scheduled-tokens": "a count",
    "--max-num-queued-tokens": "a count",
    "--long-prefill-token-threshold": "a count",
    "--long-prefill-token-threshold-adaptive": "a switch",
    "--dbo-decode-token-threshold": "a count",
    "--dbo-prefill-token-threshold": "a count",
    "--enable-prompt-tokens-details": "a switch",
    "--allow-credentials": "CORS's Access-Control-Allow-Credentials switch",
}
SECRET_LIKE = re.compile(r"token(?!izer)|key|passw|secret|credential|auth")


def refused(arguments: list[str]) -> bool:
    try:
        Serving.model_validate({"extraArgs": arguments})
    except ValidationError:
        return True
    return False


def spellings() -> list[str]:
    """Each option string of `vllm serve` and each prefix of it argparse could take as an
    abbreviation, as is, with `_` for `-`, `=value`, `.key`, `.key=value` and, for a short
    option, a value attached (-x1)."""
    found = set()
    for line in VLLM_SERVE_OPTIONS:
        for option in line.split():
            dashes = "--" if option.startswith("--") else "-"
            for end in range(len(dashes) + 1, len(option) + 1):
                prefix = option[:end]
                found |= {prefix, f"{prefix}=1", f"{prefix}.key", f"{prefix}.key=1"}
                found.add(dashes + prefix[2:].replace("-", "_") if dashes == "--" else f"{prefix}1")
    return sorted(found)


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """vLLM's answers for every case of this module, from one run of its parser."""
    config = tmp_path_factory.mktemp("vllm") / "serve.yaml"
    config.write_text(CONFIG)
    parse = [
        [arg.replace("{config}", str(config)) for arg in param.values[0]]
        for param in [*REFUSED, *ALLOWED]
    ]
    asked = {"resolve": spellings(), "parse": parse}
    run = subprocess.run(
        [str(SERVING_PYTHON), str(PARSER), "ask"],
        input=json.dumps(asked),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    answer: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    answer["parsed"] = {
        json.dumps(case): result for case, result in zip(parse, answer["parse"], strict=True)
    }
    answer["resolved"] = dict(zip(asked["resolve"], answer["resolve"], strict=True))
    answer["config"] = str(config)
    # What extraArgs may not set, as vLLM's dests (--model is moved to the positional model).
    answer["not_ours"] = {answer["dests"][flag] for flag in FLAGS} | {"model_tag"}
    return answer


def test_the_committed_option_list_is_the_one_vllm_has(vllm: dict[str, Any]) -> None:
    assert OPTIONS_MODULE.read_text() == vllm["options"], (
        "operator/quantfleet/api/vllm_options.py drifted from serving/.venv's vLLM: run "
        "`serving/.venv/bin/python serving/vllm_parser.py options > "
        "operator/quantfleet/api/vllm_options.py`"
    )


@pytest.mark.parametrize(("arguments", "want_dest"), REFUSED)
def test_a_refused_spelling_is_one_vllm_reads_as_the_flag(
    vllm: dict[str, Any], arguments: list[str], want_dest: str
) -> None:
    case = [arg.replace("{config}", vllm["config"]) for arg in arguments]
    result = vllm["parsed"][json.dumps(case)]
    option_strings = "/".join(o for o, dest in vllm["dests"].items() if dest == want_dest)

    assert refused(case)
    # vLLM sets the flag from it, or stops on its value, naming the flag.
    assert want_dest in result.get("dests", []) or result["error"].startswith(
        f"argument {option_strings}:"
    ), result


@pytest.mark.parametrize("arguments", ALLOWED)
def test_an_allowed_argument_is_one_vllm_reads_as_another_flag(
    vllm: dict[str, Any], arguments: list[str]
) -> None:
    result = vllm["parsed"][json.dumps(arguments)]

    assert not refused(arguments)
    assert "error" not in result, result
    assert result["dests"]
    assert not set(result["dests"]) & vllm["not_ours"], result


def test_every_spelling_vllm_reads_as_a_flag_extra_args_may_not_set_is_refused(
    vllm: dict[str, Any],
) -> None:
    not_ours = vllm["not_ours"]
    missed = [
        s for s, dests in vllm["resolved"].items() if set(dests) & not_ours and not refused([s])
    ]

    assert len(vllm["resolved"]) > 10000
    assert not missed, f"{len(missed)} spellings vLLM reads as a flag it may not set: {missed[:20]}"


def test_every_spelling_refused_is_one_vllm_reads_as_such_a_flag_or_refuses_itself(
    vllm: dict[str, Any],
) -> None:
    # An abbreviation shared with other options argparse refuses as ambiguous (None: unknown).
    refusing = vllm["not_ours"] | {"?ambiguous", None}
    wrong = [s for s, dests in vllm["resolved"].items() if refused([s]) and set(dests) - refusing]

    assert not wrong, f"{len(wrong)} refused spellings vLLM reads as other flags: {wrong[:20]}"


def test_every_vllm_option_named_like_a_secret_is_refused_or_known_not_to_be_one(
    vllm: dict[str, Any],
) -> None:
    flags: dict[str, str] = {}  # each dest's first option string: the flag
    for option, dest in vllm["dests"].items():
        flags.setdefault(dest, option)
    named_like_a_secret = {
        flags[dest] for option, dest in vllm["dests"].items() if SECRET_LIKE.search(option)
    }
    unknown = named_like_a_secret - set(SECRET_VLLM_FLAGS) - set(NOT_SECRETS)

    assert set(SECRET_VLLM_FLAGS) <= named_like_a_secret
    assert not unknown, f"put each in SECRET_VLLM_FLAGS or in NOT_SECRETS: {sorted(unknown)}"
