"""The tiny BPE tokenizer the tests train offline (no hub here): for the tiny models the Job
program tests build, and for GuideLLM, which needs one to size synthetic prompts."""

from quantfleet.testbed.tinymodels import (
    CORPUS,
    TEXT_SPECIAL,
    build_tokenizer,
    make_text_tokenizer,
    train_bpe,
)

__all__ = ["CORPUS", "TEXT_SPECIAL", "build_tokenizer", "make_text_tokenizer", "train_bpe"]
