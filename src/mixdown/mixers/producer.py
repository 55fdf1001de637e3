"""Gain/pan mixer learned from real producers' mixes (LMMS projects).

Every other learned method is trained on synthetic songs whose console targets are drawn
by a synthetic "engineer" (`mixdown.synth.targets`); the best they can learn is that
engineer. This one learns from people: the gains and pans real producers set in the
LMMS projects Debian ships (`mixdown data lmms`, `mixdown.data.lmms`), stated in each
song's ``params.json``.

Each stem is one row: its `mixdown.features` vector (own audio, context in the song,
instrument class) and two targets, fitted by one regression forest each (scikit-learn,
shipped as plain arrays, `mixdown.mixers.forest.TreeArrays`):

* ``gain_rel_db``: the stated fader ``gain_db`` minus the song's mean over its stems. The
  stems are the instruments' own output at 100 % volume, so a fader of 0 dB everywhere
  (the ``mono`` mix) is what the instruments' presets give; the forest learns how far
  producers move each fader from there. A forest shrinks towards the mean of its leaf,
  so where the features say nothing it stays close to mono.
* ``width``: ``|pan|``. The side is not learned (mixes are judged on sum and
  difference, blind to a mirror image); stems the forest widens to at least
  `MIN_WIDTH` are placed alternately right and left, the widest first; the rest stay centred.

No EQ, compression or reverb (the producers' mixer effects are not stated settings);
the master normalises to -14 LUFS with the default true-peak ceiling.

Targets (``targets``) come from what the producer stated or from what the mix lets one
hear:

* ``stated``: the project's track x mixer-channel x master volumes and pans
  (``params.json``);
* ``heard``: the gain and pan each stem has in the producer's rendered mix, fitted to
  ``mix.wav`` by non-negative least squares on band powers (`heard_settings`).
  They include what the stated settings leave out (mixer-channel and master effects'
  level changes, automation over the excerpt, LMMS's own pan law), so a mixer trained on
  them imitates the mix rather than the project file.

Synthetic songs can be added as pre-training rows (``synth_songs``, weighted by
``synth_weight``): their targets are the synthetic engineer's relative gains and widths.

Retrain (builds ``data/lmms`` first if it is not there)::

    mixdown train configs/producer.yaml
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mixdown.errors import MixdownError
from mixdown.features import FEATURE_NAMES, SILENCE_LUFS, multitrack_features
from mixdown.mixers import SettingsMethod
from mixdown.mixers.forest import (
    ForestPair,
    TreeArrays,
    check_export,
    fit_forest,
    training_info,
)
from mixdown.multitrack import Multitrack
from mixdown.params import SPECS, ChannelParams, ConsoleParams
from mixdown.weights import require

TARGETS = ("gain_rel_db", "width")
_LOUDNESS = FEATURE_NAMES.index("loudness_lufs")
MIN_WIDTH = 0.25
"""Predicted widths below this are centred: a side signal the mix does not have costs more than a centred stem that should be panned."""


@dataclass(frozen=True)
class ProducerConfig:
    """How the producer mixer is trained (YAML: ``configs/producer.yaml``).

    Attributes:
        seed: Random state of the forests.
        dataset: Real songs: a folder built by ``mixdown data lmms`` (songs with ``params.json``).
        songs: Train on these songs only (by folder name; cross-validation folds), or None for all.
        targets: ``"stated"`` (the project's settings) or ``"heard"`` (`heard_settings` of the
            producer's mix); see the module docstring.
        synth_songs: Synthetic songs added as pre-training rows (0: none).
        synth_seed: `SynthConfig.seed` of those songs.
        synth_duration_s: Their length.
        synth_weight: Weight of a synthetic row against a real one.
        trees: Trees per forest.
        max_depth: Depth limit of each tree.
        min_samples_leaf: Fewest (weighted) rows per leaf.
        max_features: Fraction of the features tried at each split.
        jobs: Worker processes for scikit-learn's fit.
    """

    seed: int = 0
    dataset: str = "data/lmms"
    songs: tuple[str, ...] | None = None
    targets: Literal["stated", "heard"] = "stated"
    synth_songs: int = 0
    synth_seed: int = 1
    synth_duration_s: float = 6.0
    synth_weight: float = 0.2
    trees: int = 200
    max_depth: int = 6
    min_samples_leaf: int = 4
    max_features: float = 0.5
    jobs: int = 1

    def __post_init__(self) -> None:
        checks = {"trees": self.trees >= 1, "max_depth": 1 <= self.max_depth <= 32,
                  "min_samples_leaf": self.min_samples_leaf >= 1, "max_features": 0.0 < self.max_features <= 1.0,
                  "synth_songs": self.synth_songs >= 0, "synth_weight": self.synth_weight >= 0.0, "jobs": self.jobs >= 1,
                  "targets": self.targets in ("stated", "heard")}
        for name, ok in checks.items():
            if not ok:
                raise MixdownError(f"producer config: {name}={getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class ProducerRecipe(ProducerConfig):
    """A ``mixdown train`` recipe (YAML ``configs/producer.yaml``): `ProducerConfig` plus ``model`` and ``export``."""

    model: Literal["producer"] = "producer"
    export: str | None = None

    @property
    def producer_config(self) -> ProducerConfig:
        """The training settings alone (what the weights file stores)."""
        return ProducerConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ProducerConfig)})


class ProducerModel(ForestPair, targets=TARGETS, config_class=ProducerConfig, kind="producer",
                    recipe="configs/producer.yaml"):
    """The gain and width forests learned from producers' settings (targets: see the module docstring)."""

    @property
    def gain(self) -> TreeArrays:
        """The forest predicting ``gain_rel_db``."""
        return self.forests[0]


HEARD_N_FFT = 2048
"""STFT size of `heard_settings` (hop half of it)."""

HEARD_BANDS_PER_OCTAVE = 3


def heard_settings(multitrack: Multitrack, mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gain and pan each stem has in ``mix``: non-negative least squares on band powers.

    Power adds where sources are independent, so per output channel ``c`` the mix's power
    in every third-octave band ``b`` and frame ``t`` is modelled as a non-negative
    combination of the stems' powers, ``P_c(b, t) ~ sum_i w_ic P_ic(b, t)``, solved by
    NNLS (scipy) with every (band, frame) cell weighted equally after dividing each band by
    the mix's mean power in it (so the quiet highs count as much as the bass). With the
    constant-power pan law a mono stem at gain ``g`` and pan ``p`` gives
    ``w_L = g^2 cos^2(theta)``, ``w_R = g^2 sin^2(theta)``, ``theta = (p + 1) pi / 4``; the
    balance law feeds a stereo stem at ``sqrt(2)`` per side, so its ``g^2`` is half the sum.
    Unlike waveform least squares (`mixdown.mixers.reverse.least_squares`) this is blind to
    phase: reverb, delay and chorus in the mix, and stems that play the same notes, do not
    throw it off, and it fits what the magnitude-based metrics compare.

    Args:
        multitrack: the stems.
        mix: float32 ``(2, frames)`` at the stems' rate and length.

    Returns:
        ``(gain_db, pan)``, each ``(tracks,)``; a stem the fit leaves out gets the lowest
        fader and pan 0, a silent stem 0 dB and pan 0.
    """
    from scipy.optimize import nnls
    from scipy.signal import stft

    rate = multitrack.sample_rate
    freqs, _, mix_spec = stft(mix, rate, nperseg=HEARD_N_FFT, noverlap=HEARD_N_FFT // 2)
    _, _, stem_spec = stft(multitrack.to_array(), rate, nperseg=HEARD_N_FFT, noverlap=HEARD_N_FFT // 2)
    edges = 20.0 * 2.0 ** (np.arange(0, 10 * HEARD_BANDS_PER_OCTAVE + 1) / HEARD_BANDS_PER_OCTAVE)
    band = np.digitize(freqs, edges) - 1
    used = [b for b in range(len(edges) - 1) if np.any(band == b)]

    def band_power(spec: np.ndarray) -> np.ndarray:  # (..., bins, frames) -> (..., bands, frames)
        power = np.abs(spec) ** 2
        return np.stack([power[..., band == b, :].sum(-2) for b in used], axis=-2)

    mix_power, stem_power = band_power(mix_spec), band_power(stem_spec)  # (2, B, T), (tracks, 2, B, T)
    sounding = stem_power.reshape(len(stem_power), -1).sum(-1) > 0
    weights = np.zeros((len(stem_power), 2))
    for c in range(2):
        scale = mix_power[c].mean(-1, keepdims=True) + 1e-20  # (B, 1)
        design = (stem_power[sounding, c] / scale).reshape(int(sounding.sum()), -1).T
        weights[sounding, c], _ = nnls(design, (mix_power[c] / scale).reshape(-1), maxiter=50 * design.shape[1])
    total = weights.sum(1) / np.where(multitrack.stereo_mask(), 2.0, 1.0)
    lowest = SPECS["gain_db"].minimum
    gain_db = np.where(total > 0, 10.0 * np.log10(np.maximum(total, 1e-30)), lowest)
    theta = np.arctan2(np.sqrt(weights[:, 1]), np.sqrt(weights[:, 0]))
    pan = np.where(total > 0, theta * 4.0 / np.pi - 1.0, 0.0)
    return np.where(sounding, np.maximum(gain_db, lowest), 0.0), np.where(sounding, pan, 0.0)


def song_rows(multitrack: Multitrack, gain_db: np.ndarray, pan: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features and targets of one song, one row per sounding stem.

    Args:
        multitrack: the stems.
        gain_db, pan: ``(tracks,)`` settings in the multitrack's order (stated or heard).

    Returns:
        ``(features, gain_rel_db, width)``: ``(rows, n_features)``, ``(rows,)``, ``(rows,)``.
    """
    features = multitrack_features(multitrack)
    sounding = features[:, _LOUDNESS] > SILENCE_LUFS
    gain = np.asarray(gain_db, dtype=np.float64)
    if not sounding.any():
        return features[:0], gain[:0], gain[:0]
    rel = gain - gain[sounding].mean()
    width = np.abs(np.asarray(pan, dtype=np.float64))
    return features[sounding], rel[sounding], width[sounding]


def stated_settings(multitrack: Multitrack, params: ConsoleParams) -> tuple[np.ndarray, np.ndarray]:
    """``(gain_db, pan)``, each ``(tracks,)``, of stated settings in the multitrack's order."""
    channels = params.ordered_like(multitrack.names).channels
    return (np.array([ch.gain_db for ch in channels], dtype=np.float64),
            np.array([ch.pan for ch in channels], dtype=np.float64))


def real_songs(dataset: str | os.PathLike, names: Sequence[str] | None = None) -> list[Any]:
    """The checked songs of a real dataset that have stated settings (all, or those named).

    Raises:
        MixdownError: If the folder is missing, a named song is not in it, or no song has settings.
    """
    from mixdown.data.folder import find_songs
    from mixdown.data.songs import open_songs

    sources = sorted(find_songs(dataset), key=lambda s: s.name)
    if names is not None:
        known = {s.name for s in sources}
        missing = sorted(set(names) - known)
        if missing:
            raise MixdownError(f"songs {missing} are not in {dataset}")
        sources = [s for s in sources if s.name in set(names)]
    songs, _ = open_songs(sources)
    songs = [song for song in songs if song.params is not None]
    if not songs:
        raise MixdownError(f"no song with stated settings (params.json) in {dataset}")
    return songs


def _load(song: Any) -> Multitrack:
    from mixdown.audio import load_audio

    arrays = {track.name: load_audio(track.path)[0] for track in song.stems}
    return Multitrack.from_arrays(arrays, song.file_rate, {t.name: t.instrument for t in song.stems})


_ROWS_CACHE: dict[tuple[str, int, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def real_song_rows(song: Any, targets: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`song_rows` of a real song with ``targets`` (``"stated"`` or ``"heard"``).

    Cached in the process by the song's mix file, its modification time and the stated
    settings, so training once per cross-validation fold analyses each song once.
    """
    stated = song.params.to_json() if song.params is not None else ""
    key = (str(song.mix.resolve()), song.mix.stat().st_mtime_ns, targets, stated)
    if key not in _ROWS_CACHE:
        multitrack = _load(song)
        if targets == "heard":
            from mixdown.audio import as_stereo, load_audio

            mix = load_audio(song.mix)[0]
            settings = heard_settings(multitrack, as_stereo(mix))
        else:
            settings = stated_settings(multitrack, song.params)
        _ROWS_CACHE[key] = song_rows(multitrack, *settings)
    return _ROWS_CACHE[key]


def training_rows(config: ProducerConfig, progress: Callable[[int, int], None] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Rows of the real songs (weight 1) and the synthetic pre-training songs (weight ``synth_weight``).

    Returns:
        ``(features, gain_rel_db, width, weight, real_songs)``.
    """
    songs = real_songs(config.dataset, config.songs)
    total = len(songs) + config.synth_songs
    rows: list[tuple[np.ndarray, ...]] = []
    for i, song in enumerate(songs):
        features, gain, width = real_song_rows(song, config.targets)
        rows.append((features, gain, width, np.ones(len(gain))))
        if progress is not None:
            progress(i + 1, total)
    if config.synth_songs:
        from mixdown.synth.synthetic import SynthConfig, generate_song

        synth = SynthConfig(seed=config.synth_seed, duration_s=config.synth_duration_s)
        for index in range(config.synth_songs):
            song = generate_song(index, synth)
            features, gain, width = song_rows(song.multitrack, *stated_settings(song.multitrack, song.params))
            rows.append((features, gain, width, np.full(len(gain), config.synth_weight)))
            if progress is not None:
                progress(len(songs) + index + 1, total)
    features, gain, width, weight = (np.concatenate(column) for column in zip(*rows, strict=True))
    return features, gain, width, weight, len(songs)


def train_producer(config: ProducerConfig, progress: Callable[[int, int], None] | None = None) -> ProducerModel:
    """Read the songs, fit both forests and return the model (deterministic given ``config``)."""
    wall = time.perf_counter()
    features, gain, width, weight, songs = training_rows(config, progress)
    data_s = time.perf_counter() - wall
    wall = time.perf_counter()
    forests = tuple(fit_forest(features, target, config, sample_weight=weight) for target in (gain, width))
    info = training_info(data_s, time.perf_counter() - wall, rows=int(features.shape[0]), real_songs=songs,
                         synth_songs=config.synth_songs)
    return ProducerModel(forests=forests, config=config, info=info)


class ProducerMixer(SettingsMethod):
    """Faders and pans predicted by forests trained on real producers' settings; nothing else."""

    name = "producer"

    def __init__(self, weights: str | os.PathLike | None = None, model: ProducerModel | None = None):
        if model is None:
            model = ProducerModel.load(weights if weights is not None else require("producer.npz"))
        self.model = model

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        features = multitrack_features(multitrack)
        gain, width = self.model.predict(features)
        sounding = features[:, _LOUDNESS] > SILENCE_LUFS
        spec = SPECS["gain_db"]
        order = [i for i in np.argsort(-width, kind="stable") if width[i] >= MIN_WIDTH and sounding[i]]
        side = {int(i): (1.0 if k % 2 == 0 else -1.0) for k, i in enumerate(order)}
        channels = []
        for i, (name, instrument) in enumerate(zip(multitrack.names, multitrack.instruments, strict=True)):
            g = float(gain[i]) if sounding[i] else 0.0
            channels.append(ChannelParams(name=name, instrument=instrument,
                                          gain_db=round(min(max(g, spec.minimum), spec.maximum), 2),
                                          pan=round(side.get(i, 0.0) * float(width[i]), 3)))
        params = ConsoleParams(channels=channels, sample_rate=multitrack.sample_rate, method=self.name)
        params.validate()
        return params


def fit_songs(dataset: str | os.PathLike, songs: Sequence[str], seed: int = 0) -> ProducerMixer:
    """A mixer trained on the named songs of a real dataset with the shipped recipe's settings (cross-validation)."""
    recipe = shipped_recipe()
    config = dataclasses.replace(recipe, dataset=str(dataset), songs=tuple(songs), seed=seed)
    return ProducerMixer(model=train_producer(config))


def shipped_recipe() -> ProducerConfig:
    """The settings of ``configs/producer.yaml`` where the repository has it, else the defaults."""
    path = Path(__file__).resolve().parents[3] / "configs" / "producer.yaml"
    if path.is_file():
        from mixdown.config import load_config

        return load_config(ProducerRecipe, path).producer_config
    return ProducerConfig()


def fit(recipe: ProducerRecipe, progress: Callable[[float, float], None] | None = None) -> ProducerModel:
    """``mixdown train`` of a producer recipe: build the real dataset if needed, train, write ``export``.

    Raises:
        MixdownError: Without an export path or its folder, without LMMS when the dataset
            must be built, or without scikit-learn.
    """
    export = check_export(recipe)
    dataset = Path(recipe.dataset)
    if not dataset.is_dir() or not any(p.is_dir() for p in dataset.iterdir()):
        from mixdown.data.lmms import BuildConfig, build_dataset

        build_dataset(None, dataset, BuildConfig(), workers=os.cpu_count() or 1)
    model = train_producer(recipe.producer_config, progress)
    model.save(export)
    return model
