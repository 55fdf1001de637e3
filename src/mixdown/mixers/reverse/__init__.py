"""Reverse engineering of a mix: console settings that reproduce a given stereo mix.

Given the stems and a stereo mix made from them, find the `ConsoleParams` whose render
matches the mix. Two stages:

1. **Least squares** (after D. Barchiesi and J. Reiss, "Reverse engineering of a mix",
   JAES 58(7/8), 2010, who estimate each track's mixing filters by least squares). In
   every STFT bin the mix is modelled as a linear combination of the stems,
   ``Y_c(f, t) = sum_i a_ic(f) S_ic(f, t)`` for output channels ``c`` = L, R, and the
   complex filters ``a_ic(f)`` are solved for by (ridge-regularised) least squares.
   Their left/right energy ratio gives the constant-power pan, their magnitude the
   channel's gain times its EQ response, to which the `STANDARD_EQ` strip (high-pass,
   low shelf, bell, high shelf) is fitted on a 1/6-octave grid (a few starting
   frequencies for the bell). On gain/pan-only mixes this stage alone recovers the
   settings.
2. **Gradient descent through the console** (in the spirit of J. T. Colonel and J. Reiss'
   DDSP reverse engineering of mixes, JASA 2021): Adam on every channel's gain, pan,
   EQ, compressor and reverb send and on the reverb decay (the free parameters are
   selected from the parameter schema, `descent.free_parameters`), through the differentiable
   `mixdown.console.render_tensor`, minimising `StereoLoss` (sum/difference MR-STFT plus
   a small time-domain L1 term, which also fixes the left/right orientation the STFT
   terms cannot see) on random excerpts. Each parameter lives in its normalised range
   through a sigmoid (``SPECS[name].denormalize(sigmoid(logit))``), so every iterate is a
   valid setting. The learning rate halves when the smoothed loss stops improving, and
   the fit stops when it has been halved `ReverseConfig.lr_reductions` times, after
   ``steps`` steps or after ``time_budget_s`` seconds.

What a mix does not determine, and how it is fixed:

* Loudness normalisation makes a common gain offset unobservable. The fit runs with
  normalisation off, so the faders absorb the master's gain: rendered without
  normalisation the estimate already sits at the reference's level. The returned
  ``master.target_lufs`` is the reference's measured loudness (None outside the
  accepted range), so the render matches it exactly and edits keep that loudness.
  Compare faders with a reference's *effective* gains (fader + makeup + the
  normaliser's gain), as `benchmarks/reverse_speed.py` does.
* ``master.ceiling_dbtp`` is the reference's true peak (when within range): the
  estimate never peaks above the reference, and a limited reference's limiting is
  reproduced. The limiter is applied in the fit with a constant gain (no gradient).
* Compressor makeup is the same as fader gain, and the reverb return is the same as a
  common offset of all sends (`descent.SERIES_GAINS`): makeup stays 0 dB and the return
  0 dB. The pre-delay is not differentiable (whole samples) and stays at its default.
  High-pass and shelf Q stay at 0.707; the bell's Q is fitted.
* Where a shelf covers all of a stem's spectrum, its gain and the fader are
  interchangeable; a weak prior towards 0 dB EQ picks the smallest EQ.
* A compressor whose fitted ratio stays under `COMPRESSOR_OFF_RATIO` is returned off.

The stages, one module each, chained by `fit` (and `reverse_engineer`, `ReverseMethod`):

* `config`: `ReverseConfig` (what is fitted, how long) and `ReverseReport`;
* `reference`: `load_reference`, `check_reference`, `analysis_window` (the part fitted)
  and `master_from_reference` (loudness target and ceiling);
* `least_squares`: `least_squares_filters`, `pans_from_filters`, `band_responses`;
* `eq_fit`: `fit_standard_eq` (Adam, then `levenberg_marquardt`);
* `start`: `initial_settings` (stage 1 as a whole), `reverb_start`, `neutral_settings`;
* `descent`: `free_parameters` (with `fixed_reason`, the rules that leave a parameter
  alone), `ConsoleFit`, `render_unnormalised`, `descend` (stage 2) and `matched_loss`;
* here: `fitted_params` (the fitted tensors as validated `ConsoleParams`).

Reverse engineering needs the mix to reproduce: `mixdown.mixers.METHODS` registers
`ReverseMethod` with ``Capabilities(needs_target=True)``, and `mixdown.api.mix` passes it
the target mix.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mixdown.console import ConsoleTensors
from mixdown.errors import AudioError, MixdownError
from mixdown.losses import StereoLoss
from mixdown.mixers import Capabilities, MethodOutput
from mixdown.mixers.reverse.config import (
    COMPRESSOR_OFF_RATIO,
    EQ_PRIOR_DB,
    ProgressCallback,
    ReverseConfig,
    ReverseReport,
)
from mixdown.mixers.reverse.descent import (
    ConsoleFit,
    Descent,
    FreeParameter,
    descend,
    fixed_reason,
    free_parameters,
    matched_loss,
    render_unnormalised,
)
from mixdown.mixers.reverse.eq_fit import (
    SHELF_Q,
    EQFit,
    fit_standard_eq,
    levenberg_marquardt,
)
from mixdown.mixers.reverse.least_squares import (
    band_responses,
    least_squares_filters,
    pans_from_filters,
)
from mixdown.mixers.reverse.reference import (
    MAX_LENGTH_MISMATCH_S,
    analysis_window,
    check_reference,
    load_reference,
    master_from_reference,
)
from mixdown.mixers.reverse.start import (
    initial_settings,
    neutral_settings,
    reverb_start,
)
from mixdown.multitrack import SILENCE_DBFS, Multitrack
from mixdown.params import ConsoleParams

__all__ = [
    "COMPRESSOR_OFF_RATIO", "EQ_PRIOR_DB", "MAX_LENGTH_MISMATCH_S", "SHELF_Q", "ConsoleFit", "Descent", "EQFit",
    "FreeParameter", "ProgressCallback", "ReverseConfig", "ReverseMethod", "ReverseReport", "analysis_window",
    "band_responses", "check_reference", "descend", "fit_standard_eq", "fitted_params", "fixed_reason",
    "fit", "free_parameters",
    "initial_settings", "least_squares_filters", "levenberg_marquardt", "load_reference", "master_from_reference",
    "matched_loss", "neutral_settings", "pans_from_filters", "render_unnormalised", "reverb_start",
    "reverse_engineer",
]

METHOD_NAME = "reverse"
"""The ``method`` of the settings it returns."""


def fitted_params(p: ConsoleTensors, multitrack: Multitrack, target_lufs: float | None,
                  ceiling_dbtp: float | None) -> ConsoleParams:
    """The fitted settings as validated `ConsoleParams` for ``multitrack``'s stems.

    Compressors whose ratio stayed at or under `COMPRESSOR_OFF_RATIO` are switched off;
    the master gets the reference's loudness target and ceiling (`master_from_reference`).

    Args:
        p: batch-1 settings, one channel per stem in the multitrack's order.
        multitrack: the stems (names, instruments, sample rate).
        target_lufs, ceiling_dbtp: the master's (None: off).

    Returns:
        Valid settings, method ``"reverse"``.
    """
    params = p.to_params(0, multitrack.names, multitrack.instruments, multitrack.sample_rate, METHOD_NAME)
    for ch, ratio in zip(params.channels, p.ratio[0].tolist(), strict=True):
        if ratio <= COMPRESSOR_OFF_RATIO:
            ch.compressor = None
    params.master.target_lufs = target_lufs
    params.master.ceiling_dbtp = ceiling_dbtp
    params.validate()
    return params


def fit(multitrack: Multitrack, reference: np.ndarray, config: ReverseConfig = ReverseConfig(),
        progress: ProgressCallback | None = None) -> tuple[ConsoleParams, ReverseReport]:
    """The whole fit (checks, stage 1, stage 2): the settings and how it went (see `reverse_engineer`)."""
    began = time.perf_counter()
    reference = check_reference(multitrack, reference)
    sample_rate = multitrack.sample_rate
    window = analysis_window(multitrack.num_frames, sample_rate, config.max_analysis_s)
    stems = torch.from_numpy(multitrack.to_array()[..., window])
    if float(stems.abs().max()) <= 10.0 ** (SILENCE_DBFS / 20.0):
        raise AudioError("every stem is silent; there is nothing to fit")
    target_lufs, ceiling = master_from_reference(reference, sample_rate)
    ref = torch.from_numpy(np.ascontiguousarray(reference[:, window]))
    stereo = torch.from_numpy(multitrack.stereo_mask())
    loss = StereoLoss(config.loss)
    if stems.shape[-1] < loss.config.min_samples:
        raise AudioError(f"the stems are {stems.shape[-1]} samples long; reverse engineering needs at least "
                         f"{loss.config.min_samples}")
    start = initial_settings(stems, ref, stereo, sample_rate, config, float("nan") if ceiling is None else ceiling)
    neutral_loss = matched_loss(loss, stems, ref, stereo, neutral_settings(start), sample_rate)
    initial_loss = matched_loss(loss, stems, ref, stereo, start, sample_rate)
    least_squares_s = time.perf_counter() - began
    fitted, history, converged = descend(stems, ref, stereo, start, sample_rate, config, loss, progress, began)
    params = fitted_params(fitted, multitrack, target_lufs, ceiling)
    final_loss = matched_loss(loss, stems, ref, stereo, ConsoleTensors.from_params([params]), sample_rate)
    report = ReverseReport(neutral_loss=neutral_loss, initial_loss=initial_loss, final_loss=final_loss,
                           steps=len(history), least_squares_s=least_squares_s,
                           seconds=time.perf_counter() - began, converged=converged,
                           losses=tuple(history))
    return params, report


def reverse_engineer(multitrack: Multitrack, reference: np.ndarray, config: ReverseConfig = ReverseConfig(),
                     progress: ProgressCallback | None = None) -> ConsoleParams:
    """Console settings whose render of ``multitrack`` reproduces ``reference``.

    Args:
        multitrack: the stems the reference was mixed from.
        reference: the stereo mix, float32 ``(2, num_frames)`` at the stems' rate,
            time-aligned with them.
        config: search settings.
        progress: called with ``(step, config.steps)`` after each descent step.

    Returns:
        Valid settings for exactly the multitrack's stems (method ``"reverse"``).

    Raises:
        AudioError: if the reference is not stereo, not as long as the stems, not
            finite or silent, or every stem is silent.
    """
    return fit(multitrack, reference, config, progress)[0]


class ReverseMethod:
    """Reverse engineering as a `mixdown.mixers.Method`: it needs the target mix.

    ``run(multitrack, target=mix)`` returns the settings, with the fit's `ReverseReport`
    in ``info["report"]``.
    """

    name = METHOD_NAME
    capabilities = Capabilities(needs_target=True)

    def __init__(self, config: ReverseConfig = ReverseConfig()):
        self.config = config

    def run(self, multitrack: Multitrack, target: np.ndarray | None = None, reference: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> MethodOutput:
        if target is None:
            raise MixdownError("reverse engineering needs the mix to reproduce (a target mix)")
        params, report = fit(multitrack, target, self.config, progress)
        return MethodOutput(params=params, info={"report": report})
