"""``mixdown train``: run a training recipe (see `mixdown.train`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mixdown.errors import MixdownError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train CONFIG [--devices N --num-nodes N --strategy S --max-steps N --out DIR --resume CKPT]``."""
    train = subparsers.add_parser("train", help="train a learned mixer from a YAML recipe (needs the train extra)")
    train.set_defaults(handler=_cmd_train)
    train.add_argument("config", type=Path, help="training recipe, e.g. configs/estimator.yaml")
    train.add_argument("--devices", type=int, help="devices per node (overrides the recipe)")
    train.add_argument("--num-nodes", type=int, help="machines (overrides the recipe)")
    train.add_argument("--strategy", help="Lightning strategy, e.g. ddp (overrides the recipe)")
    train.add_argument("--accelerator", help="cpu, gpu or auto (overrides the recipe)")
    train.add_argument("--max-steps", type=int, help="optimisation steps (overrides the recipe)")
    train.add_argument("--out", type=Path, help="run folder for logs and checkpoints (overrides the recipe)")
    train.add_argument("--export", type=Path, help="where to write the trained weights (overrides the recipe)")
    train.add_argument("--resume", help="Lightning checkpoint to continue from, or 'last' (the run folder's latest)")
    train.add_argument("--export-only", type=Path, metavar="CKPT",
                       help="skip training; export this checkpoint's weights to the recipe's export path")


def _cmd_train(args: argparse.Namespace) -> None:
    from mixdown.cli import err
    from mixdown.train import export_checkpoint, load_train_config, train

    config = load_train_config(args.config)
    overrides = {"devices": args.devices, "num_nodes": args.num_nodes, "strategy": args.strategy,
                 "accelerator": args.accelerator, "max_steps": args.max_steps,
                 "out": None if args.out is None else str(args.out),
                 "export": None if args.export is None else str(args.export)}
    try:
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise MixdownError(f"bad option: {exc}") from None
    if args.export_only is not None:
        if config.export is None:
            raise MixdownError(f"{args.config} has no export path; give one with --export")
        written = export_checkpoint(args.export_only, config.export)
        err.print(f"wrote {written}")
        return
    result = train(config, resume=args.resume)
    if result.checkpoint is None:
        return
    loss = "" if result.best_val_loss is None else f" (validation stereo loss {result.best_val_loss:.4f})"
    err.print(f"best checkpoint {result.checkpoint}{loss}")
    if result.exported is not None:
        err.print(f"wrote {result.exported}")
