"""``mixdown train``: run any training recipe (see `mixdown.train`): the estimator, DMC and
Mix-Wave-U-Net (`MixingSystem`), the DMC's emulator (`EmulatorSystem`) and the forest."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from mixdown.errors import MixdownError

if TYPE_CHECKING:
    from mixdown.train import Recipe

# option -> recipe field it overrides
_OVERRIDES = {"devices": "devices", "num_nodes": "num_nodes", "strategy": "strategy", "accelerator": "accelerator",
              "max_steps": "max_steps", "out": "out", "export": "export"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train CONFIG [--devices N --num-nodes N --strategy S --max-steps N --out DIR --resume CKPT]``."""
    from mixdown.cli import INTEGER, add_command

    train = add_command(
        subparsers, "train", "train a mixer from a YAML recipe: estimator, dmc, waveunet, emulator, forest (train extra)",
        description="Train from a recipe; its model: key picks what (configs/*.yaml: estimator, dmc, waveunet, "
                    "emulator, forest). Options override the recipe's fields; the forest takes --export only.")
    train.set_defaults(handler=_cmd_train)
    train.add_argument("config", type=Path, help="training recipe, e.g. configs/estimator.yaml")
    train.add_argument("--devices", type=INTEGER, help="devices per node (overrides the recipe)")
    train.add_argument("--num-nodes", type=INTEGER, help="machines (overrides the recipe)")
    train.add_argument("--strategy", help="Lightning strategy, e.g. ddp (overrides the recipe)")
    train.add_argument("--accelerator", help="cpu, gpu or auto (overrides the recipe)")
    train.add_argument("--max-steps", type=INTEGER, help="optimisation steps (overrides the recipe)")
    train.add_argument("--out", type=Path, help="run folder for logs and checkpoints (overrides the recipe)")
    train.add_argument("--export", type=Path, help="where to write the trained weights (overrides the recipe)")
    train.add_argument("--resume", help="Lightning checkpoint to continue from, or 'last' (the run folder's latest)")
    train.add_argument("--export-only", type=Path, metavar="CKPT",
                       help="skip training; export this checkpoint's weights to the recipe's export path")


def _with_overrides(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    """The recipe with the options given on the command line; options it has no field for are errors."""
    fields = {f.name for f in dataclasses.fields(recipe)}
    given = {field: str(value) if isinstance(value, Path) else value
             for option, field in _OVERRIDES.items() if (value := getattr(args, option)) is not None}
    unknown = [f"--{option.replace('_', '-')}" for option, field in _OVERRIDES.items()
               if field in given and field not in fields]
    if unknown:
        raise MixdownError(f"bad option: {', '.join(unknown)} does not apply to a {recipe.model} recipe")
    try:
        return dataclasses.replace(recipe, **given)
    except (ValueError, MixdownError) as exc:
        raise MixdownError(f"bad option: {exc}") from None


def _cmd_train(args: argparse.Namespace) -> None:
    from mixdown.cli import err, progress
    from mixdown.train import export_checkpoint, load_recipe, prepare_data, synth_songs, train

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    recipe = load_recipe(args.config)
    recipe = _with_overrides(recipe, args)
    export = getattr(recipe, "export", None)
    if export is not None:
        from mixdown.outputs import check_not_input

        check_not_input(Path(export), [args.config, args.export_only,
                                       Path(args.resume) if args.resume not in (None, "last") else None],
                        "exported weights")
    forest = recipe.model in ("forest", "producer", "style")
    if forest and (args.resume is not None or args.export_only is not None):
        raise MixdownError(f"bad option: --resume and --export-only do not apply to a {recipe.model} recipe")
    if args.export_only is not None:
        if recipe.export is None:
            raise MixdownError(f"{args.config} has no export path; give one with --export")
        say(f"wrote {export_checkpoint(args.export_only, recipe.export)}")
        return
    if forest and recipe.export is None:
        raise MixdownError(f"{args.config} has no export path; give one with --export")
    if songs := synth_songs(recipe):
        with progress("building synthetic songs", songs) as update:
            prepare_data(recipe, progress=update)
    if recipe.model == "producer":
        label, total = "reading training songs", 1
    elif recipe.model == "style":
        label, total = "training the style conditioner", 1.0
    else:
        label, total = ("generating training songs", recipe.songs) if forest else (f"training {recipe.model}",
                                                                                recipe.max_steps)
    with progress(label, total) as update:  # on a terminal a bar, in logs a line per tenth
        result = train(recipe, resume=args.resume, progress=update, log=say)
    if recipe.model == "style":
        info = result.info
        kind = "audio" if "val_audio_loss_with_reference" in info else "parameter"
        real = " (real songs)" if info.get("real_val_examples") else ""
        say(f"wrote {result.exported}: validation {kind} loss{real} {info[f'val_{kind}_loss_with_reference']:.4f} "
            f"with the reference, {info[f'val_{kind}_loss_without_reference']:.4f} without ({info['seconds']} s)")
        return
    if recipe.model == "producer":
        info = result.info
        say(f"wrote {result.exported}: {info['rows']} stems from {info['real_songs']} real and "
            f"{info['synth_songs']} synthetic songs; data {info['data_s']} s, fit {info['fit_s']} s")
        return
    if forest:
        info = result.info
        say(f"wrote {result.exported}: {info['rows']} stems from {info['songs']} songs; data {info['data_s']} s, "
            f"fit {info['fit_s']} s; {result.exported.stat().st_size / 1e6:.2f} MB")
        return
    if result.checkpoint is None:
        return
    loss = "" if result.best_val_loss is None else f" ({result.metric} {result.best_val_loss:.4f})"
    say(f"best checkpoint {result.checkpoint}{loss}")
    if result.exported is not None:
        say(f"wrote {result.exported}")
