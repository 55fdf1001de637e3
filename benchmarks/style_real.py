"""Mix like a reference on real songs (issue 14): does training on real producers' mixes help?

Usage::

    python benchmarks/style_real.py                       # data/lmms, writes benchmarks/results/style_real.md
    python benchmarks/style_real.py --songs 2 --out /tmp/style_real.md   # a smoke run

Songs: every song of ``--dataset`` (default ``data/lmms``, built by ``mixdown data lmms``),
as ``mixdown evaluate --reference-segment`` cuts them: the **reference** is the first half
of the producer's mix, the **input** the stems of the second half, the **target** the
producer's mix of the second half. The conditioners compared:

* ``synthetic``: ``--synthetic`` (default the recipe of ``configs/estimator_reference.yaml``'s
  weights), trained on synthetic songs only;
* ``real``: ``--real`` (default ``estimator_reference_real.pt``), that conditioner after the
  audio stage on real LMMS songs (``configs/estimator_reference_real.yaml``).

The script refuses to score a song that the ``real`` conditioner trained or validated on
(its checkpoint names its ``real_root``). Each conditioner runs without a reference (its
learned "no reference" input), with the reference (``learned``) and ``optimised`` (the
style descent from there, default budget); ``rules`` and the ``estimator`` are the
baselines. Metrics per song: the loudness-matched stereo MR-STFT to the target (as
``mixdown evaluate``), and the style distance to the reference (`mixdown.style.loss`).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from mixdown.api import mix
from mixdown.audio import atomic_write_text
from mixdown.errors import MixdownError
from mixdown.evaluate import load_reference_segment, load_song, select_songs
from mixdown.evaluation.summary import relative_improvement
from mixdown.metrics.audio import matched_stereo_mrstft
from mixdown.mixers.style import StyleMixer
from mixdown.models import read_checkpoint
from mixdown.style.loss import style_distance
from mixdown.style.reference import reference_style
from mixdown.weights import require

RESULTS = Path(__file__).parent / "results" / "style_real.md"
CONDITIONERS = ("synthetic", "real")
MODES = ("no reference", "learned", "optimised")


def trained_songs(weights: Path) -> set[str]:
    """Names of the real songs a conditioner's audio stage saw (training and validation)."""
    info = read_checkpoint(weights, "style conditioner weights").get("info", {})
    root = info.get("recipe", {}).get("real_root")
    if root is None:
        return set()
    if not Path(root).is_dir():
        raise MixdownError(f"{weights}: trained on {root}, which is not here to check the test songs against")
    return {p.name for p in Path(root).iterdir() if p.is_dir()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/lmms"))
    parser.add_argument("--songs", type=int, help="only the first N songs (by name)")
    parser.add_argument("--synthetic", type=Path, help="conditioner trained on synthetic songs only")
    parser.add_argument("--real", type=Path, help="conditioner after the real-song audio stage")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    weights = {"synthetic": args.synthetic or require("estimator_reference.pt"),
               "real": args.real or require("estimator_reference_real.pt")}
    songs = select_songs(args.dataset, None, args.songs)
    seen = trained_songs(Path(weights["real"])) & {song.name for song in songs}
    if seen:
        raise MixdownError(f"the real conditioner trained on test songs: {', '.join(sorted(seen))}")
    mixers = {c: StyleMixer(mode="learned", weights=weights[c]) for c in CONDITIONERS}
    methods = ["rules", "estimator", *(f"{c}: {m}" for c in CONDITIONERS for m in MODES)]
    loss: dict[str, list[float]] = {m: [] for m in methods}
    distance: dict[str, list[float]] = {m: [] for m in methods}
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    for index, song in enumerate(songs):
        multitrack, target = load_song(song, None, reference_segment=True)
        reference = load_reference_segment(song)
        rate = multitrack.sample_rate
        reference_features = reference_style(reference, rate)
        mixes = {m: mix(multitrack, m).mix for m in ("rules", "estimator")}
        for c, mixer in mixers.items():
            mixer.mode = "learned"
            mixes[f"{c}: no reference"] = mix(multitrack, mixer).mix
            mixes[f"{c}: learned"] = mix(multitrack, mixer, reference=reference).mix
            mixer.mode = "optimised"
            mixes[f"{c}: optimised"] = mix(multitrack, mixer, reference=reference).mix
        for m in methods:
            loss[m].append(matched_stereo_mrstft(mixes[m], target, rate))
            distance[m].append(float(style_distance(reference_style(mixes[m], rate), reference_features)))
        print(f"{index + 1}/{len(songs)} {song.name}: " + ", ".join(f"{m} {loss[m][-1]:.3f}" for m in methods),
              file=sys.stderr, flush=True)

    command = shlex.join(["python", "benchmarks/style_real.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Mix like a reference on real songs: trained on synthetic songs only, and after real songs",
        "",
        f"Command: `{command}`  ",
        (f"Machine: {platform.machine()}, {os.cpu_count()} cores (load average {load_before:.1f} at the start, "
         f"{os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}, torch {torch.__version__}; "
         f"took {(time.perf_counter() - began) / 60:.1f} min."),
        "",
        (f"Test songs ({len(songs)}, none seen in training): {', '.join(song.name for song in songs)}. "
         "Reference = the first half of the producer's mix; input = the stems of the second half; target = the "
         "producer's mix of the second half. Conditioners: `synthetic` "
         f"(`{weights['synthetic']}`), `real` (`{weights['real']}`)."),
        "",
        ("| method | loudness-matched stereo MR-STFT to target: mean | median | style distance to reference: mean "
         "| median |"),
        "|---|---|---|---|---|",
    ]
    for m in methods:
        lines.append(f"| {m} | {statistics.fmean(loss[m]):.3f} | {statistics.median(loss[m]):.3f} | "
                     f"{statistics.fmean(distance[m]):.3f} | {statistics.median(distance[m]):.3f} |")
    lines += ["", "Relative improvement in stereo MR-STFT, 1 - loss / loss of the other, means over songs:", ""]
    pairs = [(f"real: {m}", f"synthetic: {m}") for m in MODES]
    pairs += [(f"{c}: {m}", f"{c}: no reference") for c in CONDITIONERS for m in ("learned", "optimised")]
    pairs += [(f"{c}: {m}", base) for c in CONDITIONERS for m in ("learned", "optimised") for base in ("estimator",
                                                                                                      "rules")]
    for better, other in pairs:
        gain, wins = relative_improvement(loss[better], loss[other])
        lines.append(f"- {better} vs {other}: {100 * gain:+.1f} % ({wins}/{len(songs)} songs better)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except MixdownError as exc:
        sys.exit(f"error: {exc}")
