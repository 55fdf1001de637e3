"""What the held-out benchmarks of the learned mixers share (`estimator_eval.py`, `dmc_eval.py`).

* `heldout_config`: the held-out synthetic songs (`mixdown.synth.synthetic`): seed
  `HELDOUT_SEED` (the training sets use seed 2), 8 s, 2-11 stems, at a chosen rate;
* `setting_errors`: per-stem errors of predicted settings against the true ones;
* `improvement_lines`: ``1 - loss / baseline loss`` of the mean stereo losses, songs
  won, and whether the issue's bar (`BAR`) is met.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mixdown.evaluation.summary import relative_improvement
from mixdown.params import ConsoleParams
from mixdown.synth.synthetic import SynthConfig

HELDOUT_SEED = 1001
"""`SynthConfig` seed of the held-out songs (never a training seed)."""

BAR = 0.25
"""Issue 4: learned methods beat mono and random by >= 25 % on the stereo loss."""

BARRED = ("mono", "random")
"""The baselines the bar applies to."""


def heldout_config(seed: int = HELDOUT_SEED, sample_rate: int = 44100) -> SynthConfig:
    """Settings of the held-out songs: 8 s, 2-11 stems."""
    return SynthConfig(seed=seed, sample_rate=sample_rate, duration_s=8.0, min_stems=2, max_stems=11)


def setting_errors(predicted: ConsoleParams, truth: ConsoleParams) -> tuple[list[float], list[float]]:
    """Per-stem ``(relative gain errors in dB, width errors)`` of ``predicted`` against ``truth``.

    Gains are compared relative to each mix's mean fader (the master normalises the
    loudness), pans by width ``|pan|`` (the side of a pan is a coin flip in the targets).
    Both must list the same channels in the same order.
    """
    gain = np.array([ch.gain_db for ch in predicted.channels])
    true_gain = np.array([ch.gain_db for ch in truth.channels])
    width = np.abs([ch.pan for ch in predicted.channels])
    true_width = np.abs([ch.pan for ch in truth.channels])
    return (np.abs((gain - gain.mean()) - (true_gain - true_gain.mean())).tolist(),
            np.abs(width - true_width).tolist())


def improvement_lines(loss: Mapping[str, Sequence[float]], method: str, baselines: Sequence[str]) -> list[str]:
    """Markdown bullets: ``method`` against each baseline (mean losses over the same songs)."""
    lines = []
    for base in baselines:
        gain, wins = relative_improvement(loss[method], loss[base])
        verdict = "" if base not in BARRED else (" (meets the issue's 25 % bar)" if gain >= BAR else
                                                 " (misses the issue's 25 % bar)")
        lines.append(f"- {method} vs {base}: {100 * gain:+.1f} % ({wins}/{len(loss[method])} songs better){verdict}")
    return lines
