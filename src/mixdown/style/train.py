"""Training the reference conditioner (`mixdown.style.conditioned`) the way Diff-MST trains.

Data: synthetic songs (`mixdown.synth.synthetic`, built if missing) carry their true
settings. The base (``base``: the shipped estimator or the DMC's controller,
`mixdown.style.conditioned.load_base`) stays frozen. Each song is cut in two halves of
``segment_s`` seconds; both halves are mixed with the same settings (the stored mix). For
each half, its mix is the reference and the *other* half's stems go in, as
``excerpt_s``-second excerpts (the base's analysis length). The frozen base's outputs,
its mix's style and the reference's style are computed once per example
(`cache_examples`); training then fits the conditioner alone on the parameter loss
against the true settings (`mixdown.models.estimator.Estimator.parameter_loss`), each
example both with its reference and without one (the conditioner's ``null_reference``),
in batches of songs with equal track counts. The last ``val_songs`` songs are held out;
the reported validation figures are the parameter loss with the reference, without it,
and of the base alone; the epoch kept is the one with the lowest sum of the first two.

Then, for ``audio_epochs``, the audio stage: as Diff-MST, the loss is against the stems
half's own mix. Each excerpt is rendered with the corrected settings
(`mixdown.console.render_tensor`; the EQs and compressors run without gradients
unless the conditioner corrects their settings) and compared with the same excerpt
of the song's mix, brought to the render's loudness: `mixdown.losses.StereoLoss` plus
``feature_weight`` times the style distance of the two (`mixdown.style.loss`), plus
``audio_param_weight`` times the parameter loss, which keeps the settings readable where
the audio cannot tell them apart. Validation and the epoch kept follow the same sums,
with the audio losses.

Real songs (``real_root``: a folder of ``mixdown data lmms``, the producers' own mixes)
join the audio stage. They state no EQ, compressor or reverb settings, so they have no
parameter loss: each is cut into adjacent pairs of ``segment_s`` halves, one half's mix
the reference and the other's stems in, as above, and the loss is the audio one against
the producer's mix (resampled to `ANALYSIS_RATE_HZ`). The last ``real_val_songs`` of them
(by name) are held out, and then the audio stage keeps its epoch by them alone: the stage
is there to learn from real mixes; the synthetic songs beside them keep the settings
readable (their parameter loss). ``init`` starts from a trained conditioner, so a recipe
with ``epochs: 0`` adds the real-song stage to one trained on synthetic songs.

Run with ``mixdown train configs/estimator_reference.yaml`` (``configs/dmc_reference.yaml``
for the DMC's; ``configs/estimator_reference_real.yaml`` for the real-song stage).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mixdown.audio import load_audio, resample
from mixdown.config import config_to_dict
from mixdown.console import ConsoleTensors, render_tensor
from mixdown.dsp.loudness import integrated_loudness
from mixdown.errors import MixdownError
from mixdown.losses import StereoLoss
from mixdown.multitrack import INSTRUMENT_CLASSES, load_multitrack
from mixdown.params import ConsoleParams
from mixdown.style.conditioned import (
    STRIP_OUTPUTS,
    ConditionerConfig,
    ConditionerInputs,
    ReferenceConditioner,
    conditioned_estimate,
    conditioner_inputs,
    load_base,
    load_conditioner,
    save_conditioner,
)
from mixdown.style.features import ANALYSIS_RATE_HZ, excerpt_features, style_features
from mixdown.style.loss import style_distance
from mixdown.synth.synthetic import SynthConfig, build_dataset, song_name


@dataclass(frozen=True)
class StyleRecipe:
    """Recipe of a reference conditioner (``configs/estimator_reference.yaml``, ``configs/dmc_reference.yaml``).

    Attributes:
        model: ``"style"``, the recipe kind.
        base: the parameter predictor the conditioner corrects (`mixdown.style.conditioned.BASES`).
        root: the synthetic dataset's folder.
        synth: what its songs are (rate must be `ANALYSIS_RATE_HZ`).
        songs: songs to build and use.
        val_songs: the last songs, held out for validation.
        segment_s: length of each half (reference, stems).
        excerpt_s: length of each stems excerpt.
        hidden: conditioner width.
        corrected: the base's outputs the conditioner corrects (`ConditionerConfig.corrected`).
        epochs, batch_size, lr, weight_decay, seed, threads: optimisation.
        audio_epochs: epochs of the audio stage after the parameter stage (0: none).
        audio_songs: training songs the audio stage uses, the first ones (None: all); it
            renders every example, so an epoch costs far more than one of the first stage.
        audio_lr: its peak learning rate (cosine decay, as the first stage).
        feature_weight: weight of the style distance in the audio stage's loss.
        audio_param_weight: weight of the parameter loss in the audio stage's loss.
        base_weights: the frozen base's weights (None: the shipped ``estimator.pt`` or ``dmc.pt``).
        init: a conditioner checkpoint to start from (same ``base``, ``hidden`` and
            ``corrected``), or None for a fresh one.
        real_root: real songs for the audio stage (a ``mixdown data lmms`` folder), or None.
        real_projects: LMMS projects built into ``real_root`` first where missing (``mixdown
            data lmms``; its default excerpt and rate); only their songs are used (empty: every
            song in ``real_root``).
        real_val_songs: the last real songs (by name) held out for validation.
        real_excerpts: stems excerpts per half of a real song, the first ones (None: every one
            that fits); the audio stage renders each, so they set its cost.
        cache: file keeping the cached examples between runs of the same recipe (None: none).
        export: where to write the conditioner.
    """

    model: Literal["style"] = "style"
    base: Literal["estimator", "dmc"] = "estimator"
    root: str = "data/synth-reference"
    synth: SynthConfig = field(default_factory=lambda: SynthConfig(seed=14, sample_rate=ANALYSIS_RATE_HZ,
                                                                   duration_s=8.0, min_stems=2, max_stems=11))
    songs: int = 600
    val_songs: int = 40
    segment_s: float = 4.0
    excerpt_s: float = 2.0
    hidden: int = 64
    corrected: tuple[str, ...] = ConditionerConfig.corrected
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    audio_epochs: int = 0
    audio_songs: int | None = None
    audio_lr: float = 3e-4
    feature_weight: float = 1.0
    audio_param_weight: float = 1.0
    build_workers: int = 2
    base_weights: str | None = None
    init: str | None = None
    real_root: str | None = None
    real_projects: tuple[str, ...] = ()
    real_val_songs: int = 0
    real_excerpts: int | None = None
    cache: str | None = "runs/estimator_reference/examples.pt"
    export: str | None = "src/mixdown/weights/estimator_reference.pt"

    def __post_init__(self) -> None:
        if self.synth.sample_rate != ANALYSIS_RATE_HZ:
            raise MixdownError(f"synth.sample_rate must be {ANALYSIS_RATE_HZ} Hz (the bases')")
        if not 0 < self.val_songs < self.songs:
            raise MixdownError("val_songs must be in 1..songs-1")
        if 2 * self.segment_s > self.synth.duration_s or self.excerpt_s > self.segment_s:
            raise MixdownError("two segments must fit in a song and an excerpt in a segment")
        if self.audio_epochs < 0 or min(self.audio_lr, self.feature_weight, self.audio_param_weight) < 0:
            raise MixdownError("audio_epochs, audio_lr, feature_weight and audio_param_weight must be >= 0")
        if self.audio_songs is not None and not 0 < self.audio_songs <= self.songs - self.val_songs:
            raise MixdownError("audio_songs must be in 1..songs-val_songs")
        if self.real_root is not None and self.audio_epochs == 0:
            raise MixdownError("real songs (real_root) train in the audio stage: set audio_epochs")
        if self.real_val_songs < 0 or (self.real_projects and self.real_val_songs >= len(self.real_projects)):
            raise MixdownError("real_val_songs must be in 0..len(real_projects)-1")
        if self.real_excerpts is not None and self.real_excerpts < 1:
            raise MixdownError("real_excerpts must be >= 1 (or null for all)")
        if self.real_projects and self.real_root is None:
            raise MixdownError("real_projects are built into real_root: set it")
        try:
            self.conditioner_config()
        except ValueError as exc:
            raise MixdownError(str(exc)) from None

    def conditioner_config(self) -> ConditionerConfig:
        """The conditioner this recipe trains."""
        return ConditionerConfig(base=self.base, hidden=self.hidden, corrected=self.corrected)


@dataclass
class Example:
    """One cached training example: a reference half's style and an excerpt of the other half.

    Attributes:
        inputs: the conditioner's inputs for the excerpt's stems (batch 1).
        reference: ``(1, STYLE_DIM)`` the reference half's style.
        truth: the song's settings, in the stems' order (None for a real song: unknown).
        song: the song's index (synthetic songs: in ``root``; real ones: in ``folder``'s dataset).
        start: the excerpt's first frame in the song, at `ANALYSIS_RATE_HZ`.
        folder: a real song's folder (None: synthetic song ``song`` of the recipe's ``root``).
        rate: the rate of that song's files.
    """

    inputs: ConditionerInputs
    reference: torch.Tensor
    truth: ConsoleParams | None
    song: int
    start: int
    folder: str | None = None
    rate: int = ANALYSIS_RATE_HZ


def _stereo_at_analysis_rate(stems: list[np.ndarray], rate: int) -> np.ndarray:
    """Stems ``(channels, frames)`` at ``rate`` as ``(tracks, 2, frames')`` at `ANALYSIS_RATE_HZ`:
    each resampled at its own channel count (a mono stem once), then broadcast to two channels."""
    resampled = [resample(stem, rate, ANALYSIS_RATE_HZ) for stem in stems]
    return np.stack([np.broadcast_to(stem, (2, stem.shape[-1])) for stem in resampled])


def _song_examples(base: Any, folder: Path, index: int, recipe: StyleRecipe, real: bool = False) -> list[Example]:
    """The examples of one song: adjacent halves ``(0, 1), (2, 3), ...`` of ``segment_s``, each the
    other's reference. A real song (``real``) has no settings (truth None) and any rate."""
    multitrack = load_multitrack(folder / "stems")
    truth = None if real else ConsoleParams.load(folder / "params.json").ordered_like(multitrack.names)
    mix, rate = load_audio(folder / "mix.wav")
    half, excerpt = round(recipe.segment_s * ANALYSIS_RATE_HZ), round(recipe.excerpt_s * ANALYSIS_RATE_HZ)
    audio = _stereo_at_analysis_rate([multitrack.stem_audio(t) for t in range(multitrack.num_tracks)], rate)
    mix = resample(mix, rate, ANALYSIS_RATE_HZ)
    stereo = torch.from_numpy(multitrack.stereo_mask())
    instruments = torch.tensor([INSTRUMENT_CLASSES.index(c) for c in multitrack.instruments])
    examples = []
    pairs = [(a, a + 1) for a in range(0, min(audio.shape[-1], mix.shape[-1]) // half - 1, 2)]
    for ref_half, stem_half in (order for a, b in pairs for order in ((a, b), (b, a))):
        reference = torch.from_numpy(mix[None, :, ref_half * half:(ref_half + 1) * half].copy())
        with torch.no_grad():
            style = excerpt_features(reference.float()).vector()[0]
        starts = range(stem_half * half, (stem_half + 1) * half - excerpt + 1, excerpt)
        if real and recipe.real_excerpts is not None:
            starts = starts[:recipe.real_excerpts]
        stems = torch.from_numpy(np.stack([audio[:, :, s:s + excerpt] for s in starts]).astype(np.float32))
        count, tracks = stems.shape[0], stems.shape[1]
        mask = torch.ones(count, tracks, dtype=torch.bool)
        inputs = conditioner_inputs(base, stems, mask, instruments.expand(count, -1), stereo.expand(count, -1))
        for k, start in enumerate(starts):
            one = ConditionerInputs(*(getattr(inputs, f)[k:k + 1] for f in inputs.__dataclass_fields__))
            examples.append(Example(one, style[None], truth, index, start,
                                    str(folder) if real else None, rate))
    return examples


EXAMPLES_FORMAT = 2
"""Version of the cached examples' layout (a cache of another version is rebuilt)."""


def cache_examples(recipe: StyleRecipe, base: Any,
                   progress: Callable[[float, float], None] | None = None) -> list[Example]:
    """Every song's examples (see the module docstring), building missing songs first.

    With ``recipe.cache`` set, examples are read from that file when it was written for
    the same data settings, and written to it otherwise.
    """
    key = repr((EXAMPLES_FORMAT, recipe.root, recipe.synth, recipe.songs, recipe.segment_s, recipe.excerpt_s,
                recipe.base, recipe.base_weights))
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


def real_songs(recipe: StyleRecipe) -> list[Path]:
    """The real songs' folders, by name: those of ``real_projects`` (built first where missing),
    or without them every song in ``real_root``.

    Raises:
        MixdownError: without LMMS where songs must be built, or with no song in ``real_root``.
    """
    root = Path(recipe.real_root)
    if recipe.real_projects:
        from mixdown.data.lmms import build_dataset, song_name

        build_dataset(recipe.real_projects, root, workers=recipe.build_workers)
        candidates = [root / song_name(Path(p)) for p in recipe.real_projects]
    else:
        candidates = list(root.iterdir()) if root.is_dir() else []
    folders = sorted(p for p in candidates if (p / "stems").is_dir() and (p / "mix.wav").is_file())
    if len(folders) <= recipe.real_val_songs:
        raise MixdownError(f"{root}: {len(folders)} real songs, fewer than real_val_songs + 1")
    return folders


def real_examples(recipe: StyleRecipe, base: Any) -> tuple[list[Example], list[Example]]:
    """The real songs' examples ``(training, validation)`` (see the module docstring)."""
    folders = real_songs(recipe)
    cut = len(folders) - recipe.real_val_songs
    train, val = [], []
    for i, folder in enumerate(folders):
        (train if i < cut else val).extend(_song_examples(base, folder, i, recipe, real=True))
    return train, val


def _batches(examples: list[Example], size: int, rng: np.random.Generator | None) -> list[list[Example]]:
    """Batches of examples with equal track counts, synthetic and real apart (shuffled when ``rng`` is given)."""
    by_tracks: dict[tuple[int, bool], list[Example]] = {}
    for ex in examples:
        by_tracks.setdefault((ex.inputs.tracks.shape[1], ex.truth is None), []).append(ex)
    batches = []
    for group in by_tracks.values():
        order = rng.permutation(len(group)) if rng is not None else np.arange(len(group))
        batches += [[group[i] for i in order[j:j + size]] for j in range(0, len(group), size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _collate(batch: list[Example]) -> tuple[ConditionerInputs, torch.Tensor, ConsoleTensors | None]:
    """Inputs, references and true settings (None for real songs) of a batch from `_batches`."""
    inputs = ConditionerInputs(*(torch.cat([getattr(ex.inputs, f) for ex in batch])
                                 for f in ConditionerInputs.__dataclass_fields__))
    truth = None if batch[0].truth is None else ConsoleTensors.from_params([ex.truth for ex in batch])
    return inputs, torch.cat([ex.reference for ex in batch]), truth


def batch_losses(base: Any, conditioner: ReferenceConditioner | None,
                 batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean parameter losses of a batch ``(with the examples' references, without a reference)``,
    from one collation; both are the base's alone when ``conditioner`` is None."""
    inputs, reference, truth = _collate(batch)
    with_reference, without = (
        base.parameter_loss(conditioned_estimate(base, conditioner, inputs, style), truth, inputs.mask).mean()
        for style in (reference, None))
    return with_reference, without


def excerpt_audio(recipe: StyleRecipe, batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stems and the mix of each example's excerpt, read from its song's files.

    Returns:
        ``(stems, stereo, mix)``: ``(batch, tracks, 2, samples)``, ``(batch, tracks)`` bool and
        ``(batch, 2, samples)``, at `ANALYSIS_RATE_HZ` (a real song's excerpt resampled).
    """
    length = round(recipe.excerpt_s * ANALYSIS_RATE_HZ)
    stems, stereo, mixes = [], [], []
    with warnings.catch_warnings():  # a stem's level warnings were shown when its song's examples were made
        warnings.simplefilter("ignore", UserWarning)
        songs: dict[Path, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}  # stems, stereo mask, mix
        for ex in batch:
            folder = Path(ex.folder) if ex.folder is not None else Path(recipe.root) / song_name(ex.song)
            if folder not in songs:
                multitrack = load_multitrack(folder / "stems")
                songs[folder] = ([multitrack.stem_audio(t) for t in range(multitrack.num_tracks)],
                                 multitrack.stereo_mask(), load_audio(folder / "mix.wav")[0])
            song_stems, stereo_mask, song_mix = songs[folder]
            start, frames = (round(v * ex.rate / ANALYSIS_RATE_HZ) for v in (ex.start, length))
            window = slice(start, start + frames)
            stems.append(_stereo_at_analysis_rate([stem[..., window] for stem in song_stems], ex.rate)[..., :length])
            stereo.append(stereo_mask)
            mixes.append(resample(song_mix[:, window], ex.rate, ANALYSIS_RATE_HZ)[:, :length])
    return (torch.from_numpy(np.stack(stems).astype(np.float32)), torch.from_numpy(np.stack(stereo)),
            torch.from_numpy(np.stack(mixes).astype(np.float32)))


def audio_batch_losses(base: Any, conditioner: ReferenceConditioner, recipe: StyleRecipe, stereo_loss: StereoLoss,
                       batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean audio-stage losses of a batch ``(with the examples' references, without a reference)``
    (see the module docstring; a batch of real songs has no parameter loss)."""
    inputs, reference, truth = _collate(batch)
    stems, stereo, mix = excerpt_audio(recipe, batch)
    mix_lufs = integrated_loudness(mix, ANALYSIS_RATE_HZ)
    strip_grad = any(name in STRIP_OUTPUTS for name in conditioner.config.corrected)
    losses = []
    for style in (reference, None):
        estimate = conditioned_estimate(base, conditioner, inputs, style)
        output = render_tensor(stems, estimate.params, stereo, ANALYSIS_RATE_HZ, strip_grad=strip_grad)
        with torch.no_grad():
            lift_db = integrated_loudness(output, ANALYSIS_RATE_HZ) - mix_lufs
            target = mix * torch.pow(10.0, torch.nan_to_num(lift_db, posinf=0.0, neginf=0.0) / 20.0)[:, None, None]
        loss = stereo_loss(output, target)
        if recipe.feature_weight > 0:
            loss = loss + recipe.feature_weight * style_distance(style_features(output), style_features(target))
        if recipe.audio_param_weight > 0 and truth is not None:
            loss = loss + recipe.audio_param_weight * base.parameter_loss(estimate, truth, inputs.mask).mean()
        losses.append(loss)
    return losses[0], losses[1]


BatchLosses = Callable[[list[Example]], tuple[torch.Tensor, torch.Tensor]]
"""Mean losses of a batch, with the examples' references and without a reference."""


def evaluate(losses: BatchLosses, examples: list[Example], batch_size: int = 64) -> tuple[float, float]:
    """Mean ``losses`` over ``examples``, with and without the references, without gradients."""
    with_reference, without, count = 0.0, 0.0, 0
    with torch.no_grad():
        for batch in _batches(examples, batch_size, None):
            values = losses(batch)
            with_reference += float(values[0]) * len(batch)
            without += float(values[1]) * len(batch)
            count += len(batch)
    return with_reference / max(count, 1), without / max(count, 1)


def train_stage(conditioner: ReferenceConditioner, losses: BatchLosses, train_set: list[Example],
                val_set: list[Example], epochs: int, lr: float, recipe: StyleRecipe, name: str,
                progress: Callable[[int], None] | None = None,
                log: Callable[[str], None] | None = None) -> tuple[tuple[float, float], int]:
    """Train ``conditioner`` on the sum of ``losses`` (AdamW, cosine decay from ``lr``) and load the
    epoch with the lowest validation sum (epoch 0: as it came).

    Returns:
        The kept epoch's validation losses ``(with reference, without)`` and its number.
    """
    optimiser = torch.optim.AdamW(conditioner.parameters(), lr=lr, weight_decay=recipe.weight_decay)
    rng = np.random.default_rng(recipe.seed)
    conditioner.eval()
    scores = evaluate(losses, val_set, recipe.batch_size)
    best = (scores, {k: v.clone() for k, v in conditioner.state_dict().items()}, 0)
    if log is not None:
        log(f"{name} stage, before: val loss with reference {scores[0]:.4f}, without {scores[1]:.4f}")
    total_steps = max(1, epochs * len(_batches(train_set, recipe.batch_size, None)))
    step = 0
    for epoch in range(1, epochs + 1):
        conditioner.train()
        for batch in _batches(train_set, recipe.batch_size, rng):
            for group in optimiser.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            optimiser.zero_grad()
            sum(losses(batch)).backward()
            optimiser.step()
            step += 1
        conditioner.eval()
        scores = evaluate(losses, val_set, recipe.batch_size)
        if sum(scores) < sum(best[0]):
            best = (scores, {k: v.clone() for k, v in conditioner.state_dict().items()}, epoch)
        if log is not None:
            log(f"{name} stage, epoch {epoch}: val loss with reference {scores[0]:.4f}, without {scores[1]:.4f}")
        if progress is not None:
            progress(epoch)
    conditioner.load_state_dict(best[1])
    return best[0], best[2]


def initial_conditioner(recipe: StyleRecipe) -> ReferenceConditioner:
    """A fresh conditioner of the recipe's configuration, or ``init``'s weights.

    Raises:
        MixdownError: ``init`` unreadable or of another configuration.
    """
    config = recipe.conditioner_config()
    if recipe.init is None:
        return ReferenceConditioner(config)
    conditioner = load_conditioner(recipe.init)
    if conditioner.config != config:
        raise MixdownError(f"{recipe.init}: a conditioner of {conditioner.config}, not of the recipe's {config}")
    return conditioner


def fit(recipe: StyleRecipe, progress: Callable[[float, float], None] | None = None,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cache the examples, train the conditioner (both stages), write it to ``recipe.export``.

    Returns:
        Figures: validation losses of each stage with and without the reference, examples,
        time, and the recipe (seeds included); the checkpoint's ``info`` holds the same.
    """
    began = time.perf_counter()
    if recipe.export is not None and not Path(recipe.export).parent.is_dir():
        raise MixdownError(f"{Path(recipe.export).parent}: folder for the weights does not exist")
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    base = load_base(recipe.base, recipe.base_weights)
    examples = cache_examples(recipe, base, None if progress is None else
                              lambda done, total: progress(0.4 * done / total, 1.0))
    cut = recipe.songs - recipe.val_songs
    train_set = [ex for ex in examples if ex.song < cut]
    val_set = [ex for ex in examples if ex.song >= cut]
    conditioner = initial_conditioner(recipe)
    epochs = recipe.epochs + recipe.audio_epochs
    report = None if progress is None else lambda offset: lambda epoch: progress(0.4 + 0.6 * (offset + epoch) / epochs,
                                                                                 1.0)
    base_only = evaluate(partial(batch_losses, base, None), val_set)[0]
    if log is not None:
        log(f"{recipe.base} alone: val parameter loss {base_only:.4f}")
    param_scores, param_epoch = train_stage(conditioner, partial(batch_losses, base, conditioner), train_set,
                                            val_set, recipe.epochs, recipe.lr, recipe, "parameter",
                                            None if report is None else report(0), log)
    info: dict[str, Any] = {"base": recipe.base, "val_param_loss_base": round(base_only, 5),
                            "val_param_loss_with_reference": round(param_scores[0], 5),
                            "val_param_loss_without_reference": round(param_scores[1], 5),
                            "best_epoch": param_epoch}
    if recipe.audio_epochs > 0:
        audio = partial(audio_batch_losses, base, conditioner, recipe, StereoLoss())
        audio_set = [ex for ex in train_set if recipe.audio_songs is None or ex.song < recipe.audio_songs]
        audio_val = val_set
        if recipe.real_root is not None:
            real_train, real_val = real_examples(recipe, base)
            audio_set += real_train
            audio_val = real_val or val_set
            info |= {"real_train_examples": len(real_train), "real_val_examples": len(real_val)}
        audio_scores, audio_epoch = train_stage(conditioner, audio, audio_set, audio_val, recipe.audio_epochs,
                                                recipe.audio_lr, recipe, "audio",
                                                None if report is None else report(recipe.epochs), log)
        info |= {"val_audio_loss_with_reference": round(audio_scores[0], 5),
                 "val_audio_loss_without_reference": round(audio_scores[1], 5), "best_audio_epoch": audio_epoch}
    info |= {"train_examples": len(train_set), "val_examples": len(val_set),
             "seconds": round(time.perf_counter() - began, 1), "recipe": config_to_dict(recipe)}
    if recipe.export is not None:
        save_conditioner(conditioner.eval(), recipe.export, info)
    return info
