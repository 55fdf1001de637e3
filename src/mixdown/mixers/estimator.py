"""The learned parameter estimator as a mixer (`mixdown.models.estimator`, shipped weights).

The network was trained on short segments, so a song is analysed in excerpts: up to
`EXCERPTS` excerpts of `EXCERPT_S` seconds, evenly spaced from the start to the end
of the song (one zero-padded excerpt for a shorter song), all stems of an excerpt
together, all excerpts in one batch. Each stem's normalised settings are averaged over
the excerpts in which it sounds (RMS at least `ACTIVE_DBFS`; over all excerpts if it
sounds in none), the master's over all excerpts, then mapped to physical units once.
Averaging in the normalised space is averaging on the network's own scales (log for
frequencies and times). A stem whose pan side flips between excerpts averages towards
the centre.

Stems at another rate than the model's are resampled for the analysis only; the
settings are in physical units and apply at any rate (EQ frequencies are capped below
the multitrack's Nyquist limit). The mix is rendered by `mixdown.console.render`.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from mixdown.audio import resample
from mixdown.mixers import SettingsMethod
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack
from mixdown.params import ConsoleParams, clamp_freq_hz
from mixdown.weights import require

EXCERPT_S = 2.0
"""Length of an analysed excerpt: the training segment length of ``configs/estimator.yaml``."""

EXCERPTS = 8
"""Most excerpts analysed per song."""

ACTIVE_DBFS = -60.0
"""A stem sounds in an excerpt when its RMS level is at least this (the datasets' silence threshold)."""



def excerpt_starts(frames: int, excerpt: int, count: int) -> list[int]:
    """Start frames of up to ``count`` excerpts of ``excerpt`` frames spread evenly over ``frames``."""
    last = max(frames - excerpt, 0)
    if last == 0:
        return [0]
    return sorted({int(round(x)) for x in np.linspace(0, last, min(count, 1 + last // max(excerpt // 2, 1)))})


class EstimatorMixer(SettingsMethod):
    """Console settings predicted by the trained estimator (see the module docstring).

    Args:
        weights: A checkpoint written by `mixdown.models.save_model` for the
            ``estimator`` model; default: the shipped one.

    Raises:
        MixdownError: If the weights are missing, unreadable or of another model.
    """

    name = "estimator"

    def __init__(self, weights: str | os.PathLike | None = None):
        from mixdown.models import load_model_as

        loaded = load_model_as("estimator", weights if weights is not None else require("estimator.pt"))
        self.model = loaded.model
        self.sample_rate = loaded.sample_rate

    def analysis_batch(self, multitrack: Multitrack) -> tuple[torch.Tensor, torch.Tensor]:
        """Excerpts of every stem at the model's rate.

        Returns:
            ``(stems, active)``: ``(excerpts, tracks, channels, samples)`` float32 (mono
            stems duplicated when any stem is stereo) and ``(excerpts, tracks)`` bool.
        """
        rate = multitrack.sample_rate
        excerpt = round(EXCERPT_S * rate)
        starts = excerpt_starts(multitrack.num_frames, excerpt, EXCERPTS)
        channels = 2 if multitrack.stereo_mask().any() else 1
        samples = round(EXCERPT_S * self.sample_rate)
        stems = np.zeros((len(starts), multitrack.num_tracks, channels, samples), dtype=np.float32)
        for t in range(multitrack.num_tracks):
            audio = multitrack.stem_audio(t)
            for k, start in enumerate(starts):
                piece = audio[:, start:start + excerpt]
                if rate != self.sample_rate:
                    piece = resample(piece, rate, self.sample_rate)
                piece = piece[:, :samples]
                stems[k, t, :, :piece.shape[-1]] = piece  # a mono stem broadcasts to both channels
        rms = np.sqrt(np.mean(np.square(stems, dtype=np.float64), axis=(2, 3)))
        with np.errstate(divide="ignore"):
            active = 20.0 * np.log10(rms) >= ACTIVE_DBFS
        return torch.from_numpy(stems), torch.from_numpy(active)

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        stems, active = self.analysis_batch(multitrack)
        excerpts, tracks = active.shape
        mask = torch.ones(excerpts, tracks, dtype=torch.bool)
        instruments = torch.tensor([[INSTRUMENT_CLASSES.index(c) for c in multitrack.instruments]] * excerpts)
        with torch.no_grad():
            estimate = self.model.estimate(stems, mask, instruments)
            weights = torch.where(active.any(dim=0, keepdim=True), active, torch.ones_like(active)).float()
            normalized = (estimate.normalized * weights[..., None]).sum(0) / weights.sum(0)[:, None]
            master = estimate.master_normalized.mean(0)
            settings = self.model.to_console(normalized[None], master[None], mask[:1])
        settings.eq_freq_hz.clamp_(max=clamp_freq_hz(math.inf, multitrack.sample_rate))
        params = settings.to_params(0, multitrack.names, multitrack.instruments, multitrack.sample_rate, self.name)
        params.validate()
        return params
