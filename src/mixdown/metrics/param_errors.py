"""Parameter errors: how far estimated console settings are from the true ones.

Where the settings that made a mix are known (synthetic targets, `mixdown.synth.targets`),
an estimate is scored channel by channel (channels matched by name; both must hold the
same set) with absolute errors in the parameters' own units:

* ``gain_db``: ``|g_est - g_true|`` of the faders. A muted channel counts as the fader
  at its minimum (`SPECS` ``gain_db``, -80 dB).
* ``gain_balance_db``: the same after removing the mean offset: with
  ``d_c = g_est,c - g_true,c``, ``|d_c - mean_c d_c|``. When the master normalises
  loudness (``target_lufs``), adding a constant to every fader renders the same mix, so
  only this relative balance is identifiable from audio; ``gain_db`` is meaningful only
  where the absolute level is.
* ``pan``: ``|p_est - p_true|`` in pan units (-1 left .. 1 right).
* ``eq_gain_db``: band by band when the two EQ layouts agree (same band types in the
  same order): the mean of ``|gain_est - gain_true|`` over the bands that have a gain
  (peak and shelves; pass filters ignore it). nan when the layouts differ (no
  band-wise correspondence) or no band has a gain; ``eq_response_db`` compares any
  layouts.
* ``eq_freq_oct``: with agreeing layouts, the mean ``|log2(f_est / f_true)|`` over all
  bands, in octaves; nan otherwise or with no bands.
* ``eq_response_db``: mean absolute difference of the two EQ magnitude responses in dB
  at `EQ_RESPONSE_POINTS` log-spaced frequencies from 20 Hz to 20 kHz (or
  `mixdown.params.max_design_freq_hz`, the top of EQ plots), each response
  (`mixdown.dsp.eq.eq_response_db`, the console's exact response) floored at
  `EQ_RESPONSE_FLOOR_DB` (a deeper cut is as good as silence in a mix); 0 for two flat EQs.
* ``comp_threshold_db``: ``|t_est - t_true|``; ``comp_ratio_log2``:
  ``|log2(r_est / r_true)|`` (ratios are compared on a log axis: 2:1 vs 4:1 and 4:1 vs
  8:1 both give 1). A compressor that is off counts as the neutral settings
  (threshold 0 dB, ratio 1:1), which do nothing.
* ``reverb_send_db``: ``|s_est - s_true|``; a send that is off (None) counts as the
  spec minimum, -80 dB.

`summarize_param_errors` reduces these to medians over channels, ignoring nan.
"""

from __future__ import annotations

import math

import numpy as np

from mixdown.dsp.eq import band_list_response_db
from mixdown.errors import ParamsError
from mixdown.params import (
    SPECS,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    max_design_freq_hz,
)

PARAM_ERROR_NAMES = (
    "gain_db", "gain_balance_db", "pan", "eq_gain_db", "eq_freq_oct", "eq_response_db",
    "comp_threshold_db", "comp_ratio_log2", "reverb_send_db",
)
"""Keys of each channel's errors in `param_errors`."""

EQ_RESPONSE_POINTS = 64
EQ_RESPONSE_FLOOR_DB = -60.0
_GAIN_BANDS = ("peak", "low_shelf", "high_shelf")


def _fader_db(channel: ChannelParams) -> float:
    return SPECS["gain_db"].minimum if channel.mute else channel.gain_db


def _send_db(channel: ChannelParams) -> float:
    return SPECS["reverb_send_db"].minimum if channel.reverb_send_db is None else channel.reverb_send_db


def _eq_errors(est: list[EQBand], true: list[EQBand], sample_rate: int) -> dict[str, float]:
    freqs_hz = np.geomspace(20.0, min(20000.0, max_design_freq_hz(sample_rate)), EQ_RESPONSE_POINTS)
    response_error = np.abs(
        np.maximum(band_list_response_db(est, freqs_hz, sample_rate), EQ_RESPONSE_FLOOR_DB)
        - np.maximum(band_list_response_db(true, freqs_hz, sample_rate), EQ_RESPONSE_FLOOR_DB)
    )
    errors = {"eq_gain_db": math.nan, "eq_freq_oct": math.nan, "eq_response_db": float(response_error.mean())}
    if [band.type for band in est] == [band.type for band in true] and true:
        gains = [abs(e.gain_db - t.gain_db) for e, t in zip(est, true) if t.type in _GAIN_BANDS]
        if gains:
            errors["eq_gain_db"] = float(np.mean(gains))
        errors["eq_freq_oct"] = float(np.mean([abs(math.log2(e.freq_hz / t.freq_hz)) for e, t in zip(est, true)]))
    return errors


def param_errors(estimate: ConsoleParams, truth: ConsoleParams) -> dict[str, dict[str, float]]:
    """Per-channel absolute parameter errors (definitions in the module docstring).

    Args:
        estimate: the settings under test.
        truth: the settings that made the reference; its sample rate sets the EQ
            response grid.

    Returns:
        ``{channel name: {error name: value}}`` in the channel order of ``truth``, with
        the keys of `PARAM_ERROR_NAMES`.

    Raises:
        ParamsError: either is invalid, or they do not hold the same channel names.
    """
    estimate.validate()
    truth.validate()
    by_name = {channel.name: channel for channel in estimate.channels}
    names = [channel.name for channel in truth.channels]
    if set(by_name) != set(names):
        missing, extra = sorted(set(names) - set(by_name)), sorted(set(by_name) - set(names))
        raise ParamsError(f"estimate and truth hold different channels: missing {missing}, extra {extra}")
    est = [by_name[name] for name in names]
    offsets = [_fader_db(e) - _fader_db(t) for e, t in zip(est, truth.channels)]
    mean_offset = float(np.mean(offsets))
    neutral = CompressorParams()
    errors = {}
    for e, t, offset in zip(est, truth.channels, offsets):
        comp_e, comp_t = e.compressor or neutral, t.compressor or neutral
        errors[t.name] = {
            "gain_db": abs(offset),
            "gain_balance_db": abs(offset - mean_offset),
            "pan": abs(e.pan - t.pan),
            **_eq_errors(e.eq, t.eq, truth.sample_rate),
            "comp_threshold_db": abs(comp_e.threshold_db - comp_t.threshold_db),
            "comp_ratio_log2": abs(math.log2(comp_e.ratio / comp_t.ratio)),
            "reverb_send_db": abs(_send_db(e) - _send_db(t)),
        }
    return errors


def summarize_param_errors(errors: dict[str, dict[str, float]]) -> dict[str, float]:
    """Median of each error over channels, nan entries left out.

    Args:
        errors: the output of `param_errors`.

    Returns:
        ``{"median_" + name: value}`` for every name in `PARAM_ERROR_NAMES`; nan where
        no channel has a value.
    """
    summary = {}
    for name in PARAM_ERROR_NAMES:
        values = np.array([channel[name] for channel in errors.values()], dtype=np.float64)
        values = values[~np.isnan(values)]
        summary[f"median_{name}"] = float(np.median(values)) if values.size else math.nan
    return summary
