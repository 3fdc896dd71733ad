"""spec.serving.extraArgs, model side: no flag the operator owns or that carries a secret, in any
spelling vLLM's parser reads as it, and no control or bidirectional characters. tests/serving
holds the same spellings to vLLM's own parser."""

import re

import pytest
from pydantic import ValidationError

from factories import make_spec
from quantfleet.api.vllm_args import (
    OWNED_VLLM_FLAGS,
    SECRET_VLLM_FLAGS,
    option_strings,
    spellings_pattern,
)
from quantfleet.api.vllm_options import VLLM_SERVE_OPTIONS

FLAGS = OWNED_VLLM_FLAGS | SECRET_VLLM_FLAGS


def refusal(extra_args: list[str]) -> str | None:
    """The models' message for a spec with these extraArgs, or None when they are accepted."""
    try:
        make_spec(serving={"extraArgs": extra_args})
    except ValidationError as error:
        return str(error)
    return None


@pytest.mark.parametrize(
    ("extra_args", "want_flag"),
    [
        pytest.param(["--tensor-parallel=4"], "--tensor-parallel-size", id="tp-abbreviated"),
        pytest.param(["--tensor", "4"], "--tensor-parallel-size", id="tp-abbreviated-to-a-word"),
        pytest.param(["-t", "4"], "--tensor-parallel-size", id="tp-short-abbreviated"),
        pytest.param(["-tp=2"], "--tensor-parallel-size", id="tp-short-equals"),
        pytest.param(["--tensor_parallel_size", "2"], "--tensor-parallel-size", id="underscores"),
        pytest.param(["--tensor-parallel-size.x=2"], "--tensor-parallel-size", id="dotted-key"),
        pytest.param(["--served-model", "other"], "--served-model-name", id="served-abbreviated"),
        pytest.param(["--served_model=other"], "--served-model-name", id="served-underscores"),
        pytest.param(["--served-model-name.x", "y"], "--served-model-name", id="served-dotted"),
        pytest.param(["--max_model=4096"], "--max-model-len", id="max-model-len-abbreviated"),
        pytest.param(["--limit-mm-per-prompt.image", "4"], "--limit-mm-per-prompt", id="mm-dotted"),
        pytest.param(["--limit-mm=image=4"], "--limit-mm-per-prompt", id="mm-abbreviated"),
        pytest.param(["--por=9000"], "--port", id="port-abbreviated"),
        pytest.param(["--host=127.0.0.1"], "--host", id="host"),
        pytest.param(["--model=/other"], "--model", id="model"),
        pytest.param(["--config", "/etc/vllm.yaml"], "--config", id="config-file"),
        pytest.param(["--uds=/tmp/vllm.sock"], "--uds", id="unix-socket"),
        pytest.param(["--headless"], "--headless", id="headless"),
        pytest.param(["--grpc"], "--grpc", id="grpc"),
        pytest.param(["-pp", "2"], "--pipeline-parallel-size", id="pipeline-parallel"),
        pytest.param(["-pcp=2"], "--prefill-context-parallel-size", id="prefill-context-parallel"),
        pytest.param(["--data_parallel_size=2"], "--data-parallel-size", id="data-parallel"),
        pytest.param(["-dp", "2"], "--data-parallel-size", id="data-parallel-short"),
        pytest.param(["--hf-token=hf_abc"], "--hf-token", id="hub-token"),
        pytest.param(["--hf_tok", "hf_abc"], "--hf-token", id="hub-token-abbreviated"),
        pytest.param(["--api-key", "sk-abc"], "--api-key", id="api-key"),
        pytest.param(["--api-k=sk-abc"], "--api-key", id="api-key-abbreviated"),
        pytest.param(["--enforce-eager", "--por", "9000"], "--port", id="after-an-allowed-one"),
    ],
)
def test_a_flag_extra_args_may_not_set_is_refused_in_every_spelling(
    extra_args: list[str], want_flag: str
) -> None:
    message = refusal(extra_args)

    assert message is not None
    assert f"extraArgs: may not set {want_flag}," in message
    assert FLAGS[want_flag] in message.replace("\n", " ")


@pytest.mark.parametrize(
    "extra_args",
    [
        pytest.param(["--enforce-eager", "--max-num-seqs=8"], id="common-tuning"),
        pytest.param(["--gpu-memory-utilization", "0.85"], id="memory-share"),
        pytest.param(["--compilation-config.level=3"], id="dotted-key-of-another-flag"),
        pytest.param(["-O3"], id="optimization-level"),
        pytest.param(["--kv-cache-dtype=fp8"], id="kv-cache-dtype"),
        pytest.param(["--grpc-port=50051"], id="longer-than-an-owned-flag"),
        pytest.param(["--data-parallel-size-local=1"], id="dp-local-not-dp-size"),
        pytest.param(["-dpn", "0"], id="short-flag-longer-than-an-owned-one"),
        pytest.param(["--max-num-batched-tokens", "8192"], id="starts-like-max-model-len"),
        pytest.param(["--served-model-names"], id="not-an-abbreviation-vllm-refuses-it-itself"),
        pytest.param(["--seed", "-1"], id="a-negative-value"),
        pytest.param(["--chat-template=/templates/qwen.jinja"], id="a-path-value"),
        pytest.param(["--override-generation-config", '{"temperature": 0.2}'], id="json-value"),
        pytest.param(["--tokenizer=Qwen/Qwen2.5-VL-7B-Instruct"], id="not-a-token"),
        pytest.param(["--served-model-name-x"], id="owned-flag-then-more-is-no-spelling-of-it"),
        pytest.param(["--max-model-len-x=1"], id="longer-than-max-model-len"),
        pytest.param(["--chat-template=café ✓"], id="non-ascii-text"),
    ],
)
def test_other_arguments_are_accepted(extra_args: list[str]) -> None:
    assert refusal(extra_args) is None


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param("--max-num-seqs=8\n--port=9000", id="newline"),
        pytest.param("--max-num-seqs=8\r", id="carriage-return"),
        pytest.param("--max-num-seqs=8\x00", id="nul"),
        pytest.param("--max-num-seqs=\t8", id="tab"),
        pytest.param("--max-num-seqs=8\x1b[2J", id="escape"),
        pytest.param("--max-num-seqs=8\x7f", id="delete"),
        pytest.param("--max-num-seqs=8\x85", id="c1-next-line"),
        pytest.param("--kv-cache-dtype=\u202efp8", id="right-to-left-override"),
        pytest.param("--kv-cache-dtype=\u2066fp8\u2069", id="left-to-right-isolate"),
        pytest.param("--kv-cache-dtype=fp8\u200f", id="right-to-left-mark"),
        pytest.param("--kv-cache-dtype=fp8\u061c", id="arabic-letter-mark"),
    ],
)
def test_control_and_bidirectional_characters_are_refused(argument: str) -> None:
    message = refusal(["--enforce-eager", argument])

    assert message is not None
    assert "extraArgs: no control characters" in message


def test_every_flag_is_an_option_of_vllm_serve_with_its_aliases() -> None:
    options = {option for line in VLLM_SERVE_OPTIONS for option in line.split()}

    assert set(FLAGS) <= options
    assert option_strings("--tensor-parallel-size") == ("--tensor-parallel-size", "-tp")
    assert option_strings("--data-parallel-size") == ("--data-parallel-size", "-dp")


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_each_abbreviation_of_each_option_string_is_refused_in_each_form(flag: str) -> None:
    for option in option_strings(flag):
        dashes = "--" if option.startswith("--") else "-"
        for end in range(len(dashes) + 1, len(option) + 1):
            prefix = option[:end]
            forms = [prefix, f"{prefix}=1", f"{prefix}.key", f"{prefix}.key=1"]
            if dashes == "--":
                forms.append(dashes + prefix[2:].replace("-", "_"))
            for form in forms:
                assert refusal([form]) is not None, form


@pytest.mark.parametrize(
    ("end", "argument", "want_match"),
    [
        pytest.param("$", "--port", True, id="re2-anchor"),
        pytest.param(r"\Z", "--port", True, id="python-anchor"),
        pytest.param(r"\Z", "--port\n", False, id="python-anchor-is-the-end-of-the-text"),
        pytest.param(r"\Z", "--portal", False, id="no-more-letters"),
        pytest.param(r"\Z", "-", False, id="dashes-alone"),
        pytest.param(r"\Z", "--", False, id="two-dashes-alone"),
    ],
)
def test_spellings_pattern_anchors(end: str, argument: str, want_match: bool) -> None:
    assert bool(re.match(spellings_pattern(["--port"], end=end), argument)) is want_match
