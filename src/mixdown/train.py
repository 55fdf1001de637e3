"""Training recipes of every trained mixer: the one entry, Lightning wrappers, data, checkpoints, export.

One command retrains a shipped model from scratch, whatever it is::

    mixdown train configs/estimator.yaml                    # also dmc.yaml, waveunet.yaml
    mixdown train configs/estimator.yaml --devices 2 --strategy ddp --max-steps 500 --out runs/x
    mixdown train configs/estimator.yaml --resume last      # or --resume runs/x/checkpoints/last.ckpt
    mixdown train configs/estimator.yaml --export-only runs/x/checkpoints/last.ckpt
    mixdown train configs/emulator.yaml                     # the DMC's emulator pre-training (Lightning too)
    mixdown train configs/forest.yaml                       # the random forests (scikit-learn)

A recipe's ``model:`` key picks its kind (`load_recipe`): ``emulator`` reads an
`mixdown.models.emulator.EmulatorTrainConfig` and trains `EmulatorSystem`; ``forest``
reads a `mixdown.mixers.forest.ForestRecipe` and runs `mixdown.mixers.forest.fit`;
any other registered model (default ``estimator``) reads a `TrainConfig` and trains
`MixingSystem`. Every file goes through the one loader, `mixdown.config.load_config`.
The library prints nothing: `train` reports through ``progress(done, total)`` and
``log(line)`` callbacks, which ``mixdown train`` (`mixdown.commands.train`) supplies.

What a run of a `TrainConfig` does (`train`):

1. Reads the recipe (YAML; unknown keys are errors naming them).
2. Builds the synthetic dataset if the recipe has a ``data.synth`` section and songs
   are missing (`mixdown.synth.synthetic.build_dataset`: resumable, refuses a folder
   made with other settings), on the first process of each machine only.
3. Seeds everything (``lightning.seed_everything``) and trains `MixingSystem` with
   Lightning: random training segments (`mixdown.data.songs.SongDataset`, per-epoch
   offsets, shuffled track order), validation every ``val_every_steps`` steps on a
   fixed held-out split (sequential segments) with the stereo loss
   (`mixdown.losses.StereoLoss`), logged beside the losses of baseline mixers
   (``baselines``: mono and random by default, rendered by the console from the same
   segments), CSV logs (and TensorBoard when installed), progress and a line per
   validation through the callbacks, and checkpoints of the best and the last step
   (``OUT/checkpoints``; resume with ``--resume``); training ends with a validation.
   The recipe (seeds included) is saved in every checkpoint and beside them as
   ``OUT/train.yaml``. Multi-device / multi-node: ``devices``, ``num_nodes``,
   ``strategy`` (e.g. ``ddp``; on CPUs Lightning uses the gloo backend).
4. Exports the best checkpoint's model as the small plain-dict weights file
   (`mixdown.models.save_model`) to ``export`` (e.g. ``src/mixdown/weights/estimator.pt``).

Losses: ``stereo_weight * StereoLoss(mix, target) + param_weight * parameter_loss``,
the second for parametric models on data with true settings (synthetic songs'
``params.json``); the first ``audio_from_step`` steps use the parameter loss alone and
skip rendering, which is far cheaper (a curriculum: settings first, then the mix).

The emulator's recipe runs the same way (steps 3-4) with its own data and loss
(`EmulatorSystem`: `mixdown.models.emulator.StripPairs` rendered by the real channel
strip, `EmulatorLoss`, AdamW with a one-cycle schedule; ``val/emulator_loss`` beside
``val/identity_loss``, the dry input's); its export is what ``configs/dmc.yaml`` loads.

Extension points, for new models (DMC, Mix-Wave-U-Net, ...):

* Write the model as a plain ``nn.Module`` with a frozen dataclass config (with a
  ``sample_rate``) in ``mixdown/models/NAME.py`` and add it to
  `mixdown.models.MODELS`. ``forward(stems, mask, instruments, stereo)`` must return
  an object with ``.mix (batch, 2, samples)``; that is all `MixingSystem` needs.
* Parametric models may add ``estimate(stems, mask, instruments)`` (returning an
  object ``parameter_loss`` accepts; ``forward``'s output carries it as ``.estimate``)
  and ``parameter_loss(estimate, target: ConsoleTensors, mask) -> (batch,)``; then
  ``param_weight`` and ``audio_from_step`` work for them.
* A model with its own training needs (extra loss terms) subclasses `MixingSystem`
  and overrides `MixingSystem.losses`; `train` takes the system class as an argument.
* A model with its own data and loss altogether (as the emulator) gets a recipe
  dataclass whose ``model`` field is a ``Literal`` of its name, a LightningModule and
  data module here (`EmulatorSystem`, `EmulatorData`), and a branch in `recipe_class`
  and `train`; the Trainer, checkpoints, export and the command are shared.
* Recipes are YAML files of `TrainConfig` fields; ``model_config`` holds the model's
  own config fields; datasets of any layout in `mixdown.data.folder.LAYOUTS` can be
  combined in ``data.sources``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import yaml

from mixdown.audio import atomic_write_text
from mixdown.config import (
    config_from_dict,
    config_to_dict,
    load_config,
    read_config_file,
)
from mixdown.console import ConsoleTensors
from mixdown.data.collate import MultitrackBatch, MultitrackCollate
from mixdown.data.songs import DatasetConfig, SegmentMeta, SongDataset
from mixdown.errors import MixdownError
from mixdown.losses import StereoLoss, StereoLossConfig
from mixdown.models import MODELS, build_model, model_from_checkpoint, save_model
from mixdown.models.emulator import (
    Emulator,
    EmulatorLoss,
    EmulatorTrainConfig,
    RenderedCollate,
    pretraining_pairs,
    rendered_batches,
)
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack
from mixdown.params import ConsoleParams, default_channel
from mixdown.synth.synthetic import SynthConfig, build_dataset

try:
    import lightning as L
except ImportError as exc:  # pragma: no cover - the train extra is missing
    raise MixdownError("training needs Lightning: pip install 'mixdown[train]'") from exc

VAL_LOSS = "val/stereo_loss"
EMULATOR_VAL_LOSS = "val/emulator_loss"
CONFIG_FILE = "train.yaml"

SYSTEM_MODELS = tuple(name for name in MODELS if name != "emulator")
"""Models trained by `MixingSystem` from a `TrainConfig` (the emulator has its own recipe)."""

RECIPE_KINDS = (*SYSTEM_MODELS, "emulator", "forest", "producer", "style")
"""Values of a recipe's ``model:`` key (see `load_recipe`)."""


@dataclass(frozen=True)
class DataSource:
    """One dataset of a recipe.

    Attributes:
        root: Its folder (relative to the working directory).
        layout: ``folder`` (also the synthetic layout and real LMMS songs built by
            ``mixdown data lmms``), ``enst``, ``medleydb`` or ``musdb``.
        songs: Only these songs (by folder name), e.g. the training folds of a
            cross-validation on real songs; None for every song. The named songs are then
            split into train / val as the recipe says.
    """

    root: str
    layout: Literal["folder", "enst", "medleydb", "musdb"] = "folder"
    songs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DataConfig:
    """Where training data comes from and how it is cut.

    Attributes:
        sources: The datasets, combined; each is split into train / val by song.
        synth: If set, the first source is a synthetic dataset built with these
            settings when songs are missing.
        synth_songs: Songs in that synthetic dataset.
        build_workers: Processes building it.
        segment_s: Training and validation segment length in seconds.
        segments_per_epoch: Training segments per epoch and source (default: one per song).
        val_segments: Validation segments (evenly spread over the val split's
            sequential segments; fewer if there are fewer).
        val_fraction: Share of each source's songs held out for validation.
        test_fraction: Share held out for testing (never trained or validated on).
        split_seed: Seed of the song split.
        max_tracks: Leave out songs with more stems.
        stem_lufs: Loudness-normalise stems to this LUFS, or ``None`` (levels as recorded).
    """

    sources: tuple[DataSource, ...] = (DataSource("data/synthetic"),)
    synth: SynthConfig | None = None
    synth_songs: int = 200
    build_workers: int = 1
    segment_s: float = 2.0
    segments_per_epoch: int | None = None
    val_segments: int = 32
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    max_tracks: int | None = 16
    stem_lufs: float | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("at least one data source is needed")
        if self.segment_s <= 0 or self.synth_songs < 1 or self.build_workers < 1 or self.val_segments < 1:
            raise ValueError("segment_s, synth_songs, build_workers and val_segments must be positive")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe (YAML: ``configs/NAME.yaml``; paths relative to the working directory).

    Attributes:
        model: Registered model name (`mixdown.models.MODELS`).
        model_config: Fields of that model's config; omitted ones keep their defaults.
        data: Datasets and segmenting.
        batch_size: Segments per step and device.
        lr: Peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up from 0 to ``lr``.
        min_lr_fraction: Cosine decay from ``lr`` to ``lr * min_lr_fraction`` at ``max_steps``.
        max_steps: Optimisation steps.
        grad_clip: Gradient-norm clip, or ``None``.
        seed: Seeds model init, data order and offsets.
        loss: The stereo loss's settings.
        stereo_weight: Weight of the stereo loss.
        param_weight: Weight of the parameter loss (parametric models on data with true settings).
        audio_from_step: Before this step, train on the parameter loss alone (no rendering).
        val_every_steps: Validate (and checkpoint) every this many steps.
        baselines: Mixers whose stereo loss on the validation segments is logged for
            reference (``val/<name>_loss``), rendered by the console.
        log_every_steps: Logging interval.
        num_workers: DataLoader worker processes per device.
        precision: Lightning precision, e.g. ``32-true`` or ``bf16-mixed``.
        accelerator: ``cpu``, ``gpu`` or ``auto``.
        devices: Devices per node.
        num_nodes: Machines.
        strategy: Lightning strategy: ``auto``, ``ddp``, ``ddp_spawn``, ...
        threads: torch threads per process (0 keeps torch's default).
        out: Run folder: logs, checkpoints, ``train.yaml``.
        export: Where to write the shipped weights after training, or ``None``.
    """

    model: str = "estimator"
    model_config: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    min_lr_fraction: float = 0.1
    max_steps: int = 1000
    grad_clip: float | None = 1.0
    seed: int = 0
    loss: StereoLossConfig = field(default_factory=StereoLossConfig)
    stereo_weight: float = 1.0
    param_weight: float = 0.0
    audio_from_step: int = 0
    val_every_steps: int = 100
    baselines: tuple[str, ...] = ("mono", "random")
    log_every_steps: int = 10
    num_workers: int = 0
    precision: str = "32-true"
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int = 0
    out: str = "runs/estimator"
    export: str | None = None

    def __post_init__(self) -> None:
        if self.model in ("emulator", "forest", "producer"):
            raise ValueError(f"model {self.model!r} has a recipe of its own (read it with load_recipe)")
        if self.model not in SYSTEM_MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(RECIPE_KINDS)}")
        positive = {"batch_size": self.batch_size, "max_steps": self.max_steps, "devices": self.devices,
                    "num_nodes": self.num_nodes, "val_every_steps": self.val_every_steps,
                    "log_every_steps": self.log_every_steps}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.num_workers < 0 or self.threads < 0:
            raise ValueError("lr must be positive; weight_decay, warmup_steps, num_workers and threads >= 0")
        if not 0.0 <= self.min_lr_fraction <= 1.0:
            raise ValueError(f"min_lr_fraction must be in [0, 1], got {self.min_lr_fraction}")
        if min(self.stereo_weight, self.param_weight) < 0 or self.stereo_weight + self.param_weight == 0:
            raise ValueError("stereo_weight and param_weight must be >= 0 and not both 0")
        if self.param_weight == 0 and self.audio_from_step > 0:
            raise ValueError("audio_from_step > 0 needs param_weight > 0 (nothing to train on before it)")

    def model_config_object(self, where: str = "model_config") -> Any:
        """The model's config dataclass built from ``model_config`` (errors name ``where``)."""
        return config_from_dict(MODELS[self.model][0], self.model_config, where)


if TYPE_CHECKING:
    from mixdown.mixers.forest import ForestRecipe

    Recipe = TrainConfig | EmulatorTrainConfig | ForestRecipe  # any recipe `train` runs


def recipe_class(data: Any) -> type:
    """The recipe dataclass of parsed recipe ``data``, by its ``model:`` key (default ``estimator``)."""
    kind = data.get("model", TrainConfig.model) if isinstance(data, dict) else None
    if kind == "emulator":
        return EmulatorTrainConfig
    if kind == "forest":
        from mixdown.mixers.forest import ForestRecipe

        return ForestRecipe
    if kind == "producer":
        from mixdown.mixers.producer import ProducerRecipe

        return ProducerRecipe
    if kind == "style":
        from mixdown.style.train import StyleRecipe

        return StyleRecipe
    return TrainConfig


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read any recipe (YAML or JSON) into its dataclass, chosen by its ``model:`` key.

    Raises:
        MixdownError: If the file cannot be read, or naming the key for an unknown key
            or a bad value (`mixdown.config.load_config`, strict).
    """
    data = read_config_file(path, "training config")
    config = load_config(recipe_class(data), path, data=data)
    if isinstance(config, TrainConfig):
        config.model_config_object(f"{path}: model_config")
        baselines_ok(config.baselines, str(path))
    return config


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    """Read a `MixingSystem` recipe (`load_recipe`, refusing the emulator's and the forest's)."""
    config = load_recipe(path)
    if not isinstance(config, TrainConfig):
        raise MixdownError(f"{path}: a {config.model} recipe, not one of {', '.join(SYSTEM_MODELS)}")
    return config


def baselines_ok(names: Sequence[str], where: str) -> None:
    """Raise `MixdownError` unless every name is a method of `mixdown.mixers.METHODS` that needs no target mix."""
    from mixdown.mixers import METHODS

    usable = [name for name, info in METHODS.items() if not info.capabilities.needs_target]
    unknown = [name for name in names if name not in usable]
    if unknown:
        raise MixdownError(f"{where}: baselines {unknown} are not mixers; choose from {', '.join(usable)}")


def config_yaml(config: TrainConfig | EmulatorTrainConfig) -> str:
    """The recipe as YAML (every field, defaults included)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


# ----------------------------------------------------------------------------- data


def _is_first_local_process() -> bool:
    """False in the worker processes a distributed launcher starts (they see ``LOCAL_RANK`` > 0)."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def synth_songs(config: Recipe) -> int:
    """Songs `prepare_data` builds for ``config`` (0 if it builds none)."""
    return config.data.synth_songs if isinstance(config, TrainConfig) and config.data.synth is not None else 0


def prepare_data(config: Recipe, progress: Callable[[float, float], None] | None = None) -> None:
    """Build the recipe's synthetic dataset where songs are missing (first process per machine).

    Args:
        config: The recipe (only a `TrainConfig` with ``data.synth`` has songs to build).
        progress: Called with ``(songs done, songs)``.
    """
    if not synth_songs(config) or not _is_first_local_process():
        return
    build_dataset(config.data.sources[0].root, config.data.synth_songs, config.data.synth,
                  workers=config.data.build_workers, progress=progress)


def open_split(config: TrainConfig, split: str, dataset_config: DatasetConfig) -> list[SongDataset]:
    """One dataset per source for ``split`` (``train``, ``val`` or ``test``)."""
    from mixdown.data import enst, medleydb, musdb
    from mixdown.data.folder import FolderDataset

    data = config.data
    datasets = []
    for source in data.sources:
        if source.songs is not None:
            datasets.append(named_songs(source, split, data, dataset_config))
            continue
        if source.layout == "musdb":
            datasets.append(musdb.MUSDBDataset(source.root, dataset_config, split=split))
            continue
        cls = {"folder": FolderDataset, "enst": enst.ENSTDrumsDataset, "medleydb": medleydb.MedleyDBDataset}[
            source.layout]
        datasets.append(cls(source.root, dataset_config, split=split, val_fraction=data.val_fraction,
                            test_fraction=data.test_fraction, split_seed=data.split_seed))
    return datasets


def named_songs(source: DataSource, split: str, data: DataConfig, dataset_config: DatasetConfig) -> SongDataset:
    """The ``split`` of the songs ``source.songs`` names (any layout).

    Raises:
        MixdownError: If a named song is not in the source.
    """
    from mixdown.data.folder import LAYOUTS
    from mixdown.data.songs import describe, select_split

    found = LAYOUTS[source.layout](Path(source.root))
    missing = sorted(set(source.songs) - {s.name for s in found})
    if missing:
        raise MixdownError(f"{source.root}: songs {missing} not found")
    chosen = [s for s in found if s.name in set(source.songs)]
    chosen = select_split(chosen, split, data.val_fraction, data.test_fraction, data.split_seed)
    return SongDataset(chosen, dataset_config, describe(Path(source.root), source.layout, split)
                       + f" ({len(source.songs)} named songs)")


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` indices evenly spread over ``range(total)`` (all of them if fewer)."""
    if total <= count:
        return list(range(total))
    return [int(i) for i in np.linspace(0, total - 1, count).round()]


class MixingData(L.LightningDataModule):
    """Training and validation segments of a recipe's datasets.

    Args:
        config: The recipe.
        sample_rate: The model's rate; songs at other rates are resampled.
    """

    def __init__(self, config: TrainConfig, sample_rate: int):
        super().__init__()
        self.config = config
        data = config.data
        common = dict(segment_frames=round(data.segment_s * sample_rate), sample_rate=sample_rate,
                      max_tracks=data.max_tracks, stem_lufs=data.stem_lufs)
        self.train_config = DatasetConfig(mode="random", seed=config.seed,
                                          segments_per_epoch=data.segments_per_epoch, **common)
        self.val_config = DatasetConfig(mode="sequential", **common)
        self.train_sets: list[SongDataset] = []
        self.val_set: torch.utils.data.Dataset | None = None

    def setup(self, stage: str) -> None:
        if not self.train_sets and stage == "fit":
            self.train_sets = open_split(self.config, "train", self.train_config)
        if self.val_set is None and stage in ("fit", "validate"):
            val = torch.utils.data.ConcatDataset(open_split(self.config, "val", self.val_config))
            self.val_set = torch.utils.data.Subset(val, spread_indices(len(val), self.config.data.val_segments))

    def set_epoch(self, epoch: int) -> None:
        """Draw the random training offsets of ``epoch``."""
        for dataset in self.train_sets:
            dataset.set_epoch(epoch)

    def _loader(self, dataset: torch.utils.data.Dataset, train: bool) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.config.batch_size, shuffle=False, drop_last=train,
            num_workers=self.config.num_workers,
            collate_fn=MultitrackCollate(max_tracks=None, shuffle_tracks=train, seed=self.config.seed))

    def transfer_batch_to_device(self, batch: MultitrackBatch, device: torch.device,
                                 dataloader_idx: int) -> MultitrackBatch:
        """Move the tensors only (the metas are frozen dataclasses Lightning cannot traverse)."""
        return batch._replace(stems=batch.stems.to(device), mask=batch.mask.to(device),
                              stereo=batch.stereo.to(device), mix=batch.mix.to(device))

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        self.set_epoch(self.trainer.current_epoch if self.trainer is not None else 0)
        return self._loader(torch.utils.data.ConcatDataset(self.train_sets), train=True)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.val_set, train=False)


def instrument_ids(metas: Sequence[SegmentMeta], tracks: int) -> torch.Tensor:
    """``(batch, tracks)`` class ids of `INSTRUMENT_CLASSES` (``other`` for padding)."""
    other = INSTRUMENT_CLASSES.index("other")
    ids = torch.full((len(metas), tracks), other, dtype=torch.long)
    for b, meta in enumerate(metas):
        ids[b, :len(meta.instruments)] = torch.tensor([INSTRUMENT_CLASSES.index(c) for c in meta.instruments])
    return ids


def true_settings(metas: Sequence[SegmentMeta], tracks: int) -> ConsoleTensors | None:
    """The true settings of a batch, padded to ``tracks`` (muted), or None if an item has none.

    Settings describe the stems as stored; when the dataset loudness-normalised them by
    ``g`` dB, the equivalent settings for the stems the model sees have the fader
    ``g`` dB lower and the compressor threshold ``g`` dB higher (EQ is linear).
    """
    if any(meta.params is None for meta in metas):
        return None
    padded = []
    for meta in metas:
        params = meta.params
        extra = [dataclasses.replace(default_channel(f"__pad{k}"), mute=True)
                 for k in range(tracks - len(params.channels))]
        padded.append(ConsoleParams(channels=[*params.channels, *extra], master=params.master,
                                    sample_rate=params.sample_rate, method=params.method))
    settings = ConsoleTensors.from_params(padded)
    shift = torch.zeros(len(metas), tracks)
    for b, meta in enumerate(metas):
        shift[b, :len(meta.stem_gain_db)] = torch.tensor(meta.stem_gain_db)
    return dataclasses.replace(settings, gain_db=settings.gain_db - shift,
                               threshold_db=settings.threshold_db + shift)


# ----------------------------------------------------------------------------- Lightning module


class MixingSystem(L.LightningModule):
    """Any registered model, its losses, optimiser and schedule.

    Args:
        train_config: The recipe as plain data (`config_to_dict` of a `TrainConfig`),
            saved into every checkpoint as the hyper-parameters.
    """

    def __init__(self, train_config: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters()
        self.config: TrainConfig = config_from_dict(TrainConfig, train_config, "train_config")
        self.model = build_model(self.config.model, self.config.model_config)
        self.stereo_loss = StereoLoss(self.config.loss, reduction="none")
        self._baseline_cache: dict[int, dict[str, torch.Tensor]] = {}
        parametric = hasattr(self.model, "parameter_loss") and hasattr(self.model, "estimate")
        if self.config.param_weight > 0 and not parametric:
            raise MixdownError(f"param_weight > 0 needs a parametric model; {self.config.model} is not")

    def losses(self, batch: MultitrackBatch, audio: bool) -> dict[str, torch.Tensor]:
        """Per-mix loss terms ``(batch,)`` by name, plus ``"loss"``, the weighted total.

        Args:
            batch: The segments.
            audio: Render and compare the mix (else the parameter loss alone).
        """
        config, tracks = self.config, batch.stems.shape[1]
        instruments = instrument_ids(batch.metas, tracks).to(batch.stems.device)
        terms: dict[str, torch.Tensor] = {}
        if audio:
            output = self.model(batch.stems, batch.mask, instruments, batch.stereo)
            terms["stereo_loss"] = self.stereo_loss(output.mix, batch.mix)
            estimate = getattr(output, "estimate", None)
        else:
            estimate = self.model.estimate(batch.stems, batch.mask, instruments)
        truth = true_settings(batch.metas, tracks) if config.param_weight > 0 else None
        if truth is not None and estimate is not None:
            truth = dataclasses.replace(truth, **{f.name: getattr(truth, f.name).to(batch.stems.device)
                                                  for f in dataclasses.fields(truth)})
            terms["param_loss"] = self.model.parameter_loss(estimate, truth, batch.mask)
        weights = {"stereo_loss": config.stereo_weight, "param_loss": config.param_weight}
        if not terms:
            raise MixdownError("no loss to train on: the data has no true settings for the parameter loss")
        terms["loss"] = sum(weights[name] * value for name, value in terms.items())
        return terms

    def training_step(self, batch: MultitrackBatch, batch_idx: int) -> torch.Tensor:
        audio = self.config.stereo_weight > 0 and self.global_step >= self.config.audio_from_step
        terms = self.losses(batch, audio=audio)
        for name, value in terms.items():
            self.log(f"train/{name}", value.mean(), prog_bar=name == "loss", batch_size=len(batch.metas))
        return terms["loss"].mean()

    def validation_step(self, batch: MultitrackBatch, batch_idx: int) -> None:
        size = len(batch.metas)
        terms = self.losses(batch, audio=True)
        for name, value in terms.items():
            self.log(f"val/{name}", value.mean(), prog_bar=name == "stereo_loss", sync_dist=True, batch_size=size)
        for name, value in self.baseline_losses(batch, batch_idx).items():
            self.log(f"val/{name}_loss", value.mean(), sync_dist=True, batch_size=size)

    def baseline_losses(self, batch: MultitrackBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Stereo loss of each baseline mixer on the batch's segments (computed once, then cached)."""
        if batch_idx not in self._baseline_cache:
            from mixdown.api import mix as mix_stems

            losses = {name: [] for name in self.config.baselines}
            for b, meta in enumerate(batch.metas):
                count = len(meta.stem_names)
                arrays = {name: batch.stems[b, t, :2 if meta.stereo[t] else 1].cpu().numpy()
                          for t, name in enumerate(meta.stem_names[:count])}
                multitrack = Multitrack.from_arrays(arrays, meta.sample_rate, dict(zip(meta.stem_names,
                                                                                       meta.instruments, strict=True)))
                for name in self.config.baselines:
                    mix = torch.from_numpy(mix_stems(multitrack, name, seed=meta.index).mix)[None].to(batch.mix)
                    losses[name].append(self.stereo_loss(mix, batch.mix[b:b + 1])[0].detach())
            self._baseline_cache[batch_idx] = {name: torch.stack(values) for name, values in losses.items()}
        return self._baseline_cache[batch_idx]

    def configure_optimizers(self) -> dict[str, Any]:
        config = self.config
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

        def factor(step: int) -> float:
            if step < config.warmup_steps:
                return (step + 1) / config.warmup_steps
            progress = min((step - config.warmup_steps) / max(config.max_steps - config.warmup_steps, 1), 1.0)
            return config.min_lr_fraction + (1 - config.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        datamodule = self.trainer.datamodule
        if isinstance(datamodule, MixingData):
            datamodule.set_epoch(self.current_epoch)

    def on_fit_start(self) -> None:
        _save_recipe(self.trainer, self.config)


def _save_recipe(trainer: L.Trainer, config: TrainConfig | EmulatorTrainConfig) -> None:
    """Write the recipe beside the checkpoints as ``OUT/train.yaml`` (first process only)."""
    if trainer.is_global_zero:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / CONFIG_FILE, config_yaml(config))


# ----------------------------------------------------------------------------- the emulator's pre-training


class EmulatorData(L.LightningDataModule):
    """The emulator recipe's pairs: training ones rendered by the real strip as they are drawn,
    validation ones rendered once (`mixdown.models.emulator.pretraining_pairs`)."""

    def __init__(self, config: EmulatorTrainConfig):
        super().__init__()
        self.config = config
        self.train_pairs: torch.utils.data.Dataset | None = None
        self.val_batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    def setup(self, stage: str) -> None:
        if self.train_pairs is None:
            self.train_pairs, val_pairs = pretraining_pairs(self.config)
            self.val_batches = rendered_batches(val_pairs, self.config.batch_size, self.config.model_config.sample_rate)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.train_pairs, batch_size=self.config.batch_size, shuffle=False,
                                           collate_fn=RenderedCollate(self.config.model_config.sample_rate))

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.val_batches, batch_size=None, shuffle=False)


class EmulatorSystem(L.LightningModule):
    """The channel-strip emulator (`mixdown.models.emulator.Emulator`), its loss, optimiser and schedule.

    Training minimises `EmulatorLoss` between the emulator's output and the real strip's
    (mean over the batch) with AdamW (``lr``, torch's default weight decay) under a
    one-cycle cosine schedule (`torch.optim.lr_scheduler.OneCycleLR`, peak ``lr`` after
    ``warmup_fraction`` of ``max_steps``); validation logs the mean loss of the emulator
    (``val/emulator_loss``, which picks the best checkpoint) and of the dry input
    (``val/identity_loss``, the trivial emulator).

    Args:
        train_config: The recipe as plain data (`config_to_dict` of an `EmulatorTrainConfig`),
            saved into every checkpoint as the hyper-parameters.
    """

    def __init__(self, train_config: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters()
        self.config: EmulatorTrainConfig = config_from_dict(EmulatorTrainConfig, train_config, "train_config")
        self.model = Emulator(self.config.model_config)
        self.loss = EmulatorLoss(self.config.loss, reduction="none")
        self._identity_cache: dict[int, torch.Tensor] = {}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        audio, params, target = batch
        loss = self.loss(self.model(audio, params), target).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=audio.shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        audio, params, target = batch
        size = audio.shape[0]
        self.log(EMULATOR_VAL_LOSS, self.loss(self.model(audio, params), target).mean(), prog_bar=True,
                 sync_dist=True, batch_size=size)
        if batch_idx not in self._identity_cache:  # the dry input's loss never changes
            self._identity_cache[batch_idx] = self.loss(audio, target).mean()
        self.log("val/identity_loss", self._identity_cache[batch_idx], sync_dist=True, batch_size=size)

    def configure_optimizers(self) -> dict[str, Any]:
        config = self.config
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.max_steps,
                                                       pct_start=config.warmup_fraction, anneal_strategy="cos")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("hyper_parameters", {}).get("train_config", {}).get("max_steps")
        if saved is not None and saved != self.config.max_steps:  # OneCycleLR cannot step past its total
            raise MixdownError(f"the emulator's one-cycle schedule spans max_steps; resume with the checkpoint's "
                               f"max_steps ({saved}), not {self.config.max_steps}")

    def on_fit_start(self) -> None:
        _save_recipe(self.trainer, self.config)


# ----------------------------------------------------------------------------- run and export


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced.

    Attributes:
        checkpoint: The best (lowest validation loss) Lightning checkpoint, else the last;
            None for the forest (no checkpoints).
        exported: The plain weights file written, or None.
        best_val_loss: Its validation loss, or None if never validated.
        metric: The name of that loss (``val/stereo_loss``, ``val/emulator_loss``), or None.
        info: What else the run reports (the forest's row count and timings).
    """

    checkpoint: Path | None
    exported: Path | None
    best_val_loss: float | None
    metric: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _loggers(out: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = [CSVLogger(str(out), name="logs")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    loggers.append(TensorBoardLogger(str(out), name="tensorboard"))
    return loggers


class _ValidateAtEnd(L.Callback):
    """Validate (and checkpoint) after the last step too, not only every ``val_every_steps``."""

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True  # Lightning validates when a run is asked to stop


class _Report(L.Callback):
    """Reports to the front end: ``progress(step, max_steps)`` after every step, ``log(line)`` per validation."""

    def __init__(self, progress: Callable[[float, float], None] | None, log: Callable[[str], None] | None):
        self.progress, self.line = progress, log

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.progress is not None and trainer.is_global_zero:
            self.progress(trainer.global_step, trainer.max_steps)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.line is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        values = ", ".join(f"{name} {float(metrics[name]):.4f}" for name in sorted(metrics) if name.startswith("val/"))
        self.line(f"step {trainer.global_step}/{trainer.max_steps}: {values}")


def _check_export(config: TrainConfig | EmulatorTrainConfig) -> None:
    """Refuse an export path whose folder is missing (the run folder, which training creates, is fine)."""
    if config.export is None:
        return
    folder = Path(config.export).parent
    if not folder.is_dir() and folder.resolve() != Path(config.out).resolve():
        raise MixdownError(f"{folder}: folder for the exported weights does not exist")


def train(config: Recipe, resume: str | None = None, system_class: type[L.LightningModule] | None = None,
          progress: Callable[[float, float], None] | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Run any recipe end to end (see the module docstring): the one training entry.

    Args:
        config: The recipe (`load_recipe`): a `TrainConfig` trains `MixingSystem`, an
            `EmulatorTrainConfig` `EmulatorSystem`, both with Lightning; a
            `mixdown.mixers.forest.ForestRecipe` runs `mixdown.mixers.forest.fit`.
        resume: A Lightning checkpoint to continue from, or ``"last"`` for the run
            folder's latest (not for the forest).
        system_class: The recipe's system or a subclass of it (models with extra
            training needs, instrumented runs); default `MixingSystem` / `EmulatorSystem`.
        progress: Called with ``(steps done, max_steps)`` after every step (the forest:
            ``(songs done, songs)`` while its data is generated), or None.
        log: Called with one line of validation losses after every validation, or None.

    Returns:
        The best checkpoint, the exported weights and the best validation loss.

    Raises:
        MixdownError: On a missing checkpoint to resume from, a missing export folder
            (checked before any work), or a bad recipe.
    """
    if getattr(config, "model", None) == "producer":
        from mixdown.mixers.producer import fit as fit_producer

        if resume is not None or system_class is not None:
            raise MixdownError("a producer recipe has no checkpoints to resume from and no Lightning system")
        model = fit_producer(config, progress)
        return TrainResult(None, Path(config.export), None, info=dict(model.info))
    if getattr(config, "model", None) == "style":
        from mixdown.style.train import fit as fit_style

        if resume is not None or system_class is not None:
            raise MixdownError("a style recipe has no checkpoints to resume from and no Lightning system")
        info = fit_style(config, progress, log)
        return TrainResult(None, None if config.export is None else Path(config.export),
                           info["val_param_loss_with_reference"], "val/param_loss", info=info)
    if not isinstance(config, (TrainConfig, EmulatorTrainConfig)):
        from mixdown.mixers.forest import fit

        if resume is not None or system_class is not None:
            raise MixdownError("a forest recipe has no checkpoints to resume from and no Lightning system")
        model = fit(config, progress)
        return TrainResult(None, Path(config.export), None, info=dict(model.info))
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    emulator = isinstance(config, EmulatorTrainConfig)
    base = EmulatorSystem if emulator else MixingSystem
    system_class = base if system_class is None else system_class
    if not issubclass(system_class, base):
        raise MixdownError(f"a {config.model} recipe trains {base.__name__} or a subclass, not {system_class.__name__}")
    # numba's parallel kernels (console DSP) run on the system's OpenMP runtime, torch on its
    # own copy; spinning idle numba threads then slow every torch op several-fold. Passive
    # waiting must be chosen before numba starts its threads (first kernel call).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    if resume not in (None, "last") and not Path(resume).is_file():
        raise MixdownError(f"checkpoint to resume from not found: {resume}")
    _check_export(config)
    prepare_data(config)
    L.seed_everything(config.seed, workers=True, verbose=False)
    system = system_class(config_to_dict(config))
    monitor = EMULATOR_VAL_LOSS if emulator else VAL_LOSS
    data = EmulatorData(config) if emulator else MixingData(config, system.model.config.sample_rate)
    checkpoints = ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="step{step:06d}",
                                  auto_insert_metric_name=False, monitor=monitor, mode="min", save_top_k=1,
                                  save_last=True)
    trainer = L.Trainer(
        max_steps=config.max_steps, accelerator=config.accelerator, devices=config.devices,
        num_nodes=config.num_nodes, strategy=config.strategy, precision=config.precision,
        gradient_clip_val=config.grad_clip, val_check_interval=config.val_every_steps,
        check_val_every_n_epoch=None, log_every_n_steps=config.log_every_steps, logger=_loggers(out),
        callbacks=[checkpoints, LearningRateMonitor("step"), _ValidateAtEnd(), _Report(progress, log)],
        default_root_dir=str(out), num_sanity_val_steps=0, enable_model_summary=False, enable_progress_bar=False)
    trainer.fit(system, datamodule=data, ckpt_path=resume)
    # Lightning rewrites last.ckpt only together with a new best one; a run ends with its
    # final state there, so that "resume last" continues from where it stopped.
    trainer.save_checkpoint(Path(checkpoints.dirpath) / f"{checkpoints.CHECKPOINT_NAME_LAST}{checkpoints.FILE_EXTENSION}")
    best = checkpoints.best_model_path or checkpoints.last_model_path
    score = checkpoints.best_model_score
    exported = None
    if trainer.is_global_zero and config.export is not None and best:
        exported = export_checkpoint(best, config.export)
    return TrainResult(Path(best) if best else None, exported, None if score is None else float(score), monitor)


def export_checkpoint(checkpoint: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the model of a Lightning checkpoint of `MixingSystem` or `EmulatorSystem` as a plain weights file.

    Raises:
        MixdownError: If the checkpoint is missing or not from one of them.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise MixdownError(f"checkpoint not found: {checkpoint}")
    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
        recipe = data["hyper_parameters"]["train_config"]
        state = {k.removeprefix("model."): v for k, v in data["state_dict"].items() if k.startswith("model.")}
    except (KeyError, TypeError) as exc:
        raise MixdownError(f"{checkpoint}: not a mixdown training checkpoint (missing {exc})") from None
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise MixdownError(f"{checkpoint}: cannot read ({' '.join(str(exc).split())[:200]})") from None
    where = f"{checkpoint}: train_config"
    if recipe_class(recipe) is EmulatorTrainConfig:
        emulator = config_from_dict(EmulatorTrainConfig, recipe, where)
        name, model_config = "emulator", config_to_dict(emulator.model_config)
    else:
        config = config_from_dict(TrainConfig, recipe, where)
        name, model_config = config.model, config.model_config
    model = build_model(name, model_config)
    loaded = model_from_checkpoint({"model_name": name, "config": config_to_dict(model.config),
                                    "state_dict": state, "sample_rate": model.config.sample_rate,
                                    "versions": {}}, str(checkpoint))
    return save_model(loaded.model, path)
