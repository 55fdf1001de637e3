"""What reverse engineering is asked (`ReverseConfig`) and what it reports back (`ReverseReport`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mixdown.errors import MixdownError
from mixdown.losses import StereoLossConfig

ProgressCallback = Callable[[int, int], None]
"""Called with ``(step, max_steps)`` after each optimisation step."""

COMPRESSOR_OFF_RATIO = 1.1
"""Compressors start at this ratio (barely compressing); those the descent did not push higher are returned off."""

EQ_PRIOR_DB = 9.0
"""Scale (dB) of the weak prior on EQ gains (`ReverseConfig.eq_prior_weight`)."""


@dataclass(frozen=True)
class ReverseConfig:
    """How the settings are searched for.

    Attributes:
        steps: most Adam steps through the console (0 keeps the least-squares estimate).
        excerpt_s: length of the random excerpt compared at each step, in seconds.
        preroll_s: audio rendered before each excerpt (not compared) so the reverb
            tail and the filter and compressor states are warmed up.
        learning_rate: Adam step size (logit units) of the compressor and reverb settings.
        balance_learning_rate: Adam step size of gain, pan and EQ, which the least-squares
            stage already places well. Smaller, because Adam's normalised steps turn the
            excerpt-to-excerpt noise along directions the mix does not determine (gain
            versus a shelf) into a random walk.
        plateau_steps: steps without a relative improvement of ``min_improvement``
            in the smoothed loss before the learning rate halves.
        min_improvement: relative improvement that counts.
        lr_reductions: halvings after which the fit has converged and stops.
        time_budget_s: stop the descent after this many seconds (None: no limit).
        seed: seeds the choice of excerpts.
        max_analysis_s: longer songs are analysed on their central excerpt of this length.
        fit_eq: fit the `STANDARD_EQ` strip (else the channels get no EQ).
        fit_compressor: fit a compressor on every channel.
        fit_reverb: fit reverb sends and decay (else the sends are off).
        eq_fit_steps: Adam steps of the least-squares EQ curve fit.
        eq_polish_steps: Levenberg-Marquardt steps that finish the EQ curve fit.
        eq_prior_weight: weight of the prior pulling EQ gains towards 0 dB: the curve
            fit adds ``w * sum((eq_gain_db / EQ_PRIOR_DB)^2)`` per channel to its error in
            dB^2, the descent ``w * mean((eq_gain_db / EQ_PRIOR_DB)^2)`` to the loss
            (`EQ_PRIOR_DB` = 9 dB). It only decides where the mix cannot (gain versus a
            shelf covering a stem's whole spectrum).
        ls_window_s: STFT window of the least-squares stage (rounded to a power of 2).
        loss: the loss compared at each step.
    """

    steps: int = 300
    excerpt_s: float = 2.5
    preroll_s: float = 0.5
    learning_rate: float = 0.03
    balance_learning_rate: float = 0.005
    plateau_steps: int = 25
    min_improvement: float = 0.002
    lr_reductions: int = 3
    time_budget_s: float | None = None
    seed: int = 0
    max_analysis_s: float = 60.0
    fit_eq: bool = True
    fit_compressor: bool = True
    fit_reverb: bool = True
    eq_fit_steps: int = 100
    eq_polish_steps: int = 20
    eq_prior_weight: float = 0.03
    ls_window_s: float = 0.093
    loss: StereoLossConfig = field(default_factory=lambda: StereoLossConfig(time_l1_weight=1.0))

    def __post_init__(self) -> None:
        if min(self.steps, self.eq_fit_steps, self.eq_polish_steps) < 0:
            raise MixdownError(f"steps must be >= 0, got {self.steps}, {self.eq_fit_steps} and "
                               f"{self.eq_polish_steps}")
        if self.excerpt_s <= 0.0 or self.preroll_s < 0.0 or self.max_analysis_s <= 0.0:
            raise MixdownError("excerpt_s and max_analysis_s must be > 0 and preroll_s >= 0")
        if self.time_budget_s is not None and self.time_budget_s <= 0.0:
            raise MixdownError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        if min(self.learning_rate, self.balance_learning_rate) <= 0.0 or self.plateau_steps < 1 \
                or self.lr_reductions < 0:
            raise MixdownError("learning rates must be > 0, plateau_steps >= 1 and lr_reductions >= 0")


@dataclass(frozen=True)
class ReverseReport:
    """How a fit went. Losses are `StereoLoss` of whole renders of the analysed audio,
    loudness-matched to the reference.

    Attributes:
        neutral_loss: of unity gains, centred, unprocessed (the ``mono`` baseline).
        initial_loss: after the least-squares stage.
        final_loss: of the returned settings.
        steps: descent steps taken.
        least_squares_s: wall time until the descent starts (checks, least squares, EQ
            fit, starting compressor and reverb settings, the first two losses).
        seconds: wall time of the whole fit.
        converged: the descent stopped on a plateau (not on ``steps`` or the budget).
        losses: smoothed training loss after each step.
    """

    neutral_loss: float
    initial_loss: float
    final_loss: float
    steps: int
    least_squares_s: float
    seconds: float
    converged: bool
    losses: tuple[float, ...]
