"""Reverse engineering of a mix: console settings that reproduce a given stereo mix.

Given the stems and a stereo mix made from them, find the `ConsoleParams` whose render
matches the mix. Four stages:

1. **Least squares** (after D. Barchiesi and J. Reiss, "Reverse engineering of a mix",
   JAES 58(7/8), 2010, who estimate each track's mixing filters by least squares). In
   every STFT bin the mix is modelled as a linear combination of the stems,
   ``Y_c(f, t) = sum_i a_ic(f) S_ic(f, t)`` for output channels ``c`` = L, R, and the
   complex filters ``a_ic(f)`` are solved for by (ridge-regularised) least squares.
   Their left/right energy ratio gives the constant-power pan, their magnitude the
   channel's gain times its EQ response, to which the `STANDARD_EQ` strip (high-pass,
   low shelf, bell, high shelf) is fitted on a 1/6-octave grid (a few starting
   frequencies for the bell), the bands weighted by the stem's energy, or, on a linear
   console (no compressor or reverb fitted), by the inverse variance of their measured
   response (`least_squares.band_information`), which pins the shelves where a stem is
   quiet but alone and so separates the fader from a shelf. On gain/pan-only mixes this stage alone recovers the
   settings. The filters see only the part of a stem that is in the mix sample for
   sample: an instrument that renders differently every time (free-running noise, random
   phases, as many of LMMS's do) is in a real mix as another rendering, which least
   squares turns down by its correlation with the file. A second start gives the power
   the filters leave over back to the stems it follows (`least_squares.incoherent_power`),
   so the response is the channel's level in the mix, not its waveform's share of it;
   the start with the lower reported loss is kept.
2. **Reverb and compressors** (`reverb_fit`, `dynamics`): the reverb's sends, decay and
   pre-delay from the energy the dry estimate leaves over, tails weighted most (the
   console's reverb is noise, so its waveform cannot be matched, its energy can); each
   channel's compressor, chosen from a grid of thresholds and ratios by how much of the
   channel's waveform it explains with the other channels free frame by frame, or none
   (on/off compared, not thresholded). The reverb explains the energy the dry estimate
   leaves over, which in a real mix is also what the console cannot model: the start with
   and without it (`start.stage_variants`) whose whole render has the lowest reported loss
   is kept. The compressors stay as the waveform chose them (their grid starts are only
   where the refinement begins, so the loss before it would misjudge them); where the dry
   start of stage 1 (no compressor, no reverb) scores lower, both are refined and the one whose result has the
   lower reported loss is kept (on a real song, compressors that explain a little of the
   waveform can cost more of that loss than the refinement wins back). The reverb
   fitted again after the refinement is kept as its energies have it: the reported loss
   compares log magnitudes, under which two renderings of the same reverb with different
   noise differ almost as much as a reverb and none (`reverb_fit`).
3. **Warm start** (amortised inference): the estimator's prediction
   (`mixdown.mixers.estimator`), its faders brought to the reference's level, is a second
   start; the one with the lower reported loss is kept (``config.warm_start``).
4. **Refinement** (`refine`): Levenberg-Marquardt on every channel's fader, pan, EQ and
   compressor through the console's own channel strips, on excerpts chosen by
   information (`excerpts`: where each channel sounds, transients of compressed ones),
   the waveform compared after a pre-emphasis. The waveform sees only what is in the mix
   sample for sample: from the second start, each channel is refined at its waveform's
   share of its level (`start.Start.coherence_db`, given back after), and channels mostly
   rendered anew are held (`config.MIN_COHERENT_SHARE`). Only steps that lower the residual are
   taken, so it returns its best iterate; and the settings returned are never worse
   than the start by the reported loss (the start is returned otherwise).
   Unity faders, centred and unprocessed (`neutral_start`, at the reference's level) are
   returned instead when their reported loss is lower still: the fit is never worse than
   doing nothing (on real songs whose effects the console cannot represent, it can be).

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
  reproduced. The limiter's gain on the estimated mix is applied in the fit as a
  constant (no gradient).
* Compressor makeup is the same as fader gain, and the reverb return is the same as a
  common offset of all sends (`descent.SERIES_GAINS`): makeup stays 0 dB and the return
  0 dB. High-pass and shelf Q stay at 0.707; the bell's Q is fitted.
* Where a shelf covers all of a stem's spectrum, its gain and the fader are
  interchangeable. The bands keep to their standard slots' ranges (`fitted_band_spec`:
  no high shelf at 90 Hz acting as a second fader) and a weak prior towards 0 dB EQ
  picks the smallest EQ, so the fader says how loud the channel is.
* A compressor whose fitted ratio is at or under `COMPRESSOR_OFF_RATIO` is returned off.
* The rest is measured, not assumed: `ReverseReport.unidentifiable` lists per channel
  the settings whose range in the refinement's normal equations (the values the mix
  does not tell apart, `ReverseReport.ranges`) is wider than a step an engineer would
  notice (`refine.identifiability`) and the sends whose energy fit is flat
  (`reverb_fit.undetermined_sends`); ``mixdown reverse`` prints them with their ranges and
  writes them beside the settings.

The stages, one module each, chained by `fit` (and `reverse_engineer`, `ReverseMethod`):

* `config`: `ReverseConfig` (what is fitted, how long) and `ReverseReport`;
* `reference`: `load_reference`, `check_reference`, `analysis_window` (the part fitted)
  and `master_from_reference` (loudness target and ceiling);
* `least_squares`: `least_squares_filters`, `pans_from_filters`, `band_responses`,
  `band_information`;
* `eq_fit`: `fit_standard_eq` (Adam, then `levenberg_marquardt`);
* `reverb_fit`, `dynamics`: stage 2;
* `start`: `initial_settings` (stages 1 and 2), `neutral_settings`;
* `excerpts`, `refine`: stage 4 and `identifiability`;
* `descent`: `free_parameters` (with `fixed_reason`, the rules that leave a parameter
  alone), `ConsoleFit`, `render_unnormalised` and `matched_loss`;
* here: the warm start, `fitted_params` (the fitted tensors as validated
  `ConsoleParams`) and `fit`.

Reverse engineering needs the mix to reproduce: `mixdown.mixers.METHODS` registers
`ReverseMethod` with ``Capabilities(needs_target=True)``, and `mixdown.api.mix` passes it
the target mix.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from mixdown.console import ConsoleTensors
from mixdown.dsp.loudness import integrated_loudness
from mixdown.errors import AudioError, MixdownError
from mixdown.losses import FixedTargetLoss, StereoLoss
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
    FreeParameter,
    fixed_reason,
    free_parameters,
    matched_loss,
    render_unnormalised,
)
from mixdown.mixers.reverse.eq_fit import (
    SHELF_Q,
    EQFit,
    fit_standard_eq,
    fitted_band_spec,
    levenberg_marquardt,
    torch_threads,
)
from mixdown.mixers.reverse.excerpts import informative_excerpts
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
from mixdown.mixers.reverse.refine import Refinement, SettingRange, identifiability, limiter_gain_mask, refine
from mixdown.mixers.reverse.reverb_fit import ReverbFit, undetermined_sends
from mixdown.mixers.reverse.start import (
    contributions,
    fader_in_range,
    gain_offset_db,
    initial_settings,
    neutral_settings,
    reverb_of,
    stage_variants,
    wet,
    with_reverb,
)
from mixdown.multitrack import SILENCE_DBFS, Multitrack
from mixdown.params import ConsoleParams

__all__ = [
    "COMPRESSOR_OFF_RATIO", "EQ_PRIOR_DB", "MAX_LENGTH_MISMATCH_S", "SHELF_Q", "ConsoleFit", "EQFit", "FreeParameter",
    "ProgressCallback", "ReverseConfig", "ReverseMethod", "ReverseReport", "SettingRange", "analysis_window",
    "band_responses", "check_reference", "estimator_start", "fit", "fit_standard_eq", "fitted_band_spec",
    "fitted_params", "fixed_reason", "free_parameters", "initial_settings", "least_squares_filters",
    "levenberg_marquardt", "load_reference", "master_from_reference", "matched_loss", "neutral_settings",
    "neutral_start", "pans_from_filters", "render_unnormalised", "reverse_engineer",
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


def neutral_start(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, start: ConsoleTensors,
                  sample_rate: int) -> ConsoleTensors:
    """Unity faders, centred, unprocessed (`neutral_settings`) at the reference's level: what `fit`
    returns when its fit explains the mix worse than that (seen on real LMMS songs whose effects the
    console cannot represent).

    Args:
        stems, reference, stereo: the analysis window (as `fit` holds them).
        start: the least-squares start (its master is kept).
        sample_rate: in Hz.

    Returns:
        Batch-1 settings without EQ bands, their faders moved together by the common gain
        that brings their mix closest to the reference.
    """
    neutral = neutral_settings(start)
    offset = gain_offset_db(contributions(stems, neutral, stereo, sample_rate).sum(0), reference)
    return replace(neutral, gain_db=fader_in_range(neutral.gain_db + offset))


def estimator_start(multitrack: Multitrack, stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor,
                    start: ConsoleTensors, sample_rate: int) -> ConsoleTensors | None:
    """The estimator's prediction as a start for the fit (amortised inference), or None without one.

    The estimator (`mixdown.mixers.estimator.EstimatorMixer`, the shipped weights)
    proposes every channel's settings from the stems alone; they take the fit's master
    (normalisation off, the reference's ceiling) and reverb, and their faders are moved
    together by the common gain that brings their dry mix closest to the reference.

    Args:
        multitrack: the stems.
        stems, reference, stereo: the analysis window (as `fit` holds them).
        start: the least-squares start (its master and reverb are taken).
        sample_rate: in Hz.

    Returns:
        Batch-1 settings with ``start``'s layout, or None when the estimator cannot be
        loaded or proposes another EQ layout.
    """
    from mixdown.mixers.estimator import EstimatorMixer

    try:
        predicted = EstimatorMixer().predict(multitrack).ordered_like(multitrack.names)
    except MixdownError:
        return None
    p = ConsoleTensors.from_params([predicted])
    if p.eq_type.shape != start.eq_type.shape or not torch.equal(p.eq_type, start.eq_type):
        return None
    p = replace(p, master_gain_db=start.master_gain_db, target_lufs=start.target_lufs,
                ceiling_dbtp=start.ceiling_dbtp, reverb_decay_s=start.reverb_decay_s,
                reverb_predelay_ms=start.reverb_predelay_ms, reverb_return_db=start.reverb_return_db,
                reverb_send_db=start.reverb_send_db)
    offset = gain_offset_db(contributions(stems, p, stereo, sample_rate).sum(0), reference)
    return replace(p, gain_db=fader_in_range(p.gain_db + offset))


@dataclass(frozen=True)
class _Refined:
    """One start refined by `fit`: its scored loss and settings, the start's label and loss, the
    refinement (its last normal equations feed `identifiability`) and the reverb fitted after it."""

    loss: float
    params: ConsoleParams
    label: str
    loss_at_start: float
    refinement: Refinement
    reverb: ReverbFit | None


@torch_threads(1)  # small-tensor algebra beside numba's parallel kernels (see `torch_threads`)
def fit(multitrack: Multitrack, reference: np.ndarray, config: ReverseConfig = ReverseConfig(),
        progress: ProgressCallback | None = None) -> tuple[ConsoleParams, ReverseReport]:
    """The whole fit (checks, stages 1 to 4): the settings and how it went (see `reverse_engineer`).

    Torch runs on one thread throughout; the numba kernels of the EQ and the compressors keep
    numba's threads."""
    began = time.perf_counter()
    deadline = None if config.time_budget_s is None else began + config.time_budget_s
    reference = check_reference(multitrack, reference)
    sample_rate = multitrack.sample_rate
    window = analysis_window(multitrack.num_frames, sample_rate, config.max_analysis_s)
    stems = torch.from_numpy(multitrack.to_array()[..., window])
    if float(stems.abs().max()) <= 10.0 ** (SILENCE_DBFS / 20.0):
        raise AudioError("every stem is silent; there is nothing to fit")
    target_lufs, ceiling = master_from_reference(reference, sample_rate)
    ceiling_value = math.nan if ceiling is None else ceiling
    ref = torch.from_numpy(np.ascontiguousarray(reference[:, window]))
    stereo = torch.from_numpy(multitrack.stereo_mask())
    loss = StereoLoss(config.loss)
    if stems.shape[-1] < loss.config.min_samples:
        raise AudioError(f"the stems are {stems.shape[-1]} samples long; reverse engineering needs at least "
                         f"{loss.config.min_samples}")
    ref_lufs = integrated_loudness(ref[None].double(), sample_rate)
    reported = FixedTargetLoss(loss, ref[None])  # the reported loss; the reference's spectra computed once

    memo: dict[int, tuple[ConsoleTensors, float, ConsoleParams]] = {}  # by id: the dry start is scored once

    def scored(p: ConsoleTensors) -> tuple[float, ConsoleParams]:
        if id(p) not in memo:
            params = fitted_params(p, multitrack, target_lufs, ceiling)
            memo[id(p)] = (p, matched_loss(reported, stems, stereo, ConsoleTensors.from_params([params]),
                                           sample_rate, ref_lufs), params)
        return memo[id(p)][1:]

    stage = initial_settings(stems, ref, stereo, sample_rate, config, ceiling_value,
                             lambda starts: min(range(len(starts)), key=lambda k: scored(starts[k])[0]))
    start = min(stage_variants(stage), key=lambda p: scored(p)[0])  # a reverb may soak up what is not one
    chosen, (initial_loss, start_params) = "least squares", scored(start)
    parts = contributions(stems, start, stereo, sample_rate)
    compressed = start.ratio[0] > COMPRESSOR_OFF_RATIO
    excerpts = informative_excerpts(parts, compressed, sample_rate, config.excerpts, config.excerpt_s,
                                    config.preroll_s)
    gain_mask = limiter_gain_mask(parts.sum(0).double() + wet(parts.double(), start, sample_rate), ceiling_value,
                                  sample_rate)

    # The waveform fits only the share of a channel that is in the mix sample for sample: the refinement works
    # on that share's level (an instrument rendered anew in the mix would otherwise be turned down to it).
    # Channels mostly rendered anew are held (`Start.held`).
    coherence_db = stage.coherence_db.float()[None]

    def refinement(p: ConsoleTensors, iterations: int):
        coherent = replace(p, gain_db=fader_in_range(p.gain_db + coherence_db))
        result = refine(stems, ref, stereo, coherent, free_parameters(p, config, sample_rate),
                        p.ratio[0] > COMPRESSOR_OFF_RATIO, excerpts, gain_mask, sample_rate, iterations,
                        config.refine_prior_weight, config.seed, deadline, progress, stage.held)
        result.settings = replace(result.settings, gain_db=fader_in_range(result.settings.gain_db - coherence_db))
        return result

    if config.warm_start:
        candidate = estimator_start(multitrack, stems, ref, stereo, start, sample_rate)
        if candidate is not None:
            candidate_loss, candidate_params = scored(candidate)
            if candidate_loss < initial_loss:
                start, chosen, initial_loss, start_params = candidate, "estimator", candidate_loss, candidate_params
    neutral_loss, neutral_params = scored(neutral_start(stems, ref, stereo, start, sample_rate))
    # The stage-1 start (no compressor, no reverb: scored already), where compressors were kept and it scores
    # lower: refined too, the better result kept (`stage_variants`).
    starts = [(start, chosen, initial_loss, start_params)]
    if stage.compressors is not None and any(c.on for c in stage.compressors) and scored(stage.dry)[0] < initial_loss:
        starts.append((stage.dry, "least squares without compressors", *scored(stage.dry)))
    least_squares_s = time.perf_counter() - began

    def refined(p: ConsoleTensors, label: str, loss_at_start: float, params_at_start: ConsoleParams) -> _Refined:
        """The refinement from start ``p``, its reverb fitted again now that the dry channels are in place (by
        its energies: `reverb_fit`), the settings never worse than the start's (the start's are returned
        otherwise, NaN included)."""
        result = refinement(p, config.steps)
        fitted, reverb = replace(result.settings, reverb_send_db=torch.full_like(p.reverb_send_db, -math.inf)), None
        if config.fit_reverb:
            reverb = reverb_of(contributions(stems, fitted, stereo, sample_rate).double(), ref.double(), fitted,
                               ceiling_value, sample_rate)
            fitted = with_reverb(fitted, reverb)
        final_loss, params = scored(fitted)
        if not final_loss <= loss_at_start:
            final_loss, params = loss_at_start, params_at_start
        return _Refined(final_loss, params, label, loss_at_start, result, reverb)

    best = min((refined(*s) for s in starts), key=lambda run: run.loss)
    params, final_loss, chosen = best.params, best.loss, best.label
    if neutral_loss < final_loss:  # the console explains this mix worse than doing nothing
        params, final_loss, chosen = neutral_params, neutral_loss, "neutral"
    returned = ConsoleTensors.from_params([best.params])
    ranges = identifiability(best.refinement, multitrack.names, returned)
    unidentifiable = {name: tuple(r.path for r in found if not r.determined) for name, found in ranges.items()}
    if best.reverb is not None:
        for name, flat in zip(multitrack.names, undetermined_sends(best.reverb), strict=True):
            if flat:
                unidentifiable[name] = (*unidentifiable.get(name, ()), "reverb_send_db")
    report = ReverseReport(neutral_loss=neutral_loss, initial_loss=best.loss_at_start, final_loss=final_loss,
                           steps=len(best.refinement.losses) - 1, least_squares_s=least_squares_s,
                           seconds=time.perf_counter() - began, converged=best.refinement.converged,
                           losses=tuple(best.refinement.losses), start=chosen,
                           unidentifiable={name: unidentifiable[name] for name in multitrack.names
                                           if unidentifiable.get(name)},
                           ranges={} if chosen == "neutral" else {
                               ch.name: {r.path: (r.low, r.high) for r in ranges[ch.name]
                                         if ch.compressor is not None or not r.path.startswith("compressor.")}
                               for ch in best.params.channels if ch.name in ranges})
    return params, report


def reverse_engineer(multitrack: Multitrack, reference: np.ndarray, config: ReverseConfig = ReverseConfig(),
                     progress: ProgressCallback | None = None) -> ConsoleParams:
    """Console settings whose render of ``multitrack`` reproduces ``reference``.

    Args:
        multitrack: the stems the reference was mixed from.
        reference: the stereo mix, float32 ``(2, num_frames)`` at the stems' rate,
            time-aligned with them.
        config: search settings.
        progress: called with ``(iteration, config.steps)`` after each refinement iteration.

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
