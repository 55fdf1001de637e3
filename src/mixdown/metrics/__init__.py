"""Objective mix metrics: audio distances, style-feature differences, parameter errors.

`evaluate_mix` is the one entry point for comparing a mix with a reference mix; it
returns flat ``{name: float}`` rows for a results table. Parameter errors, which need
the true console settings, are `param_errors` / `summarize_param_errors`.
"""

from __future__ import annotations

from typing import Any

from mixdown.metrics.audio import (
    MRSTFT_CONFIG,
    check_stereo_pair,
    loudness_diff_lu,
    loudness_matched,
    matched_stereo_mrstft,
    mrstft_distances,
    si_sdr_db,
)
from mixdown.metrics.features import (
    FEATURE_NAMES,
    feature_differences,
    mix_features,
    panning_index,
)
from mixdown.metrics.param_errors import (
    PARAM_ERROR_NAMES,
    param_errors,
    summarize_param_errors,
)

__all__ = [
    "FEATURE_NAMES", "MRSTFT_CONFIG", "PARAM_ERROR_NAMES", "check_stereo_pair", "evaluate_mix",
    "feature_differences", "loudness_diff_lu", "loudness_matched",
    "matched_stereo_mrstft", "mix_features",
    "mrstft_distances", "panning_index", "param_errors", "si_sdr_db", "summarize_param_errors",
]


def evaluate_mix(estimate: Any, reference: Any, sample_rate: int) -> dict[str, float]:
    """Every audio metric and feature difference between a mix and a reference mix.

    Args:
        estimate: the mix under test, ``(2, samples)`` array.
        reference: the reference mix, ``(2, samples)``, same length and sample rate.
        sample_rate: in Hz.

    Returns:
        ``{"stereo_mrstft", "stereo_mrstft_matched", "mrstft", "si_sdr_db", "loudness_diff_lu"}`` (see
        `mixdown.metrics.audio`) and ``"diff_<feature>"`` for every feature of
        `FEATURE_NAMES` (estimate minus reference). All zero for identical mixes,
        except ``si_sdr_db`` which is then ``+inf`` (summarise it with a median).

    Raises:
        AudioError: bad shapes or lengths, non-finite samples, a silent reference.
    """
    est, ref = check_stereo_pair(estimate, reference, sample_rate)
    distances = mrstft_distances(est, ref)
    row = {
        "stereo_mrstft": distances["stereo_mrstft"],
        "stereo_mrstft_matched": matched_stereo_mrstft(est, ref, sample_rate),
        "mrstft": distances["mrstft"],
        "si_sdr_db": si_sdr_db(est, ref),
        "loudness_diff_lu": loudness_diff_lu(est, ref, sample_rate),
    }
    row.update(feature_differences(est, ref, sample_rate))
    return row
