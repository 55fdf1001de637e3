"""Seeded fuzzers of the files people hand to mixdown, run through the real commands in-process.

Three families, each a generator of mutated inputs from ``numpy.random.default_rng(seed)``
(the same seed gives the same cases):

* settings files (``render STEMS SETTINGS -o OUT``): a valid file with 1 to 3 mutations,
  structural (a key deleted, a value replaced by another type, a huge, NaN or
  out-of-range number, lists grown past their caps, channels duplicated or renamed) or
  textual (cut short, bytes changed, nested 100000 deep, 400-digit literals, not UTF-8);
  about half are in-range edits that render;
* listening-test YAML (``listen create CONFIG -o OUT``): the same on a test of two file
  conditions, plus YAML's own traps (aliases, tags, dates, tabs, duplicate keys);
* audio files (``mix STEMS -o OUT --method mono`` with one stem mutated): cut short,
  header fields (channels, rate, bits, sizes) overwritten, NaN and infinite samples,
  0 frames, 1 sample, 6 channels, 8-bit, 1 MB metadata chunks, random bytes.

`run_case` judges one run: it must exit 0 with every output a valid file (audio that
decodes to the expected length, settings that load, a test folder with its manifest),
or exit 2 with exactly one ``error:`` line and no output; an escaping exception is a
traceback, and a temporary file left anywhere is a failure too. Used by
``tests/test_fuzz_inputs.py`` (counts that keep the suite fast) and
``benchmarks/fuzz_report.py`` (larger counts, written to ``benchmarks/results/fuzz.md``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import re
import shutil
import struct
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from mixdown import cli
from mixdown.audio import PARTIAL_PATTERN
from mixdown.params import (
    SCHEMA,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
    ReverbParams,
)

SR = 8000
FRAMES = SR // 5
"""Stems of 0.2 s at 8 kHz: enough for every stage of the console, fast to render."""

STEMS = ("bass", "kick")

EVIL_VALUES: tuple[object, ...] = (
    None, True, False, 0, -1, 1, 0.5, -0.0, 1e308, -1e308, 10**30, -(10**30), 2**63, float("nan"), float("inf"),
    -float("inf"), "", "x", "kick", "x" * 1000, [], {}, [[[]]], [1.0] * 50, {"a": 1}, "1e400", "NaN",
)


@dataclass
class Tally:
    """Outcomes of a fuzz run."""

    cases: int = 0
    valid: int = 0
    clean_errors: int = 0
    failures: list[str] = field(default_factory=list)
    errors_seen: Counter = field(default_factory=Counter)

    @property
    def tracebacks(self) -> int:
        return len(self.failures)

    def add(self, outcome: str, detail: str) -> None:
        self.cases += 1
        if outcome == "valid":
            self.valid += 1
        elif outcome == "error":
            self.clean_errors += 1
            self.errors_seen[_kind(detail)] += 1
        else:
            self.failures.append(detail)


def _kind(line: str) -> str:
    """A short key for an error message (its last clause without numbers), for the report's table."""
    text = line.removeprefix("error: ").split(": ")[-1]
    words = [word for word in text.split() if not re.fullmatch(r"[-+(\[]*[0-9][0-9.e+\-,;)\]]*", word)]
    return " ".join(words[:6])[:60]


# --------------------------------------------------------------------------- running one case


def run_case(argv: list[str], outputs: list[Path], check: Callable[[list[Path]], None], watch: list[Path]) -> tuple[str, str]:
    """Run ``mixdown ARGV`` in this process and judge it.

    Args:
        argv: The command line.
        outputs: What it writes on success.
        check: Raises if the outputs are not valid (called after exit 0).
        watch: Folders where no temporary file may be left.

    Returns:
        ``("valid" | "error" | "failure", detail)``.
    """
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            code = cli.main(argv)
    except BaseException:  # noqa: BLE001 -- anything escaping main is what the fuzzer looks for
        return "failure", f"{' '.join(argv[:2])}: traceback\n{traceback.format_exc(limit=-4)}"
    lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    partial = [p for folder in watch if folder.exists() for p in folder.rglob("*") if PARTIAL_PATTERN.match(p.name)]
    if partial:
        return "failure", f"temporary files left: {partial}"
    if any("Traceback" in line for line in lines):
        return "failure", "a traceback was printed: " + "\n".join(lines)
    if code == 0:
        if errors:
            return "failure", f"exit 0 with an error line: {errors}"
        try:
            check(outputs)
        except Exception as exc:  # noqa: BLE001
            return "failure", f"exit 0 but an invalid output: {exc!r}"
        return "valid", ""
    if code == cli.EXIT_ERROR:
        if len(errors) != 1:
            return "failure", f"exit 2 with {len(errors)} error lines: {lines}"
        left = [p for p in outputs if p.exists()]
        if left:
            return "failure", f"exit 2 but outputs left: {left} ({errors[0]})"
        return "error", errors[0]
    return "failure", f"exit code {code}: {lines}"


def _valid_audio(path: Path, frames: int | None = None) -> None:
    info = sf.info(str(path))
    audio, _ = sf.read(str(path), dtype="float32", always_2d=True)
    if info.channels != 2 or not np.isfinite(audio).all() or len(audio) != info.frames:
        raise ValueError(f"{path}: {info}")
    if frames is not None and info.frames != frames:
        raise ValueError(f"{path}: {info.frames} frames, expected {frames}")


# --------------------------------------------------------------------------- stems


def write_stems(folder: Path, rate: int = SR, frames: int = FRAMES, seed: int = 0) -> Path:
    """Two short mono stems (bass, kick) of music-like noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / rate
    for i, name in enumerate(STEMS):
        tone = 0.3 * np.sin(2 * np.pi * (80.0 + 150.0 * i) * t) + 0.05 * rng.standard_normal(frames)
        sf.write(folder / f"{name}.wav", tone.astype(np.float32), rate, subtype="PCM_16")
    return folder


# --------------------------------------------------------------------------- settings files


def base_settings() -> dict:
    """Valid settings for `STEMS` using every field (EQ of every type, compressor, sends, master)."""
    return ConsoleParams(
        channels=[
            ChannelParams("bass", "bass", -3.0, -0.2, False,
                          [EQBand("highpass", 40.0), EQBand("low_shelf", 120.0, 2.0, 0.7), EQBand("peak", 800.0, -3.0, 2.0),
                           EQBand("high_shelf", 2500.0, 1.5, 0.7), EQBand("lowpass", 3500.0, 0.0, 0.707)],
                          CompressorParams(-20.0, 3.0, 5.0, 80.0, 6.0, 2.0), -18.0),
            ChannelParams("kick", "kick", 0.0, 0.1, False, [EQBand("peak", 100.0, 3.0, 1.0)], None, None),
        ],
        master=MasterParams(0.0, -16.0, -1.0, ReverbParams(0.8, 10.0, -3.0)),
        sample_rate=SR, method="fuzz").to_dict()


def _paths(data, prefix=()) -> Iterator[tuple]:
    """Every key path of a JSON-like value (tuples of keys and list indices)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield (*prefix, i)
            yield from _paths(item, (*prefix, i))


def _get(data, path):
    for part in path:
        data = data[part]
    return data


def _numeric_paths(data) -> list[tuple]:
    return [p for p in _paths(data) if isinstance(_get(data, p), (int, float)) and not isinstance(_get(data, p), bool)]


_SPEC_BY_KEY = {}
for _spec in SCHEMA:
    _SPEC_BY_KEY.setdefault(_spec.key, _spec)


def _in_range(rng: np.random.Generator, key: str, old: float) -> float:
    """A value inside (mostly) or just outside the key's schema range."""
    spec = _SPEC_BY_KEY.get(key)
    if spec is None:
        return old
    low, high = spec.minimum, spec.maximum
    if key == "freq_hz":
        high = min(high, 0.45 * SR)
    if rng.random() < 0.85:
        if spec.scale == "log":
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return float(rng.uniform(low, high))
    return float(rng.choice([low - 1.0, high * 1.5 + 1.0, low, high]))


def mutate_settings(rng: np.random.Generator, data: dict) -> tuple[dict | None, bytes | None]:
    """One structural mutation of ``data`` (in place) or a textual one (returns the bytes)."""
    kind = rng.choice(["range"] * 10 + ["null"] * 3 + ["delete", "evil", "evil", "unknown", "channels", "bands",
                                                       "instrument", "text", "text", "text"])
    paths = list(_paths(data))
    if kind == "range":
        numeric = _numeric_paths(data)
        path = numeric[rng.integers(len(numeric))]
        parent = _get(data, path[:-1])
        if path[-1] in ("sample_rate", "version"):
            parent[path[-1]] = int(rng.choice([SR, SR, 44100, 7999, 192001, 0]))
        else:
            parent[path[-1]] = _in_range(rng, str(path[-1]), parent[path[-1]])
    elif kind == "null":
        choice = rng.integers(5)
        if choice == 0:
            data["master"]["ceiling_dbtp"] = None  # limiter off: loud settings clip (a warning)
            data["master"]["gain_db"] = float(rng.uniform(-10, 24))
        elif choice == 1:
            data["master"]["target_lufs"] = None
        else:
            channel = data["channels"][rng.integers(len(data["channels"]))]
            channel[rng.choice(["compressor", "reverb_send_db", "eq"])] = None if rng.random() < 0.8 else []
    elif kind == "delete":
        path = paths[rng.integers(len(paths))]
        parent = _get(data, path[:-1])
        del parent[path[-1]]
    elif kind == "evil":
        path = paths[rng.integers(len(paths))]
        _get(data, path[:-1])[path[-1]] = copy.deepcopy(EVIL_VALUES[rng.integers(len(EVIL_VALUES))])
    elif kind == "unknown":
        objects = [p for p in [(), *paths] if isinstance(_get(data, p), dict)]
        _get(data, objects[rng.integers(len(objects))])[str(rng.choice(["gian_db", "extra", "", "0"]))] = 1.0
    elif kind == "channels":
        channels = data["channels"]
        action = rng.integers(4)
        if action == 0 and channels:
            channels.append(copy.deepcopy(channels[0]))  # a duplicate name
        elif action == 1 and channels:
            channels.pop(rng.integers(len(channels)))
        elif action == 2 and channels:
            channels[0]["name"] = str(rng.choice(["Kick", "snare", "", "bass"]))
        else:  # past the cap: written at once, no further mutation walks it
            data["channels"] = [copy.deepcopy(channels[0]) if channels else {} for _ in range(int(rng.choice([257, 2000])))]
            return None, json.dumps(data).encode()
    elif kind == "bands":
        channel = data["channels"][0] if data["channels"] else {}
        band = {"type": str(rng.choice(["peak", "notch", "highpass", "lowpass"])), "freq_hz": float(rng.uniform(5, 6000)),
                "gain_db": float(rng.uniform(-30, 30)), "q": float(rng.uniform(0.05, 20))}
        if isinstance(channel, dict):
            channel["eq"] = [band] * int(rng.choice([1, 8, 9, 20000]))
            return None, json.dumps(data).encode()
    elif kind == "instrument":
        channel = data["channels"][rng.integers(len(data["channels"]))] if data["channels"] else {}
        if isinstance(channel, dict):
            channel["instrument"] = copy.deepcopy(rng.choice(np.array(["kick", "piano", None, 5, [], "KICK", "other"],
                                                                      dtype=object)))
    else:
        return None, _mutate_text(rng, json.dumps(data, indent=1).encode())
    return data, None


def _mutate_text(rng: np.random.Generator, text: bytes) -> bytes:
    kind = rng.integers(8)
    if kind == 0:
        return text[: rng.integers(len(text))]
    if kind == 1:
        at = rng.integers(len(text))
        return text[:at] + bytes([rng.integers(256)]) + text[at + 1:]
    if kind == 2:
        depth = int(rng.choice([40, 1000, 100000]))
        return b"[" * depth + text + b"]" * depth
    if kind == 3:
        return text.replace(b"-3.0", b"1" + b"0" * int(rng.choice([20, 400, 5000])), 1)
    if kind == 4:
        return text.replace(b"-3.0", str(rng.choice(["1e400", "-1e400", "NaN", "Infinity", "1e-400"])).encode(), 1)
    if kind == 5:
        return b"\xff\xfe" + text
    if kind == 6:
        return b""
    return text.replace(b"{", b"{" * 2, 1)


def settings_cases(seed: int, count: int) -> Iterator[bytes]:
    """``count`` mutated settings files (bytes)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        data = base_settings()
        text = None
        for _ in range(int(rng.integers(1, 4))):
            try:
                data, text = mutate_settings(rng, data)
            except (TypeError, KeyError, IndexError, AttributeError, ValueError):
                continue  # an earlier mutation removed what this one edits
            if text is not None:
                break
        yield text if text is not None else json.dumps(data, indent=1).encode()


def run_settings(seed: int, count: int, folder: Path, tally: Tally | None = None) -> Tally:
    """Render ``count`` mutated settings files through ``mixdown render``."""
    tally = tally or Tally()
    stems = write_stems(folder / "stems")
    out = folder / "out"
    for i, text in enumerate(settings_cases(seed, count)):
        settings = folder / "settings.json"
        settings.write_bytes(text)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        mix = out / "mix.wav"
        outcome, detail = run_case(["render", str(stems), str(settings), "-o", str(mix)], [mix],
                                   lambda paths: _valid_audio(paths[0], FRAMES), [out, folder])
        tally.add(outcome, f"settings case {i} (seed {seed}): {detail}")
    return tally


# --------------------------------------------------------------------------- listening-test YAML


def base_listening(folder: Path) -> dict:
    """A valid test of one song with two file conditions (written under ``folder``)."""
    rng = np.random.default_rng(1)
    t = np.arange(2 * SR) / SR
    reference = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(folder / "reference.wav", np.stack([reference, reference], 1), SR, subtype="FLOAT")
    sf.write(folder / "quiet.wav", np.stack([reference, reference], 1) * 0.3, SR, subtype="FLOAT")
    return {"name": "Fuzz", "seed": 3, "excerpt_s": 1.0, "fade_ms": 20, "target_lufs": -23.0,
            "reference": "reference", "anchors": [{"name": "anchor", "lowpass_hz": 1500}],
            "songs": [{"name": "one", "start_s": 0.2, "conditions": {"reference": "reference.wav",
                                                                      "quiet": "quiet.wav"}}]}


YAML_TRAPS: tuple[bytes, ...] = (
    b"a: &x [1, 2]\nb: *x\n", b"a: !!python/object:os.system 1\n", b"date: 2001-13-01\n", b"\t- tabs\n",
    b"a: 1\na: 2\n", b"? [a, b]\n: c\n", b"x: " + b"[" * 100000 + b"]" * 100000 + b"\n",
    b"a: &a [*a, *a]\n", b"songs: &s [*s]\n",
    b"name: &a0 [x]\n" + b"".join(f"k{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n".encode() for i in range(1, 40)),
    b"n: 1" + b"0" * 5000 + b"\n", b"%YAML 9.9\n---\na: 1\n", b"\xff\xfe", b"", b"songs: .nan\n",
)


def listening_cases(seed: int, count: int, base: dict) -> Iterator[bytes]:
    """``count`` mutated listening-test configurations (bytes)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        if rng.random() < 0.15:
            yield YAML_TRAPS[rng.integers(len(YAML_TRAPS))]
            continue
        data = copy.deepcopy(base)
        for _ in range(int(rng.integers(1, 3))):
            try:
                _mutate_listening(rng, data)
            except (TypeError, KeyError, IndexError, AttributeError, ValueError):
                continue
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
        if rng.random() < 0.15:
            text = _mutate_text(rng, text)
        yield text


def _mutate_listening(rng: np.random.Generator, data: dict) -> None:
    """One mutation of a listening-test configuration, in place."""
    paths = list(_paths(data))
    path = paths[rng.integers(len(paths))]
    parent = _get(data, path[:-1])
    kind = rng.integers(4)
    if kind == 0:
        del parent[path[-1]]
    elif kind == 1:
        parent[path[-1]] = copy.deepcopy(EVIL_VALUES[rng.integers(len(EVIL_VALUES))])
    else:  # a number moved: mostly still a valid test
        numeric = _numeric_paths(data)
        if numeric:
            target = numeric[rng.integers(len(numeric))]
            _get(data, target[:-1])[target[-1]] = float(rng.uniform(-1, 3) if kind == 2 else rng.uniform(-60, 60))


def run_listening(seed: int, count: int, folder: Path, tally: Tally | None = None) -> Tally:
    """Build ``count`` mutated listening tests through ``mixdown listen create``."""
    tally = tally or Tally()
    folder.mkdir(parents=True, exist_ok=True)
    base = base_listening(folder)
    for i, text in enumerate(listening_cases(seed, count, base)):
        config = folder / "test.yaml"
        config.write_bytes(text)
        out = folder / "test"
        shutil.rmtree(out, ignore_errors=True)

        def check(paths: list[Path]) -> None:
            manifest = json.loads((paths[0] / "test.json").read_text())
            for song in manifest["songs"]:
                for name in song["files"].values():
                    sf.info(str(paths[0] / name))

        outcome, detail = run_case(["listen", "create", str(config), "-o", str(out)], [out], check, [folder])
        tally.add(outcome, f"listening case {i} (seed {seed}): {detail}")
    return tally


# --------------------------------------------------------------------------- audio files


def _wav(frames: np.ndarray, rate: int = SR, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, frames, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def _header_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    size = struct.calcsize(fmt)
    if len(data) < offset + size:
        return data
    return data[:offset] + struct.pack(fmt, value & ((1 << (8 * size)) - 1)) + data[offset + size:]


def audio_cases(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` mutated stem files ``(file name, bytes)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES) / SR
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    for _ in range(count):
        kind = int(rng.integers(14))
        name = "kick.wav"
        if kind == 0:
            data = _wav(tone, subtype=str(rng.choice(["PCM_16", "PCM_24", "FLOAT", "PCM_U8"])))
            data = data[: int(rng.integers(0, len(data)))]
        elif kind == 1:
            data = _wav(tone, fmt="FLAC", subtype="PCM_16")
            data, name = data[: int(rng.integers(0, len(data)))], "kick.flac"
        elif kind == 2:
            data = _wav(tone, fmt="AIFF", subtype="PCM_16")
            data, name = data[: int(rng.integers(0, len(data)))], "kick.aiff"
        elif kind == 3:  # channels, rate, byte rate, block align, bits of the fmt chunk
            offset, fmt = [(22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"), (34, "<H")][rng.integers(5)]
            data = _header_field(_wav(tone), offset, fmt, int(rng.choice([0, 1, 3, 6, 255, 65535, 2**31, 2**32 - 1,
                                                                          int(rng.integers(2**32))])))
        elif kind == 4:  # RIFF and data sizes
            data = _wav(tone)
            data = _header_field(data, int(rng.choice([4, 40])), "<I", int(rng.choice([0, 1, 2**31, 2**32 - 1,
                                                                                        int(rng.integers(2**32))])))
        elif kind == 5:
            bad = tone.copy()
            bad[rng.integers(FRAMES)] = rng.choice([np.nan, np.inf, -np.inf])
            data = _wav(bad, subtype="FLOAT")
        elif kind == 6:
            data = _wav(np.zeros((0, 1), np.float32))
        elif kind == 7:
            data = _wav(tone[:1])
        elif kind == 8:
            data = _wav(np.tile(tone[:, None], (1, 6)))
        elif kind == 9:
            data = _wav(tone, subtype="PCM_U8")
        elif kind == 10:  # a metadata chunk before the data: large, or claiming more than the file
            data = _wav(tone)
            size = int(rng.choice([2**20, 2**31, 7]))
            body = b"LIST" + struct.pack("<I", size) + b"\0" * min(size, 2**20)
            data = data[:36] + body + data[36:]
            data = _header_field(data, 4, "<I", len(data) - 8)
        elif kind == 11:
            data = bytes(rng.integers(0, 256, int(rng.integers(0, 4000)), dtype=np.uint8))
        elif kind == 12:
            data = bytearray(_wav(tone))
            for _ in range(int(rng.integers(1, 8))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            data = bytes(data)
        else:
            data = _wav(tone * 10.0, subtype="FLOAT")  # loud: clipped at full scale, a warning
        yield name, data


def run_audio(seed: int, count: int, folder: Path, tally: Tally | None = None) -> Tally:
    """Mix ``count`` stem folders with one mutated stem through ``mixdown mix --method mono``."""
    tally = tally or Tally()
    for i, (name, data) in enumerate(audio_cases(seed, count)):
        stems = folder / "stems"
        shutil.rmtree(stems, ignore_errors=True)
        write_stems(stems)
        (stems / "kick.wav").unlink()
        (stems / name).write_bytes(data)
        out = folder / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        mix, params = out / "mix.wav", out / "mix.params.json"

        def check(paths: list[Path]) -> None:
            _valid_audio(paths[0])
            ConsoleParams.load(paths[1])

        outcome, detail = run_case(["mix", str(stems), "-o", str(mix), "--method", "mono"], [mix, params], check,
                                   [out, stems])
        tally.add(outcome, f"audio case {i} (seed {seed}, {name}): {detail}")
    return tally
