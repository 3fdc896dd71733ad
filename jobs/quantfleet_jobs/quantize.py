"""Quantize a model with LLM Compressor's `oneshot` into a compressed-tensors checkpoint.

parse → fetch the source → load → calibrate and compress → save to a staging directory →
classify what config.json says was produced → move into place → write the result.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping
from typing import Any

from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.results import CHECKPOINT_LIBRARY, QuantizeResult
from quantfleet_jobs import calibration, checkpoints
from quantfleet_jobs.common import (
    JobArgumentParser,
    JobError,
    add_common_arguments,
    env_defaults,
    library_versions,
    publish,
    run_program,
    select_device,
    source_fetcher,
    split_list,
    staging_dir,
    weights_size,
    workdir_for,
)

SCHEMES = [s.value for s in Scheme if s is not Scheme.AUTO]
DATA_FREE = {Scheme.FP8_DYNAMIC}


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The program's flags; defaults from QF_* in `environ` (the process's env unless given)."""
    env_default = env_defaults(environ)
    parser = JobArgumentParser(prog="quantfleet-quantize", description=__doc__)
    parser.add_argument(
        "--source", default=env_default("SOURCE"), help="Model: path, pvc://, hf://, s3://"
    )
    parser.add_argument(
        "--output", default=env_default("OUTPUT"), help="Checkpoint: path, pvc://, s3://"
    )
    parser.add_argument(
        "--scheme", default=env_default("SCHEME"), help=f"One of {', '.join(SCHEMES)}"
    )
    parser.add_argument(
        "--model-kind",
        default=env_default("MODEL_KIND", "auto"),
        help="auto (from config.json), text or vision-language",
    )
    parser.add_argument(
        "--recipe",
        default=env_default("RECIPE"),
        help="LLM Compressor recipe YAML replacing the default",
    )
    parser.add_argument(
        "--dataset",
        default=env_default("DATASET"),
        help="Calibration data: a hub dataset name, a path/pvc:// dataset, 'synthetic', or 'none'. "
        "Default: ultrachat (text) or flickr30k (vision-language)",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=split_list(env_default("IGNORE")) or None,
        help="Module pattern kept in high precision (repeatable); replaces the kind's defaults",
    )
    parser.add_argument("--dataset-split", default=env_default("DATASET_SPLIT"))
    parser.add_argument(
        "--num-samples", type=int, default=int(env_default("NUM_SAMPLES", "512") or 512)
    )
    parser.add_argument(
        "--max-seq-length", type=int, default=int(env_default("MAX_SEQ_LENGTH", "2048") or 2048)
    )
    parser.add_argument("--seed", type=int, default=int(env_default("SEED", "42") or 42))
    parser.add_argument("--device", default=env_default("DEVICE", "auto"), help="auto, cpu or cuda")
    add_common_arguments(parser, env_default)
    return parser


def quantize(args: argparse.Namespace) -> QuantizeResult:
    started = time.monotonic()
    scheme = requested_scheme(args)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # calibrate on the CPU even where a GPU is visible
    device = select_device(args.device)
    workdir = workdir_for(args)
    fetch = source_fetcher(args, workdir)

    # Load. Heavy imports here so that bad arguments fail in a second, not after 20.
    source = fetch(args.source)
    config = checkpoints.read_config(source)
    kind = checkpoints.model_kind_of(config)
    if args.model_kind != "auto" and args.model_kind != kind.value:
        raise JobError(f"model kind {args.model_kind} requested but {source.name} is {kind.value}")
    if checkpoints.classify(config)[1] != "none":
        raise JobError(f"source {args.source} is already quantized")

    import torch
    from llmcompressor.entrypoints.oneshot import oneshot

    torch.manual_seed(args.seed)
    try:
        model = checkpoints.model_class_for(kind).from_pretrained(source, dtype="auto")
        processor = checkpoints.load_processor(source, kind)
    except (OSError, ValueError, KeyError) as error:
        raise JobError(f"cannot load {args.source} as a {kind.value} model: {error}") from error

    # Calibration data: none for data-free schemes unless a custom recipe may need it.
    dataset = None
    wants_data = args.recipe is not None or scheme not in DATA_FREE
    if wants_data and args.dataset != "none":
        dataset = calibration.load(
            args.dataset, kind=kind, processor=processor, split=args.dataset_split,
            num_samples=args.num_samples, max_seq_length=args.max_seq_length, seed=args.seed,
            fetch=fetch,
            token_env=args.hf_token_env,
        )  # fmt: skip
    elif scheme not in DATA_FREE:
        raise JobError(f"scheme {scheme.value} needs calibration data; --dataset none given")

    recipe: Any = args.recipe if args.recipe else default_recipe(scheme, kind, args.ignore)
    vision_arguments: dict[str, Any] = {}
    if kind is ModelKind.VISION_LANGUAGE:
        vision_arguments = {
            "data_collator": calibration.batch_one_collator,
            "sequential_targets": [decoder_layer_class(model)],
        }

    with staging_dir(args.output, mount_root=args.mount_root, workdir=workdir) as staging:
        oneshot(
            model=model,
            recipe=recipe,
            dataset=dataset,
            processor=processor,
            num_calibration_samples=len(dataset) if dataset is not None else 0,
            max_seq_length=args.max_seq_length,
            shuffle_calibration_samples=False,  # already shuffled with --seed
            output_dir=str(staging),
            **vision_arguments,
        )
        saved = checkpoints.read_config(staging)
        produced_scheme(args, saved)  # refused before it is published
        size_after = weights_size(staging)
        output = publish(staging, args.output, mount_root=args.mount_root)

    return summarise(
        args,
        kind=kind,
        saved_config=saved,
        output=output,
        calibration_samples=len(dataset) if dataset is not None else 0,
        size_before=weights_size(source),
        size_after=size_after,
        duration_seconds=round(time.monotonic() - started, 3),
        device=device,
        versions=library_versions("llmcompressor", CHECKPOINT_LIBRARY, "transformers", "torch"),
    )


def requested_scheme(args: argparse.Namespace) -> Scheme:
    """The scheme asked for, once the required flags are there and the scheme is one of ours."""
    if not args.source or not args.output or not args.scheme:
        raise JobError("--source, --output and --scheme are required")
    if args.scheme not in SCHEMES:
        raise JobError(f"unknown scheme {args.scheme!r}: want one of {', '.join(SCHEMES)}")
    return Scheme(args.scheme)


def ignore_patterns(kind: ModelKind, ignore: list[str] | None) -> list[str]:
    """Modules kept in high precision: `--ignore` where given, else the kind's defaults (the
    vision tower and projector of a vision-language model)."""
    if ignore is not None:
        return ignore
    return (
        checkpoints.VISION_IGNORE if kind is ModelKind.VISION_LANGUAGE else checkpoints.TEXT_IGNORE
    )


def produced_scheme(
    args: argparse.Namespace, saved_config: dict[str, Any]
) -> tuple[Scheme | None, str]:
    """(scheme, format) the saved config.json says was produced; refused when there is no
    compressed-tensors quantization or the default recipe made another scheme than asked."""
    produced, fmt = checkpoints.classify(saved_config)
    if fmt == "none":
        raise JobError("the recipe produced no compressed-tensors quantization_config")
    if args.recipe is None and produced is not Scheme(args.scheme):
        raise JobError(f"asked for {args.scheme} but the checkpoint is {fmt} ({produced})")
    return produced, fmt


def summarise(
    args: argparse.Namespace,
    *,
    kind: ModelKind,
    saved_config: dict[str, Any],
    output: str,
    calibration_samples: int,
    size_before: int,
    size_after: int,
    duration_seconds: float,
    device: str,
    versions: dict[str, str],
) -> QuantizeResult:
    """The result, classified from the saved checkpoint's config.json."""
    produced, fmt = produced_scheme(args, saved_config)
    return QuantizeResult(
        output=output,
        model_kind=kind,
        requested_scheme=Scheme(args.scheme),
        scheme=produced,
        format=fmt,
        recipe_overridden=args.recipe is not None,
        ignored_modules=len(saved_config["quantization_config"].get("ignore") or []),
        calibration_samples=calibration_samples,
        size_before_bytes=size_before,
        size_after_bytes=size_after,
        compression_ratio=round(size_before / size_after, 4) if size_after else 0.0,
        duration_seconds=duration_seconds,
        device=device,
        library_versions=versions,
    )


def default_recipe(scheme: Scheme, kind: ModelKind, ignore: list[str] | None = None) -> list[Any]:
    """The study's recipes (quantization.md §2), vision tower and projector left alone unless
    `ignore` replaces the kind's default patterns."""
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    ignore = ignore_patterns(kind, ignore)
    if scheme is Scheme.FP8_DYNAMIC:
        return [QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=ignore)]
    if scheme is Scheme.W8A8:
        return [
            SmoothQuantModifier(smoothing_strength=0.8),
            GPTQModifier(targets="Linear", scheme="W8A8", ignore=ignore),
        ]
    if scheme is Scheme.W4A16:
        return [GPTQModifier(targets="Linear", scheme="W4A16", ignore=ignore)]
    # NVFP4 calibrates global activation scales, so it takes data too.
    return [QuantizationModifier(targets="Linear", scheme="NVFP4", ignore=ignore)]


def decoder_layer_class(model: Any) -> str:
    """The language model's decoder layer class: the unit the sequential pipeline calibrates."""
    for name, module in model.named_modules():
        cls = type(module).__name__
        if cls.endswith("DecoderLayer") and not any(
            part in name for part in ("visual", "vision_tower", "vision_model")
        ):
            return cls
    raise JobError(f"found no decoder layer in {type(model).__name__}; cannot calibrate it")


def main(argv: list[str] | None = None) -> int:
    return run_program("quantize", build_parser(), quantize, argv)


if __name__ == "__main__":
    raise SystemExit(main())
