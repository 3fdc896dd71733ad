"""The tiny BPE tokenizer the tests train offline (no hub here): for the tiny models the Job
program tests build, and for GuideLLM, which needs one to size synthetic prompts."""

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
