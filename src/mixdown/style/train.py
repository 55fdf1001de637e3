"""Training the reference conditioner (`mixdown.style.conditioned`) the way Diff-MST trains.

Data: synthetic songs (`mixdown.synth.synthetic`, built if missing) carry their true
settings. Each song is cut in two halves of ``segment_s`` seconds; both halves are mixed
with the same settings (the stored mix). For each half, its mix is the reference and
the *other* half's stems go in, as ``excerpt_s``-second excerpts (the estimator's
analysis length). The frozen estimator's outputs, its mix's style and the reference's
style are computed once per example (`cache_examples`); training then fits the
conditioner alone on the estimator's parameter loss against the true settings
(`mixdown.models.estimator.Estimator.parameter_loss`), each example both with its
reference and without one (the conditioner's ``null_reference``), in batches of songs
with equal track counts. The last ``val_songs`` songs are held out; the reported
validation figures are the parameter loss with the reference, without it, and of the
estimator alone; the epoch kept is the one with the lowest sum of the first two.

Run with ``mixdown train configs/estimator_reference.yaml``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mixdown.audio import load_audio
from mixdown.console import ConsoleTensors
from mixdown.errors import MixdownError
from mixdown.multitrack import INSTRUMENT_CLASSES, load_multitrack
from mixdown.params import ConsoleParams
from mixdown.style.conditioned import (
    ConditionerConfig,
    ConditionerInputs,
    ReferenceConditioner,
    conditioned_estimate,
    conditioner_inputs,
    save_conditioner,
)
from mixdown.style.features import ANALYSIS_RATE_HZ, excerpt_features
from mixdown.synth.synthetic import SynthConfig, build_dataset, song_name


@dataclass(frozen=True)
class StyleRecipe:
    """Recipe of the reference conditioner (``configs/estimator_reference.yaml``).

    Attributes:
        model: ``"style"``, the recipe kind.
        root: the synthetic dataset's folder.
        synth: what its songs are (rate must be `ANALYSIS_RATE_HZ`).
        songs: songs to build and use.
        val_songs: the last songs, held out for validation.
        segment_s: length of each half (reference, stems).
        excerpt_s: length of each stems excerpt.
        hidden: conditioner width.
        epochs, batch_size, lr, weight_decay, seed, threads: optimisation.
        estimator: the frozen estimator's weights (None: the shipped ``estimator.pt``).
        cache: file keeping the cached examples between runs of the same recipe (None: none).
        export: where to write the conditioner.
    """

    model: Literal["style"] = "style"
    root: str = "data/synth-reference"
    synth: SynthConfig = field(default_factory=lambda: SynthConfig(seed=14, sample_rate=ANALYSIS_RATE_HZ,
                                                                   duration_s=8.0, min_stems=2, max_stems=11))
    songs: int = 600
    val_songs: int = 40
    segment_s: float = 4.0
    excerpt_s: float = 2.0
    hidden: int = 64
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    build_workers: int = 2
    estimator: str | None = None
    cache: str | None = "runs/estimator_reference/examples.pt"
    export: str | None = "src/mixdown/weights/estimator_reference.pt"

    def __post_init__(self) -> None:
        if self.synth.sample_rate != ANALYSIS_RATE_HZ:
            raise MixdownError(f"synth.sample_rate must be {ANALYSIS_RATE_HZ} Hz (the estimator's)")
        if not 0 < self.val_songs < self.songs:
            raise MixdownError("val_songs must be in 1..songs-1")
        if 2 * self.segment_s > self.synth.duration_s or self.excerpt_s > self.segment_s:
            raise MixdownError("two segments must fit in a song and an excerpt in a segment")


@dataclass
class Example:
    """One cached training example (a reference half and excerpts of the other half)."""

    inputs: ConditionerInputs
    reference: torch.Tensor
    truth: ConsoleParams
    song: int


def _song_examples(base: Any, folder: Path, index: int, recipe: StyleRecipe) -> list[Example]:
    multitrack = load_multitrack(folder / "stems")
    truth = ConsoleParams.load(folder / "params.json").ordered_like(multitrack.names)
    mix, _ = load_audio(folder / "mix.wav")
    rate = ANALYSIS_RATE_HZ
    half, excerpt = round(recipe.segment_s * rate), round(recipe.excerpt_s * rate)
    audio = np.stack([np.broadcast_to(multitrack.stem_audio(t), (2, multitrack.num_frames))
                      for t in range(multitrack.num_tracks)])  # (tracks, 2, frames)
    stereo = torch.from_numpy(multitrack.stereo_mask())
    instruments = torch.tensor([INSTRUMENT_CLASSES.index(c) for c in multitrack.instruments])
    examples = []
    for ref_half, stem_half in ((0, 1), (1, 0)):
        reference = torch.from_numpy(mix[None, :, ref_half * half:(ref_half + 1) * half].copy())
        with torch.no_grad():
            style = excerpt_features(reference.float()).vector()[0]
        starts = range(stem_half * half, (stem_half + 1) * half - excerpt + 1, excerpt)
        stems = torch.from_numpy(np.stack([audio[:, :, s:s + excerpt] for s in starts]).astype(np.float32))
        count, tracks = stems.shape[0], stems.shape[1]
        mask = torch.ones(count, tracks, dtype=torch.bool)
        inputs = conditioner_inputs(base, stems, mask, instruments.expand(count, -1), stereo.expand(count, -1))
        for k in range(count):
            one = ConditionerInputs(*(getattr(inputs, f)[k:k + 1] for f in inputs.__dataclass_fields__))
            examples.append(Example(one, style[None], truth, index))
    return examples


def cache_examples(recipe: StyleRecipe, base: Any,
                   progress: Callable[[float, float], None] | None = None) -> list[Example]:
    """Every song's examples (see the module docstring), building missing songs first.

    With ``recipe.cache`` set, examples are read from that file when it was written for
    the same data settings, and written to it otherwise.
    """
    key = repr((recipe.root, recipe.synth, recipe.songs, recipe.segment_s, recipe.excerpt_s, recipe.estimator))
    cache = Path(recipe.cache) if recipe.cache is not None else None
    if cache is not None and cache.is_file():
        data = torch.load(cache, weights_only=False)  # our own file, written below
        if data.get("key") == key:
            return data["examples"]
    root = Path(recipe.root)
    build_dataset(root, recipe.songs, recipe.synth, workers=recipe.build_workers)
    examples: list[Example] = []
    for i in range(recipe.songs):
        examples += _song_examples(base, root / song_name(i), i, recipe)
        if progress is not None:
            progress(i + 1, recipe.songs)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "examples": examples}, cache)
    return examples


def _batches(examples: list[Example], size: int, rng: np.random.Generator | None) -> list[list[Example]]:
    """Batches of examples with equal track counts (shuffled when ``rng`` is given)."""
    by_tracks: dict[int, list[Example]] = {}
    for ex in examples:
        by_tracks.setdefault(ex.inputs.tracks.shape[1], []).append(ex)
    batches = []
    for group in by_tracks.values():
        order = rng.permutation(len(group)) if rng is not None else np.arange(len(group))
        batches += [[group[i] for i in order[j:j + size]] for j in range(0, len(group), size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _collate(batch: list[Example]) -> tuple[ConditionerInputs, torch.Tensor, ConsoleTensors]:
    inputs = ConditionerInputs(*(torch.cat([getattr(ex.inputs, f) for ex in batch])
                                 for f in ConditionerInputs.__dataclass_fields__))
    return inputs, torch.cat([ex.reference for ex in batch]), ConsoleTensors.from_params([ex.truth for ex in batch])


def batch_losses(base: Any, conditioner: ReferenceConditioner | None,
                 batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean parameter losses of a batch ``(with the examples' references, without a reference)``,
    from one collation; both are the estimator's alone when ``conditioner`` is None."""
    inputs, reference, truth = _collate(batch)
    with_reference, without = (
        base.parameter_loss(conditioned_estimate(base, conditioner, inputs, style), truth, inputs.mask).mean()
        for style in (reference, None))
    return with_reference, without


def evaluate(base: Any, conditioner: ReferenceConditioner | None, examples: list[Example]) -> tuple[float, float]:
    """Mean parameter losses over ``examples``, with and without the references (see `batch_losses`)."""
    with_reference, without, count = 0.0, 0.0, 0
    with torch.no_grad():
        for batch in _batches(examples, 64, None):
            losses = batch_losses(base, conditioner, batch)
            with_reference += float(losses[0]) * len(batch)
            without += float(losses[1]) * len(batch)
            count += len(batch)
    return with_reference / max(count, 1), without / max(count, 1)


def fit(recipe: StyleRecipe, progress: Callable[[float, float], None] | None = None,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cache the examples, train the conditioner, write it to ``recipe.export``.

    Returns:
        Figures: validation parameter loss without and with the reference, examples, time.
    """
    from mixdown.models import load_model_as
    from mixdown.weights import require

    began = time.perf_counter()
    if recipe.export is not None and not Path(recipe.export).parent.is_dir():
        raise MixdownError(f"{Path(recipe.export).parent}: folder for the weights does not exist")
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    base = load_model_as("estimator", recipe.estimator or require("estimator.pt")).model.eval()
    for p in base.parameters():
        p.requires_grad_(False)
    examples = cache_examples(recipe, base, None if progress is None else
                              lambda done, total: progress(0.5 * done / total, 1.0))
    cut = recipe.songs - recipe.val_songs
    train_set = [ex for ex in examples if ex.song < cut]
    val_set = [ex for ex in examples if ex.song >= cut]
    conditioner = ReferenceConditioner(ConditionerConfig(embed_dim=base.config.encoder.embed_dim,
                                                         hidden=recipe.hidden))
    optimiser = torch.optim.AdamW(conditioner.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    rng = np.random.default_rng(recipe.seed)
    estimator_only = evaluate(base, None, val_set)[0]
    scores = evaluate(base, conditioner, val_set)
    best = (scores, {k: v.clone() for k, v in conditioner.state_dict().items()}, 0)
    steps_per_epoch = len(_batches(train_set, recipe.batch_size, None))
    total_steps = max(1, recipe.epochs * steps_per_epoch)
    step = 0
    for epoch in range(1, recipe.epochs + 1):
        conditioner.train()
        for batch in _batches(train_set, recipe.batch_size, rng):
            lr = recipe.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            for group in optimiser.param_groups:
                group["lr"] = lr
            optimiser.zero_grad()
            sum(batch_losses(base, conditioner, batch)).backward()
            optimiser.step()
            step += 1
        conditioner.eval()
        scores = evaluate(base, conditioner, val_set)
        if sum(scores) < sum(best[0]):
            best = (scores, {k: v.clone() for k, v in conditioner.state_dict().items()}, epoch)
        if log is not None:
            log(f"epoch {epoch}: val parameter loss with reference {scores[0]:.4f}, without {scores[1]:.4f} "
                f"(estimator alone {estimator_only:.4f})")
        if progress is not None:
            progress(0.5 + 0.5 * epoch / recipe.epochs, 1.0)
    conditioner.load_state_dict(best[1])
    info = {"val_param_loss_estimator": round(estimator_only, 5),
            "val_param_loss_with_reference": round(best[0][0], 5),
            "val_param_loss_without_reference": round(best[0][1], 5),
            "best_epoch": best[2], "train_examples": len(train_set), "val_examples": len(val_set),
            "seconds": round(time.perf_counter() - began, 1)}
    if recipe.export is not None:
        save_conditioner(conditioner.eval(), recipe.export, info)
    return info
