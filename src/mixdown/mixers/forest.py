"""Random-forest gain and pan mixer, after Moffat & Sandler (2019).

D. Moffat and M. Sandler, "Machine Learning Multitrack Gain Mixing of Drums" (AES 147th
Convention, Engineering Brief 527, 2019) feed a feature vector of every track into a
random forest that predicts the track's mix gain, trained on gains reverse-engineered
from human mixes. Here the ground truth comes from synthetic songs
(`mixdown.synth.synthetic`), whose console settings are known exactly, and each stem is
one training row: its `mixdown.features` vector (own audio, context in the song,
instrument class), so one model serves any number of stems.

What the forests predict, and why:

* **Level** ``level_lu``: the stem's loudness at the fader's output, relative to the
  song's mean: ``gain_db`` plus the stem's loudness after its own EQ and compressor
  (`mixdown.console.channel_loudness`, BS.1770), centred over the song's sounding
  stems. This is the relative gain (``gain_db`` minus the song's mean gain) with each
  channel's processing taken out, for two reasons: trees, which are piecewise constant,
  need not learn a linear ``-loudness`` term; and the true settings' random EQ and
  compression change a stem's loudness in ways no feature of the dry stem can predict,
  while this mixer renders with the rules' EQ and compression. The fader follows as
  ``gain_db = REFERENCE_LUFS + level_lu - loudness after this mixer's EQ and
  compressor``, as in the rules mixer; the master bus normalises the mix to -14 LUFS,
  so the absolute level does not matter. (A first version learned ``gain_db`` plus the
  *dry* stem's loudness; its mixes scored worse than the rules' on 10 of the first 12
  held-out songs, because that target folds the average loudness change of the random
  target processing into the fader.)
* **Width** ``width``: ``|pan|``. In the synthetic targets the side a source is panned
  to is a coin flip (`mixdown.synth.targets`), so no feature can predict it; the width
  depends on the class (focal sources and stereo stems stay central). The side comes
  from the rules mixer's `pan_positions` (drummer's perspective, alternating sides);
  stems it centres stay centred.

One forest per target (a joint multi-output forest would split on a criterion
dominated by the dB-scaled target). EQ, compression, reverb and the master come from
`RulesMixer`, so the forest changes only faders and pans.

Weights ship as plain arrays in an ``.npz`` (no pickled classes): every tree's
``feature``, ``threshold``, ``left``/``right`` children and node ``value``, packed
end to end with leaves pointing at themselves, so prediction is a vectorised walk of
all trees at once (`TreeArrays.predict`), equal to scikit-learn's to float rounding.
The training config, feature names, library versions and training statistics are
stored beside them as JSON. Retrain with the one training entry (`mixdown.train`, which
reads the `ForestRecipe` and calls `fit`)::

    mixdown train configs/forest.yaml        # writes the recipe's export, src/mixdown/weights/forest.npz
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

import mixdown
from mixdown.audio import atomic_path
from mixdown.class_rules import REFERENCE_LUFS
from mixdown.console import channel_loudness
from mixdown.errors import MixdownError
from mixdown.features import FEATURE_NAMES, SILENCE_LUFS, multitrack_features
from mixdown.mixers import SettingsMethod
from mixdown.mixers.rules import RulesMixer
from mixdown.multitrack import Multitrack
from mixdown.params import SPECS, ConsoleParams
from mixdown.synth.demo import AVAILABLE_STEMS
from mixdown.weights import require

FORMAT_VERSION = 1
TARGETS = ("level_lu", "width")
_LOUDNESS = FEATURE_NAMES.index("loudness_lufs")
_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")


@dataclass(frozen=True)
class ForestConfig:
    """How the shipped forest is trained (YAML: ``configs/forest.yaml``).

    Attributes:
        seed: random state of the forests (bootstrap samples, feature subsets).
        synth_seed: `SynthConfig.seed` of the training songs; evaluate on another.
        songs: number of training songs (indices ``0 .. songs - 1``).
        duration_s: length of each training song.
        sample_rate: in Hz.
        min_stems: fewest stems per training song.
        max_stems: most stems per training song.
        trees: trees per forest.
        max_depth: depth limit of each tree (bounds the weights' size).
        min_samples_leaf: fewest training rows per leaf.
        max_features: fraction of the features tried at each split.
        jobs: worker processes for scikit-learn's fit.
    """

    seed: int = 0
    synth_seed: int = 1
    songs: int = 100
    duration_s: float = 6.0
    sample_rate: int = 44100
    min_stems: int = 2
    max_stems: int = len(AVAILABLE_STEMS)
    trees: int = 64
    max_depth: int = 12
    min_samples_leaf: int = 5
    max_features: float = 0.5
    jobs: int = 1

    def __post_init__(self) -> None:
        checks = {"songs": self.songs >= 1, "trees": self.trees >= 1, "max_depth": 1 <= self.max_depth <= 32,
                  "min_samples_leaf": self.min_samples_leaf >= 1, "max_features": 0.0 < self.max_features <= 1.0,
                  "jobs": self.jobs >= 1}
        for name, ok in checks.items():
            if not ok:
                raise MixdownError(f"forest config: {name}={getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class ForestRecipe(ForestConfig):
    """A ``mixdown train`` recipe of the forest (YAML: ``configs/forest.yaml``): `ForestConfig` plus two keys.

    Read by `mixdown.train.load_recipe` (strict: unknown keys are errors) and run by `fit`.

    Attributes:
        model: ``forest``: the key `mixdown.train` dispatches on.
        export: Weights file (``.npz``) to write, or ``None`` (then ``mixdown train --export`` must give one).
    """

    model: Literal["forest"] = "forest"
    export: str | None = None

    @property
    def forest_config(self) -> ForestConfig:
        """The training settings alone (what the weights file stores)."""
        return ForestConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ForestConfig)})


@dataclass(frozen=True, eq=False)
class TreeArrays:
    """A regression forest as flat arrays; node ``i`` of every tree lives at one index.

    Attributes:
        feature: ``(nodes,)`` feature tested at each split (0 at leaves).
        threshold: ``(nodes,)`` go left when ``x[feature] <= threshold``.
        left: ``(nodes,)`` left child; a leaf is its own child.
        right: ``(nodes,)`` right child; a leaf is its own child.
        value: ``(nodes,)`` mean training target of each node.
        roots: ``(trees,)`` index of each tree's root.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Mean over trees of the leaf each row of ``features`` reaches.

        Features are compared in float32, as scikit-learn does.

        Shape:
            features: ``(rows, n_features)`` -> ``(rows,)``.
        """
        x = np.asarray(features, dtype=np.float32)
        rows = np.arange(x.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.shape[0]))
        while True:
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            step = np.where(go_left, self.left[node], self.right[node])
            if np.array_equal(step, node):
                return self.value[node].mean(axis=1)
            node = step


def export_forest(forest: Any) -> TreeArrays:
    """Pack a fitted single-output `sklearn.ensemble.RandomForestRegressor` into `TreeArrays`."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
    offset = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        index = np.arange(tree.node_count) + offset
        leaf = tree.children_left < 0
        parts["feature"].append(np.where(leaf, 0, tree.feature).astype(np.int32))
        parts["threshold"].append(np.where(leaf, 0.0, tree.threshold).astype(np.float64))
        parts["left"].append(np.where(leaf, index, tree.children_left + offset).astype(np.int32))
        parts["right"].append(np.where(leaf, index, tree.children_right + offset).astype(np.int32))
        parts["value"].append(tree.value[:, 0, 0].astype(np.float64))
        parts["roots"].append(np.array([offset], dtype=np.int32))
        offset += tree.node_count
    return TreeArrays(**{name: np.concatenate(arrays) for name, arrays in parts.items()})


@dataclass(frozen=True, eq=False)
class ForestPair:
    """Two regression forests over `mixdown.features` rows (a level-like target and a width) and their provenance.

    The one model class of the forest mixers: `ForestModel` (synthetic targets) and
    `mixdown.mixers.producer.ProducerModel` (real producers' settings) subclass it and
    set the class attributes as class keywords
    (``class M(ForestPair, targets=..., config_class=..., kind=..., recipe=...)``); prediction, the ``.npz`` format and its checks are shared.

    Attributes:
        forests: ``(first, width)``: the forests of ``targets[0]`` and ``targets[1]`` (``|pan|``).
        config: How it was trained (an instance of ``config_class``).
        info: Training statistics and library versions (JSON-ready).
        targets: Names of the two targets (the array names in the weights file).
        config_class: The training-settings dataclass stored in the file.
        kind: The model's name in messages (``forest``, ``producer``).
        recipe: The recipe that trains it (for the message when the file is missing).
    """

    forests: tuple[TreeArrays, TreeArrays]
    config: Any
    info: dict[str, Any]

    targets: ClassVar[tuple[str, str]]
    config_class: ClassVar[type]
    kind: ClassVar[str]
    recipe: ClassVar[str]

    def __init_subclass__(cls, *, targets: tuple[str, str], config_class: type, kind: str, recipe: str,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.targets, cls.config_class, cls.kind, cls.recipe = targets, config_class, kind, recipe

    @property
    def width(self) -> TreeArrays:
        """The forest predicting ``|pan|``."""
        return self.forests[1]

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(targets[0], width)`` per row of `mixdown.features.multitrack_features`; the width clipped to 0..1.

        Shape:
            features: ``(stems, len(FEATURE_NAMES))`` -> two ``(stems,)`` arrays.
        """
        if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"expected features of shape (stems, {len(FEATURE_NAMES)}), got {features.shape}")
        return self.forests[0].predict(features), np.clip(self.forests[1].predict(features), 0.0, 1.0)

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as plain arrays and JSON strings to an ``.npz``, atomically."""
        arrays = {f"{target}_{name}": getattr(forest, name)
                  for target, forest in zip(self.targets, self.forests, strict=True) for name in _ARRAYS}
        header = {"format_version": FORMAT_VERSION, "feature_names": list(FEATURE_NAMES),
                  "config": asdict(self.config), "info": self.info}
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez_compressed(file, header=np.array(json.dumps(header, sort_keys=True)), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Read a model written by `save`; a missing, corrupt, stale or inconsistent file raises `MixdownError`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {key: data[key] for key in data.files if key != "header"}
        except FileNotFoundError:
            raise MixdownError(f"no {cls.kind} weights at {path}; train them with "
                               f"mixdown train {cls.recipe} --export PATH") from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise MixdownError(f"{path}: not a {cls.kind} weights file ({exc})") from None
        if header.get("format_version") != FORMAT_VERSION or header.get("feature_names") != list(FEATURE_NAMES):
            raise MixdownError(f"{path}: weights are for another format or feature set; retrain them")
        try:
            forests = tuple(TreeArrays(**{name: arrays[f"{target}_{name}"] for name in _ARRAYS})
                            for target in cls.targets)
            config = cls.config_class(**{key: tuple(value) if isinstance(value, list) else value
                                         for key, value in header["config"].items()})
        except (KeyError, TypeError) as exc:
            raise MixdownError(f"{path}: incomplete {cls.kind} weights ({exc})") from None
        for forest in forests:
            nodes = forest.value.shape[0]
            if not all(getattr(forest, n).shape == (nodes,) for n in _ARRAYS[:-1]) or not (
                    0 <= min(forest.left.min(), forest.right.min(), forest.roots.min())
                    and max(forest.left.max(), forest.right.max(), forest.roots.max()) < nodes
                    and 0 <= forest.feature.min() and forest.feature.max() < len(FEATURE_NAMES)):
                raise MixdownError(f"{path}: inconsistent tree arrays")
        return cls(forests=forests, config=config, info=header["info"])


class ForestModel(ForestPair, targets=TARGETS, config_class=ForestConfig, kind="forest",
                  recipe="configs/forest.yaml"):
    """The level and width forests of the synthetic-trained mixer (targets: see the module docstring)."""

    @property
    def level(self) -> TreeArrays:
        """The forest predicting ``level_lu``."""
        return self.forests[0]


def training_info(data_s: float, fit_s: float, **extra: Any) -> dict[str, Any]:
    """A forest model's ``info``: wall times, the machine's core count, library versions, and ``extra``."""
    import sklearn

    return {**extra, "data_s": round(data_s, 1), "fit_s": round(fit_s, 1), "cpu_count": os.cpu_count(),
            "versions": {"mixdown": mixdown.__version__, "python": platform.python_version(),
                         "numpy": np.__version__, "scikit-learn": sklearn.__version__}}


def check_export(recipe: Any) -> Path:
    """The recipe's ``export`` path, checked before any work.

    Raises:
        MixdownError: If the recipe has none or its folder does not exist.
    """
    if recipe.export is None:
        raise MixdownError(f"the {recipe.model} recipe has no export path (set export: in it, or give --export)")
    export = Path(recipe.export)
    if not export.parent.is_dir():
        raise MixdownError(f"{export.parent}: output folder does not exist")
    return export


def song_targets(multitrack: Multitrack, params: ConsoleParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features and targets of one song with known settings.

    Returns:
        ``(features, level_lu, width, sounding)``: ``(stems, n_features)`` and three
        ``(stems,)`` arrays; ``sounding`` is False for silent stems, which carry no
        level information (their targets are 0).
    """
    features = multitrack_features(multitrack)
    channels = params.ordered_like(multitrack.names).channels
    gain = np.array([ch.gain_db for ch in channels])
    processed = channel_loudness(multitrack, params)
    sounding = (features[:, _LOUDNESS] > SILENCE_LUFS) & (processed > SILENCE_LUFS)
    level = np.where(sounding, gain + np.where(sounding, processed, 0.0), 0.0)
    if sounding.any():
        level = np.where(sounding, level - level[sounding].mean(), 0.0)
    return features, level, np.abs([ch.pan for ch in channels]), sounding


def training_set(config: ForestConfig, progress: Callable[[int, int], None] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features and targets of the training songs, one row per sounding stem.

    Returns:
        ``(features, level_lu, width)``: ``(rows, n_features)``, ``(rows,)``, ``(rows,)``.
    """
    from mixdown.synth.synthetic import SynthConfig, generate_song

    synth = SynthConfig(seed=config.synth_seed, sample_rate=config.sample_rate, duration_s=config.duration_s,
                        min_stems=config.min_stems, max_stems=config.max_stems)
    rows: list[tuple[np.ndarray, ...]] = []
    for index in range(config.songs):
        song = generate_song(index, synth)
        features, level, width, sounding = song_targets(song.multitrack, song.params)
        rows.append((features[sounding], level[sounding], width[sounding]))
        if progress is not None:
            progress(index + 1, config.songs)
    return tuple(np.concatenate(column) for column in zip(*rows, strict=True))


def fit_forest(features: np.ndarray, target: np.ndarray, config: Any,
               sample_weight: np.ndarray | None = None) -> TreeArrays:
    """Fit one scikit-learn forest to ``target`` and export it to arrays.

    Args:
        features: ``(rows, n_features)``.
        target: ``(rows,)``.
        config: Its ``seed``, ``trees``, ``max_depth``, ``min_samples_leaf``, ``max_features``
            and ``jobs`` (a `ForestConfig` or `mixdown.mixers.producer.ProducerConfig`).
        sample_weight: ``(rows,)`` weight of each row, or None for equal weights.
    """
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        raise MixdownError("training a forest needs scikit-learn: pip install 'mixdown[train]'") from None
    forest = RandomForestRegressor(n_estimators=config.trees, max_depth=config.max_depth,
                                   min_samples_leaf=config.min_samples_leaf, max_features=config.max_features,
                                   random_state=config.seed, n_jobs=config.jobs)
    return export_forest(forest.fit(features, target, sample_weight=sample_weight))


def train_forest(config: ForestConfig, progress: Callable[[int, int], None] | None = None) -> ForestModel:
    """Generate the training songs, fit both forests, and return the model.

    Deterministic given ``config`` (only the times in ``info`` vary): ``data_s`` and
    ``fit_s`` are wall times, ``*_cpu_s`` the process's CPU time (all its threads).

    Args:
        config: what to train on and how.
        progress: called with ``(songs done, songs)`` while the data is generated.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    features, level, width = training_set(config, progress)
    data_s, data_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    forests = [fit_forest(features, target, config) for target in (level, width)]
    fit_s, fit_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    info = training_info(data_s, fit_s, rows=int(features.shape[0]), songs=config.songs,
                         data_cpu_s=round(data_cpu_s, 1), fit_cpu_s=round(fit_cpu_s, 1))
    return ForestModel(forests=(forests[0], forests[1]), config=config, info=info)


class ForestMixer(SettingsMethod):
    """Faders and pans from the forests; EQ, compression, reverb and master from the rules."""

    name = "forest"

    def __init__(self, model: ForestModel | None = None):
        self.model = model if model is not None else ForestModel.load(require("forest.npz"))

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        features = multitrack_features(multitrack)
        level, width = self.model.predict(features)
        params, processed = RulesMixer().predict_with_loudness(multitrack)  # loudness after the rules' EQ and compressor
        params.method = self.name
        gain_spec = SPECS["gain_db"]
        for ch, loudness, lu, w in zip(params.channels, processed, level, width, strict=True):
            ch.pan = round(math.copysign(float(w), ch.pan), 3) if ch.pan != 0.0 else 0.0
            gain = REFERENCE_LUFS + float(lu) - float(loudness) if loudness > SILENCE_LUFS else 0.0
            ch.gain_db = round(min(max(gain, gain_spec.minimum), gain_spec.maximum), 2)
        params.validate()
        return params


def fit(recipe: ForestRecipe, progress: Callable[[float, float], None] | None = None) -> ForestModel:
    """Train the forests of a recipe and write them to its ``export`` path (``mixdown train`` of a forest recipe).

    Args:
        recipe: What to train on, how, and where the weights go.
        progress: Called with ``(songs done, songs)`` while the training data is generated.

    Returns:
        The model written (its ``info`` has the row count and timings).

    Raises:
        MixdownError: If the recipe has no export path or its folder does not exist
            (checked before any work), or scikit-learn is missing.
    """
    export = check_export(recipe)
    model = train_forest(recipe.forest_config, progress)
    model.save(export)
    return model
