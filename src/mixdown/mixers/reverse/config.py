"""What reverse engineering is asked (`ReverseConfig`) and what it reports back (`ReverseReport`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mixdown.errors import MixdownError
from mixdown.losses import StereoLossConfig

ProgressCallback = Callable[[int, int], None]
"""Called with ``(iteration, max_iterations)`` after each refinement iteration."""

COMPRESSOR_OFF_RATIO = 1.1
"""Compressors whose fitted ratio is at or under this are returned off (they barely compress)."""

MIN_COHERENT_SHARE = 0.5
"""A channel whose own waveform explains less than this share of its energy in the mix
(`start.Start.coherence_db`: its mix holds another rendering of it) is not refined on the waveform: most
of what the waveform compares of it is a different noise, which a waveform fit can only turn down."""

EQ_PRIOR_DB = 9.0
"""Scale (dB) of the weak prior on EQ gains (`ReverseConfig.eq_prior_weight`)."""


@dataclass(frozen=True)
class ReverseConfig:
    """How the settings are searched for.

    Attributes:
        steps: most Levenberg-Marquardt iterations of the refinement through the console
            (0 keeps the start: least squares, reverb and compressor fits).
        excerpt_s: compared length of each excerpt of the refinement, in seconds.
        preroll_s: audio rendered before each excerpt (not compared) so the filter and
            compressor states are warmed up.
        excerpts: most excerpts, chosen by information (`excerpts.informative_excerpts`).
        time_budget_s: stop refining after this many seconds of the whole fit (None: no
            limit).
        seed: seeds the subset of compared samples.
        max_analysis_s: longer songs are analysed on their central excerpt of this length.
        fit_eq: fit the `STANDARD_EQ` strip (else the channels get no EQ).
        fit_compressor: fit a compressor on every channel (kept where its fit explains the
            channel's waveform, `dynamics.MIN_EXPLAINED_SHARE`).
        fit_reverb: fit reverb sends, decay and pre-delay (else the sends are off).
        warm_start: also start from the estimator's prediction (amortised inference,
            `mixdown.mixers.estimator`) and keep the start that fits better.
        eq_fit_steps: Adam steps of the least-squares EQ curve fit.
        eq_polish_steps: Levenberg-Marquardt steps that finish the EQ curve fit.
        eq_prior_weight: weight of the prior pulling EQ gains towards 0 dB in the curve
            fit, ``w * sum((eq_gain_db / EQ_PRIOR_DB)^2)`` per channel added to its error in
            dB^2 (`EQ_PRIOR_DB` = 9 dB). It only decides where the mix cannot (gain versus a
            shelf covering a stem's whole spectrum).
        refine_prior_weight: the same prior in the refinement, against the relative
            residual energy of the waveform.
        ls_window_s: STFT window of the least-squares stage (rounded to a power of 2).
        loss: the loss reported (whole renders, loudness-matched to the reference).
    """

    steps: int = 12
    excerpt_s: float = 1.0
    preroll_s: float = 0.3
    excerpts: int = 4
    time_budget_s: float | None = None
    seed: int = 0
    max_analysis_s: float = 30.0
    fit_eq: bool = True
    fit_compressor: bool = True
    fit_reverb: bool = True
    warm_start: bool = True
    eq_fit_steps: int = 100
    eq_polish_steps: int = 20
    eq_prior_weight: float = 0.03
    refine_prior_weight: float = 1e-5
    ls_window_s: float = 0.093
    loss: StereoLossConfig = field(default_factory=lambda: StereoLossConfig(time_l1_weight=1.0))

    def __post_init__(self) -> None:
        if min(self.steps, self.eq_fit_steps, self.eq_polish_steps) < 0:
            raise MixdownError(f"steps must be >= 0, got {self.steps}, {self.eq_fit_steps} and "
                               f"{self.eq_polish_steps}")
        if self.excerpt_s <= 0.0 or self.preroll_s < 0.0 or self.max_analysis_s <= 0.0 or self.excerpts < 1:
            raise MixdownError("excerpt_s and max_analysis_s must be > 0, preroll_s >= 0 and excerpts >= 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0.0:
            raise MixdownError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        if min(self.eq_prior_weight, self.refine_prior_weight) < 0.0:
            raise MixdownError("prior weights must be >= 0")


@dataclass(frozen=True)
class ReverseReport:
    """How a fit went. Losses are `StereoLoss` of whole renders of the analysed audio,
    loudness-matched to the reference.

    Attributes:
        neutral_loss: of unity gains, centred, unprocessed (the ``mono`` baseline).
        initial_loss: of the start the refinement began from.
        final_loss: of the returned settings; never above ``initial_loss`` (the start is
            returned when the refinement did not lower the loss) nor ``neutral_loss``.
        steps: refinement iterations taken.
        least_squares_s: wall time until the refinement starts (checks, least squares, EQ
            fit, reverb and compressor fits, the choice of start, the first two losses).
        seconds: wall time of the whole fit.
        converged: the refinement stopped because no step lowered its residual (not on
            ``steps`` or the budget).
        losses: the refinement's relative residual energy, at the start and after each
            iteration.
        start: the start kept: ``"least squares"``, ``"estimator"`` or ``"least squares
            without compressors"`` (refined beside the first where it scored lower, and
            better after the refinement too); ``"neutral"`` when unity faders, centred and
            unprocessed, beat the fit and were returned.
        unidentifiable: per channel name, the settings the mix does not determine (their
            paths in the channel's settings, e.g. ``"eq[1].gain_db"``,
            ``"compressor.attack_ms"``, ``"reverb_send_db"``); channels with none are left
            out.
        ranges: per channel name, every setting the refinement fitted with the values
            the mix does not tell apart from the returned one, ``(low, high)`` in the
            setting's unit (`refine.identifiability`: linearised at the fit; a wide range
            is the reason for an entry in ``unidentifiable``). No compressor entries
            for a compressor returned off; no ranges at all when ``start`` is ``"neutral"`` (not a fit).
    """

    neutral_loss: float
    initial_loss: float
    final_loss: float
    steps: int
    least_squares_s: float
    seconds: float
    converged: bool
    losses: tuple[float, ...]
    start: str = "least squares"
    unidentifiable: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ranges: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready: the report as written beside a settings file (``<out>.report.json``)."""
        return {"neutral_loss": self.neutral_loss, "initial_loss": self.initial_loss,
                "final_loss": self.final_loss, "steps": self.steps, "least_squares_s": self.least_squares_s,
                "seconds": self.seconds, "converged": self.converged, "losses": list(self.losses),
                "start": self.start, "unidentifiable": {name: list(paths) for name, paths in
                                                        self.unidentifiable.items()},
                "ranges": {name: {path: list(bounds) for path, bounds in found.items()}
                           for name, found in self.ranges.items()}}
