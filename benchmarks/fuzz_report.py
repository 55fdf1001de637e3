"""Fuzzing report: mutated settings files, listening tests and audio files through the real commands.

Usage::

    python benchmarks/fuzz_report.py                 # 5000 settings, 500 listening tests, 1500 audio files
    python benchmarks/fuzz_report.py --quick         # 200 / 40 / 100, for a smoke run (writes nothing)
    python benchmarks/fuzz_report.py --seed 7        # other cases (the suite uses seeds 17, 18, 19)

Runs the seeded fuzzers of ``tests/fuzz_cases.py`` (the ones ``tests/test_fuzz_inputs.py``
runs at smaller counts) in this process: ``mixdown render`` of mutated settings files,
``mixdown listen create`` of mutated listening-test YAML and ``mixdown mix --method mono``
of stem folders with one mutated audio file. Every case must end in valid outputs (exit
0) or one ``error:`` line with no output (exit 2); anything else (an exception escaping
the command, a temporary file left, an invalid output) counts as a traceback and is
listed. Writes ``benchmarks/results/fuzz.md`` with the counts and the most common errors.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import numba
import torch
from fuzz_cases import Tally, run_audio, run_listening, run_settings

RESULTS = HERE / "results" / "fuzz.md"
FULL = {"settings": 5000, "listening": 500, "audio": 1500}
QUICK = {"settings": 200, "listening": 40, "audio": 100}
RUNNERS = {"settings": ("settings files through `mixdown render`", run_settings),
           "listening": ("listening-test YAML through `mixdown listen create`", run_listening),
           "audio": ("audio files through `mixdown mix --method mono`", run_audio)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run); does not write results")
    parser.add_argument("--seed", type=int, default=1000, help="first seed (family i uses seed + i; default 1000)")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else FULL
    torch.set_num_threads(1)  # tiny signals: thread hand-offs would cost more than the work
    numba.set_num_threads(1)
    load = os.getloadavg()
    tallies: dict[str, tuple[Tally, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        run_settings(args.seed, 2, Path(scratch) / "warm-up")  # compile the console's kernels once, untimed
        for i, (family, count) in enumerate(counts.items()):
            start = time.perf_counter()
            tally = RUNNERS[family][1](args.seed + i, count, Path(scratch) / family)
            tallies[family] = (tally, time.perf_counter() - start)
            print(f"{family}: {tally.cases} cases, {tally.valid} valid, {tally.clean_errors} clean errors, "
                  f"{tally.tracebacks} tracebacks ({tallies[family][1]:.0f} s)", flush=True)

    command = "python benchmarks/fuzz_report.py" + (" --quick" if args.quick else "") + \
        (f" --seed {args.seed}" if args.seed != 1000 else "")
    total = sum(t.tracebacks for t, _ in tallies.values())
    lines = [
        "# Fuzzing: mutated inputs through the real commands",
        "",
        (f"Command: `{command}` on {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
         f"{os.cpu_count()} CPUs, load average {load[0]:.1f} before and {os.getloadavg()[0]:.1f} after (the "
         "machine is shared: the times depend on it, the counts do not). Fuzzers: `tests/fuzz_cases.py`, seeds "
         f"{args.seed}, {args.seed + 1}, {args.seed + 2}; the suite (`tests/test_fuzz_inputs.py`) runs 1000 / 150 / "
         "300 cases of seeds 17, 18, 19 on every `make test`."),
        "",
        ("Every case must exit 0 with valid outputs (audio that decodes to the stems' length, settings that load, "
         "a test folder whose manifest names readable files) or exit 2 with exactly one `error:` line and no "
         "output; an exception escaping the command, a temporary file left behind or an invalid output counts as a "
         "traceback."),
        "",
        "| inputs | cases | valid outputs | clean errors | tracebacks | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for family, (tally, seconds) in tallies.items():
        lines.append(f"| {RUNNERS[family][0]} | {tally.cases} | {tally.valid} | {tally.clean_errors} | "
                     f"{tally.tracebacks} | {seconds:.0f} |")
    lines += ["", f"**Tracebacks: {total}.**", ""]
    for family, (tally, _) in tallies.items():
        lines += [f"Most common errors, {family} (last clause of the message, numbers dropped):", ""]
        lines += [f"- {count} x `{kind}`" for kind, count in tally.errors_seen.most_common(8)]
        lines.append("")
        if tally.failures:
            lines += [f"Failures, {family}:", "", "```", *tally.failures[:20], "```", ""]
    report = "\n".join(lines)
    print(report)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
        print(f"wrote {RESULTS}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
