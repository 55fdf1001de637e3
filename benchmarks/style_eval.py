"""Mix like a reference (issue 14): held-out evaluation of the ``style`` method.

Usage::

    python benchmarks/style_eval.py                      # 20 songs, writes benchmarks/results/style.md + style.png
    python benchmarks/style_eval.py --songs 2 --out /tmp/style.md   # a smoke run
    python benchmarks/style_eval.py --model dmc --out benchmarks/results/style_dmc.md   # on the DMC's controller

Songs: `mixdown.synth.synthetic` songs of ``SynthConfig(seed=1001)`` (`_heldout.heldout_config`:
never a training seed; the conditioner trains on seed 14 at 22.05 kHz), 8 s, 2-11 stems,
44.1 kHz, their true settings from ``--targets`` (default ``audio-styles``, the per-song
style generator the conditioner trains on; ``class-table`` draws each stem's settings
independently around the rules' table, so a reference carries no song-level style). Each
song is cut in two halves mixed with the same (true) settings, as Diff-MST evaluates:

* **reference** = the song's true mix over its first 4 s;
* **input** = the stems of the last 4 s; **target** = those stems rendered with the true
  settings (`mixdown.console.render`), so the oracle's stereo loss is 0 by construction.

Methods: ``rules``; the base (``--model``: ``estimator``, default, or ``dmc``); ``no reference`` (``style`` without a reference: the
conditioner's learned no-reference input, trained on the same songs; the issue's "same
method without a reference"); ``style`` learned; ``style`` optimised (default budget);
``oracle`` (the true settings). Metrics per song:

* **stereo loss** to the target: `mixdown.losses.StereoLoss` with its defaults (the
  training loss, as ``benchmarks/estimator_eval.py``);
* **style distance** to the reference: `mixdown.style.loss.style_distance` between the
  output's style and the reference's (both `mixdown.style.reference.reference_style`).
  The oracle's is the floor set by the two halves' different notes.

Then **a reference from another song** (song ``i + 1``'s first 4 s for song ``i``): the
style distance to that reference, per feature group, for the estimator, the method without
a reference and both modes, and a plot of one song's balance and width against its
reference (PNG, when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _heldout import HELDOUT_SEED, heldout_config

from mixdown.audio import atomic_write_text
from mixdown.console import render
from mixdown.evaluation.summary import relative_improvement
from mixdown.losses import StereoLoss
from mixdown.mixers import get_method
from mixdown.mixers.style import StyleMixer
from mixdown.multitrack import Multitrack, Stem
from mixdown.style.conditioned import BASES
from mixdown.style.loss import style_distance, style_terms
from mixdown.style.reference import reference_style
from mixdown.synth.synthetic import TARGET_GENERATORS, generate_song

RESULTS = Path(__file__).parent / "results" / "style.md"
BARS = {"learned": 0.15, "optimised": 0.25}
"""Issue 14: with a reference, better than the same method without one by these fractions of the stereo loss."""


def segment(multitrack: Multitrack, start_s: float, end_s: float) -> Multitrack:
    """The stems between two times, in memory."""
    rate = multitrack.sample_rate
    a, b = round(start_s * rate), round(end_s * rate)
    stems = [Stem(s.name, s.instrument, s.channels, audio=multitrack.stem_audio(i)[:, a:b])
             for i, s in enumerate(multitrack.stems)]
    return Multitrack(stems, rate, b - a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--cross-songs", type=int, default=10, help="songs given another song's reference")
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED)
    parser.add_argument("--targets", choices=TARGET_GENERATORS, default="audio-styles",
                        help="generator of the true settings (default audio-styles)")
    parser.add_argument("--model", choices=BASES, default="estimator",
                        help="the parameter predictor the reference conditions (default estimator)")
    parser.add_argument("--weights", type=Path, help="conditioner weights (default: the shipped ones of --model)")
    parser.add_argument("--budget-s", type=float, help="the optimised mode's budget (default: the method's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    synth = replace(heldout_config(args.seed), targets=args.targets)
    half = synth.duration_s / 2
    style = StyleMixer(model=args.model, weights=args.weights, budget_s=args.budget_s)
    rules, predictor = get_method("rules"), get_method(args.model)
    methods = ("rules", args.model, "no reference", "learned", "optimised", "oracle")
    loss_fn = StereoLoss()
    loss = {m: [] for m in methods}
    distance = {m: [] for m in methods}
    descent_s: list[float] = []
    began = time.perf_counter()
    songs = [generate_song(i, synth) for i in range(max(args.songs, args.cross_songs + 1))]

    def outputs(multitrack: Multitrack, reference: np.ndarray | None) -> dict[str, object]:
        out = {}
        style.mode = "learned"
        out[args.model] = predictor.run(multitrack).params
        out["no reference"] = style.run(multitrack).params
        out["learned"] = style.run(multitrack, reference=reference).params
        style.mode = "optimised"
        result = style.run(multitrack, reference=reference)
        descent_s.append(result.info["descent_s"])
        out["optimised"] = result.params
        return out

    for index in range(args.songs):
        song = songs[index]
        rate = song.multitrack.sample_rate
        reference = song.mix[:, :round(half * rate)]
        reference_features = reference_style(reference, rate)
        multitrack = segment(song.multitrack, half, synth.duration_s)
        truth = song.params.ordered_like(multitrack.names)
        target = torch.from_numpy(render(multitrack, truth))[None]
        settings = {"rules": rules.run(multitrack).params, **outputs(multitrack, reference), "oracle": truth}
        for method in methods:
            mix = render(multitrack, settings[method])
            with torch.no_grad():
                loss[method].append(float(loss_fn(torch.from_numpy(mix)[None], target)))
                distance[method].append(float(style_distance(reference_style(mix, rate), reference_features)))
        print(f"song {index + 1}/{args.songs} ({multitrack.num_tracks} stems): "
              + ", ".join(f"{m} {loss[m][-1]:.3f}/{distance[m][-1]:.3f}" for m in methods), file=sys.stderr,
              flush=True)

    cross_methods = (args.model, "no reference", "learned", "optimised")
    cross = {m: [] for m in cross_methods}
    cross_terms: dict[str, dict[str, list[float]]] = {m: {} for m in cross_methods}
    plot_data = None
    for index in range(args.cross_songs):
        song, other = songs[index], songs[index + 1]
        rate = song.multitrack.sample_rate
        reference = other.mix[:, :round(half * rate)]
        reference_features = reference_style(reference, rate)
        multitrack = segment(song.multitrack, half, synth.duration_s)
        settings = outputs(multitrack, reference)
        features = {}
        for method in cross_methods:
            features[method] = reference_style(render(multitrack, settings[method]), rate)
            cross[method].append(float(style_distance(features[method], reference_features)))
            for name, value in style_terms(features[method], reference_features).items():
                cross_terms[method].setdefault(name, []).append(float(value))
        if plot_data is None:
            plot_data = (features, reference_features)
        print(f"cross {index + 1}/{args.cross_songs}: "
              + ", ".join(f"{m} {cross[m][-1]:.3f}" for m in cross_methods), file=sys.stderr, flush=True)

    mean = {m: statistics.fmean(loss[m]) for m in methods}
    command = shlex.join(["python", "benchmarks/style_eval.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Mix like a reference: held-out evaluation",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, 2 cores shared with other jobs, Python {platform.python_version()}, "
        f"torch {torch.__version__}; took {(time.perf_counter() - began) / 60:.1f} min.",
        "",
        f"Conditioned predictor: `{args.model}`. Held out: {args.songs} synthetic songs of SynthConfig seed {args.seed}, targets `{args.targets}`, "
        f"{synth.duration_s:g} s, 2-11 stems, 44.1 kHz. Reference = the true mix of the first {half:g} s; input = the stems of the last {half:g} s; "
        "target = those stems rendered with the true settings (so the oracle's stereo loss is 0). "
        f"Optimised mode: budget {style.config.budget_s:g} s, at most {style.config.max_steps} steps "
        f"(descent time median {statistics.median(descent_s):.1f} s).",
        "",
        "| method | stereo loss to target: mean | median | style distance to reference: mean | median |",
        "|---|---|---|---|---|",
    ]
    for m in methods:
        lines.append(f"| {m} | {mean[m]:.3f} | {statistics.median(loss[m]):.3f} | "
                     f"{statistics.fmean(distance[m]):.3f} | {statistics.median(distance[m]):.3f} |")
    lines += ["", "Stereo loss with a reference against the same method without one (`no reference`), "
              "1 - loss / loss without, means over songs:", ""]
    for m in ("learned", "optimised"):
        gain, wins = relative_improvement(loss[m], loss["no reference"])
        verdict = "meets" if gain >= BARS[m] else "misses"
        lines.append(f"- {m} vs no reference: {100 * gain:+.1f} % ({wins}/{args.songs} songs better); "
                     f"{verdict} the issue's {100 * BARS[m]:.0f} % bar")
    for base in (args.model, "rules"):
        for m in ("learned", "optimised"):
            gain, wins = relative_improvement(loss[m], loss[base])
            lines.append(f"- {m} vs {base}: {100 * gain:+.1f} % ({wins}/{args.songs} songs better)")
    if args.cross_songs:
        lines += ["", f"## A reference from another song ({args.cross_songs} songs: song i's stems, song i+1's mix)", "",
                  "Style distance to the other song's reference (lower is closer), mean over songs, and per feature "
                  "group (scaled: 1 = one audible step, `mixdown.style.loss.STYLE_SCALES`):", ""]
        groups = list(cross_terms[args.model])
        lines += ["| method | distance | " + " | ".join(groups) + " |", "|---" * (len(groups) + 2) + "|"]
        for m in cross_methods:
            lines.append(f"| {m} | {statistics.fmean(cross[m]):.3f} | "
                         + " | ".join(f"{statistics.fmean(cross_terms[m][g]):.3f}" for g in groups) + " |")
        for m in ("learned", "optimised"):
            closer = sum(a < b for a, b in zip(cross[m], cross["no reference"], strict=True))
            share = 1 - statistics.fmean(cross[m]) / statistics.fmean(cross["no reference"])
            lines.append("")
            lines.append(f"- {m}: {100 * share:+.1f} % closer than without a reference on average; closer on "
                         f"{closer}/{args.cross_songs} songs")
    png = args.out.with_suffix(".png")
    if plot_data is not None and _plot(plot_data, png):
        lines += ["", f"![balance and width of song 0 against song 1's reference]({png.name})"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _plot(data, path: Path) -> bool:
    """Balance and width per band of the mixes and the reference; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from mixdown.style.features import BAND_EDGES_HZ

    features, reference = data
    labels = [f"{int(a)}-{int(b)}" for a, b in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, feature in (*features.items(), ("reference", reference)):
        style = dict(color="black", linewidth=2.5) if name == "reference" else {}
        axes[0].plot(feature.balance_db[0].numpy(), marker="o", label=name, **style)
        axes[1].plot(feature.width[0].numpy(), marker="o", label=name, **style)
    for ax, title in zip(axes, ("band balance (dB re total)", "band width (side / total)"), strict=True):
        ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
        ax.set_title(title)
        ax.set_xlabel("band (Hz)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


if __name__ == "__main__":
    raise SystemExit(main())
