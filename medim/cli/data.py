"""Commands about an experiment's data: `tokenize`, `reconstruct`, `data check`, `data export`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medim.cli.arguments import experiment_arguments
from medim.errors import DataError


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim tokenize` (alias `prepare`), `reconstruct`, and `medim data check|export`."""
    p = commands.add_parser(
        "tokenize",
        aliases=["prepare"],
        parents=[common],
        help="build an experiment's data and tokenizers and tokenize its splits into memory-mapped shards "
        "(cached, resumable)",
    )
    experiment_arguments(p)
    p.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=["train", "val", "test"])
    p.add_argument("--shard-size", type=int, help="samples per shard of a new build (default 4096)")
    p.set_defaults(handler=_cmd_tokenize)
    p = commands.add_parser(
        "reconstruct",
        parents=[common],
        help="encode+decode a folder of images with an experiment's image tokenizer (PSNR/SSIM)",
    )
    p.add_argument("experiment", help="experiment whose image tokenizer to check (name or YAML path)")
    p.add_argument("folder", type=Path, help="folder of images (searched recursively)")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. tokenizers.image.checkpoint=...")
    p.add_argument("--out", type=Path, help="where reconstruction.json and side-by-side PNGs go (./reconstruction)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, help="only the first N images")
    p.set_defaults(handler=_cmd_reconstruct)
    data = commands.add_parser("data", help="check or export an experiment's dataset").add_subparsers(
        title="data commands"
    )
    p = data.add_parser(
        "check",
        parents=[common],
        help="build only the dataset: counts, skipped items and why, report lengths, source image sizes and modes "
        "(a full decode of every image, which finds truncated files), a gallery; exit 1 if on_error: fail would stop "
        "training",
    )
    experiment_arguments(p)
    p.add_argument("--out", type=Path, default=Path("data_check"), help="galleries and summary.json (./data_check)")
    p.add_argument("--gallery", type=int, default=8, help="pairs shown per split in the gallery (default 8)")
    p.set_defaults(handler=_cmd_data_check)
    p = data.add_parser(
        "export",
        parents=[common],
        help="write an experiment's data as a paired folder (MeDiM's layout: NAME.png + NAME.txt in train/ val/ "
        "test/, labels.json) and print the data block that reads it back",
    )
    p.add_argument("experiment", help="a bundled experiment name (see `medim config list`) or a YAML path")
    p.add_argument("out", type=Path, help="the folder to write (new or empty)")
    p.add_argument("overrides", nargs="*", help="key.path=value, ~key.path (delete), component=name (swap)")
    p.set_defaults(handler=_cmd_data_export)


def _cmd_tokenize(args: argparse.Namespace) -> None:
    from medim.config import load_experiment
    from medim.data.token_shards import DEFAULT_SHARD_SIZE
    from medim.experiment import build_experiment

    if args.shard_size is not None and args.shard_size < 1:
        raise DataError(f"--shard-size must be at least 1, got {args.shard_size}")
    experiment = build_experiment(load_experiment(args.experiment, args.overrides), progress=not args.quiet)
    layout = experiment.layout
    print(
        f"{experiment.config.name}: sequence length {layout.seq_len} ({len(layout.image_positions)} image + "
        f"{len(layout.text_positions)} text tokens), vocabulary {layout.vocab_size} "
        f"(text {experiment.text_tokenizer.vocab_size}, image codes {experiment.image_tokenizer.codebook_size})"
    )
    for split in args.splits:
        shards = experiment.tokens(split, progress=not args.quiet, shard_size=args.shard_size or DEFAULT_SHARD_SIZE)
        speed = shards.manifest["images_per_second"]
        print(
            f"  {split:<5} {len(shards):>7} samples in {len(list(shards.directory.glob('shard_*.npy')))} shards"
            f" (tokenized at {speed} images/s): {shards.directory}"
        )


def _cmd_reconstruct(args: argparse.Namespace) -> None:
    from medim.evaluation.tokenizer_check import reconstruct_experiment, reconstruction_summary

    out = args.out or Path("reconstruction")
    report = reconstruct_experiment(
        args.experiment,
        args.overrides,
        args.folder,
        out,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=not args.quiet,
    )
    print(reconstruction_summary(report))
    print(f"report: {out / 'reconstruction.json'}; side-by-side images: {out}/*.png")


def _cmd_data_check(args: argparse.Namespace) -> int:
    from medim.config import load_experiment
    from medim.data.data_check import check_data, text_token_counter

    if args.gallery < 0:
        raise DataError(f"--gallery must be at least 0, got {args.gallery}")
    config = load_experiment(args.experiment, args.overrides)
    count_tokens, note = text_token_counter(config)
    report = check_data(
        config.data.block(),
        args.out,
        progress=not args.quiet,
        count_tokens=count_tokens,
        tokens_note=note,
        gallery_size=args.gallery,
    )
    print("\n".join(report.lines()))
    print(f"summary: {args.out / 'summary.json'}")
    return 1 if report.stops_training else 0


def _cmd_data_export(args: argparse.Namespace) -> None:
    import yaml

    from medim.config import load_experiment
    from medim.data.paired_folder import export_paired_folder

    config = load_experiment(args.experiment, args.overrides)
    block = export_paired_folder(config.data.build(), args.out, progress=not args.quiet)
    counts = ", ".join(f"{split} {len(list((args.out / split).glob('*.txt')))}" for split in ("train", "val", "test"))
    print(f"exported {config.data.name} to {args.out} ({counts} pairs); read it back with:")
    print(yaml.safe_dump({"data": block}, sort_keys=False), end="")
