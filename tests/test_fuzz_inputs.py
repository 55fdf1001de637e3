"""Fuzzed inputs never crash: every mutated file ends in a valid output or one clean error (#17, #18).

Seeded mutators (`fuzz_cases`) generate settings files, listening-test configurations and
audio files; each runs through the real command in-process (``render``, ``listen
create``, ``mix``) and must exit 0 with valid outputs or exit 2 with one ``error:`` line
and no output, leave no temporary file and raise nothing. ``benchmarks/fuzz_report.py``
runs the same fuzzers at larger counts. A failing case names its seed and index, so
``fuzz_cases.settings_cases(seed, index + 1)`` reproduces it.
"""

from __future__ import annotations

import time

import pytest
from fuzz_cases import Tally, run_audio, run_listening, run_settings

SETTINGS_CASES = 1000
LISTENING_CASES = 150
AUDIO_CASES = 300


def _check(tally: Tally, cases: int) -> None:
    assert tally.cases == cases
    assert tally.tracebacks == 0, "\n\n".join(tally.failures[:5])
    assert tally.valid > 0 and tally.clean_errors > 0  # the mutators reach both ends


def test_mutated_settings_files_render_or_fail_cleanly(tmp_path, one_thread):
    start = time.monotonic()
    tally = run_settings(seed=17, count=SETTINGS_CASES, folder=tmp_path)
    _check(tally, SETTINGS_CASES)
    assert tally.valid >= SETTINGS_CASES // 5, tally  # most edits are in range: the renders are exercised
    print(f"settings: {tally.valid} renders, {tally.clean_errors} clean errors in {time.monotonic() - start:.1f} s")


def test_mutated_listening_tests_build_or_fail_cleanly(tmp_path, one_thread):
    tally = run_listening(seed=18, count=LISTENING_CASES, folder=tmp_path)
    _check(tally, LISTENING_CASES)


def test_mutated_audio_files_mix_or_fail_cleanly(tmp_path, one_thread):
    tally = run_audio(seed=19, count=AUDIO_CASES, folder=tmp_path)
    _check(tally, AUDIO_CASES)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_fuzzers_are_reproducible(seed):
    from fuzz_cases import audio_cases, settings_cases

    assert list(settings_cases(seed, 20)) == list(settings_cases(seed, 20))
    assert list(audio_cases(seed, 20)) == list(audio_cases(seed, 20))
