"""Tiny random models the tests and the demo build offline (there is no hub here): a BPE
tokenizer trained on a small corpus, a 2-layer Llama and a 2-layer Qwen2-VL-shaped
vision-language model with its processor (seconds to build), and a local stand-in for a study
evaluation task. They need the jobs extra (torch, transformers, tokenizers, datasets)."""

from pathlib import Path
from typing import Any

CORPUS = [
    f"the quick brown fox {i} jumps over the lazy dog and reads chart number {i * 7}"
    for i in range(300)
] + ["what does the image show? a picture of a cat on a mat"] * 20
TEXT_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
TEXT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def train_bpe(special_tokens: list[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on CORPUS; the first special is unk."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=special_tokens[0]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def make_text_tokenizer() -> Any:
    """A transformers fast tokenizer with <s>, </s>, <pad> and a plain chat template."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(TEXT_SPECIAL),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    tokenizer.chat_template = TEXT_TEMPLATE
    return tokenizer


def build_tokenizer(directory: Path) -> Path:
    """`make_text_tokenizer()` saved in `directory`, loadable by path."""
    make_text_tokenizer().save_pretrained(directory)
    return directory


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


COLOURS = ["red", "green", "blue", "white"]
LOCAL_STUDY_TASK = """task: {name}
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_image:
  - image
doc_to_text: "<image>Describe the picture."
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  do_sample: false
  max_gen_toks: 16
metric_list:
  - metric: chrf
    aggregation: chrf
    higher_is_better: true
"""


def write_local_study_task(directory: Path, name: str, seen_at: Path | None = None) -> Path:
    """A local stand-in for a study task the CRD names (`chartqa`, say), for clusters without
    the hub: one picture per COLOURS with a one-line description to give, scored by chrF
    (character n-gram F-score). A random tiny VLM earns a small non-zero chrF, so recovery is
    defined, where exact match would score 0 on both models. `seen_at`: where the Job's pod
    sees `directory` (the data path in the YAML is read in the pod)."""
    import datasets
    from PIL import Image

    rows = {
        "image": [Image.new("RGB", (64, 64), c) for c in COLOURS],
        "answer": [f"The picture is {c}." for c in COLOURS],
    }
    data = directory / f"{name}.parquet"
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(data)
    (directory / f"{name}.yaml").write_text(
        LOCAL_STUDY_TASK.format(name=name, data=(seen_at or directory) / data.name)
    )
    return directory
