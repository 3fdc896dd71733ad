"""The tests' tiny random models, with tokenizers trained offline (factories.tokenizer): a
2-layer Llama and a 2-layer Qwen2-VL-shaped vision-language model with its processor, seconds to
build; and their checkpoints, from the real quantize program on the CPU (`quantize`, with the one
argument list `quantize_args`). Every suite that needs a real checkpoint starts from these."""

from pathlib import Path

from factories.tokenizer import make_text_tokenizer, train_bpe

VISION_SPECIAL = [
    "<unk>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
VISION_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_llama(directory: Path) -> Path:
    """A 2-layer random Llama (hidden 128, so GPTQ's group of 128 fits) and a BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_text_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_qwen2_vl(directory: Path) -> Path:
    """A 2-layer random Qwen2-VL (2-block vision tower, merger as projector) and its processor."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(VISION_SPECIAL),
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VISION_SPECIAL}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tokenizer,
        chat_template=VISION_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]},
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "embed_dim": 64,
            "hidden_size": 128,
            "num_heads": 4,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def quantize_args(source: Path, output: Path, scheme: str) -> list[str]:
    """The quantize program's arguments for a tiny model on the CPU: synthetic calibration data,
    8 samples of 128 tokens."""
    return [
        f"--source={source}",
        f"--output={output}",
        f"--scheme={scheme}",
        "--dataset=synthetic",
        "--num-samples=8",
        "--max-seq-length=128",
        "--device=cpu",
    ]


def quantize(source: Path, scheme: str, output: Path, workdir: Path) -> Path:
    """`source` quantized to `scheme` at `output` by the real quantize program, on the CPU."""
    from quantfleet_jobs import quantize as program

    log = workdir / "termination-log"
    args = [*quantize_args(source, output, scheme), f"--termination-log={log}"]
    if program.main([*args, f"--workdir={workdir / 'work'}"]) != 0:
        raise RuntimeError(f"quantize {scheme} failed: {log.read_text()}")
    return output
