"""Sample libraries for synthetic songs: Hydrogen drumkits and General MIDI SoundFonts.

Where a user has them, the score of a synthetic song (`mixdown.synth.demo.compose_song`)
is played by recorded instruments instead of the synthesized voices:

* **Drums** from a `Hydrogen <http://hydrogen-music.org>`_ drumkit: a folder holding
  ``drumkit.xml`` and its samples (WAV, FLAC, AIFF), or a ``.h2drumkit`` file (a
  gzipped tar of such a folder). :func:`parse_drumkit` reads the instruments and their
  velocity layers with :mod:`xml.etree` (any Hydrogen version: one ``<filename>`` per
  ``<instrument>``, layers directly under it or inside ``<instrumentComponent>``, with or
  without the XML namespace). :func:`assign_pieces` maps instruments to the kit pieces of the score by
  name (``"Pearl Kick"`` -> kick, ``"Hi-Hat Closed"`` -> hihat, ``"Tom Low"`` ->
  tom_2, ...), and :func:`render_kit` plays each hit as Hydrogen does: the layer whose
  velocity range holds the hit's velocity (one at random where layers overlap, i.e.
  round robin), scaled by velocity x layer gain x instrument volume. Open hi-hats use
  the kit's open-hat instrument and are choked at the end of their gate.
* **Pitched parts** (bass, keys, guitar, lead) through `FluidSynth
  <https://www.fluidsynth.org>`_ with a General MIDI SoundFont: :func:`midi_file`
  writes the part as a standard MIDI file (format 0) and :func:`render_soundfont` runs
  ``fluidsynth -ni -F out.wav -r RATE font.sf2 part.mid`` (reverb and chorus off, float
  output) and reads the result back as mono. Each stem's GM program is drawn from
  :data:`GM_PROGRAMS`.

These renders are dry; `mixdown.synth.demo.synthesize_song` takes them as ``sources``,
derives the overhead and room microphones from the kit as usual and levels every stem.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from mixdown.audio import resample
from mixdown.errors import MixdownError
from mixdown.multitrack import guess_instrument_class
from mixdown.synth.voice import DRUM_PIECES, Event, add_at, fade

DRUMKIT_XML = "drumkit.xml"
DRUMKIT_ARCHIVE_SUFFIX = ".h2drumkit"

OPEN_HAT_MIN_S = 0.08
"""Hi-hat events gated longer than this are open hats (the score's closed hats last 40-70 ms)."""

CORE_PIECES = ("kick", "snare", "hihat")
"""A drumkit is usable for songs when it has these; pieces it lacks keep the synthesized voice."""

GM_PROGRAMS: dict[str, tuple[int, ...]] = {
    "bass": (32, 33, 34, 35, 38, 39),  # acoustic, finger, pick, fretless, synth bass 1 and 2
    "keys": (0, 1, 4, 5, 16, 18, 89),  # grand and bright piano, e-pianos 1-2, drawbar and rock organ, warm pad
    "guitar": (24, 25, 26, 27),  # nylon, steel, jazz and clean electric guitar
    "lead": (40, 71, 73, 80, 81),  # violin, clarinet, flute, square and sawtooth lead
}
"""General MIDI programs (0-based) each pitched stem may be played with."""

FLUIDSYNTH = "fluidsynth"
FLUIDSYNTH_GAIN = 0.5
FLUIDSYNTH_RATES_HZ = (8000, 96000)
"""Sample rates FluidSynth renders at."""

_TICKS_PER_QUARTER = 10000
_MICROSECONDS_PER_QUARTER = 1_000_000  # with the division above, one tick is 0.1 ms
_HAT_CHOKE_S = 0.012
_CAMEL_OR_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_NOT_MAIN_SNARE = frozenset({"rim", "rimshot", "roll", "stick", "side", "cross", "brush", "flam", "off"})
_NOT_HAT = frozenset({"ride", "crash", "cymbal", "cym", "china", "splash", "bell", "bow", "cup", "pedal", "foot"})
_OPEN = frozenset({"open", "opened", "op", "ohh"})
_CLOSED = frozenset({"closed", "close", "cl", "chh"})
_TOM_HEIGHT = {"hi": 0, "high": 0, "rack": 0, "small": 0, "mid": 1, "medium": 1, "low": 2, "lo": 2, "floor": 2}


@dataclass(frozen=True)
class DrumLayer:
    """One sample of an instrument, played for velocities in ``[min_velocity, max_velocity]``.

    Attributes:
        file: Sample path relative to the kit folder.
        min_velocity: Lowest velocity (0..1) the layer plays.
        max_velocity: Highest velocity (0..1) the layer plays.
        gain: Linear gain.
        pitch: Transposition in semitones.
    """

    file: str
    min_velocity: float
    max_velocity: float
    gain: float = 1.0
    pitch: float = 0.0


@dataclass(frozen=True)
class DrumInstrument:
    """One instrument of a drumkit: a name and its velocity layers."""

    name: str
    layers: tuple[DrumLayer, ...]
    gain: float = 1.0


@dataclass(frozen=True)
class Drumkit:
    """A parsed Hydrogen drumkit.

    Attributes:
        name: The kit's name.
        source: The kit folder or ``.h2drumkit`` archive.
        instruments: Instruments with at least one layer, in the kit's order.
        archive_dir: For an archive, the folder inside it that holds ``drumkit.xml``.
    """

    name: str
    source: Path
    instruments: tuple[DrumInstrument, ...]
    archive_dir: str = ""


# --------------------------------------------------------------------------- Hydrogen drumkits


def _local(tag: str) -> str:
    """An element tag without its XML namespace."""
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def _child_float(element: ET.Element, name: str, default: float, where: str) -> float:
    text = _child_text(element, name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise MixdownError(f"{where}: <{name}> is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise MixdownError(f"{where}: <{name}> must be finite, got {text!r}")
    return value


def parse_drumkit(xml_text: str | bytes, source: str | os.PathLike, archive_dir: str = "") -> Drumkit:
    """Parse the text of a Hydrogen ``drumkit.xml``.

    Args:
        xml_text: The file's content.
        source: The kit folder or archive (recorded, and named in errors).
        archive_dir: For an archive, the folder inside it holding ``drumkit.xml``.

    Returns:
        The kit; instruments without layers (empty slots) are left out.

    Raises:
        MixdownError: If the XML is malformed, is not a drumkit, or a layer has no file
            or a non-numeric field.
    """
    where = f"{source}: {DRUMKIT_XML}"
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise MixdownError(f"{where} is not valid XML ({exc})") from None
    if _local(root.tag) != "drumkit_info":
        raise MixdownError(f"{where}: expected a <drumkit_info> document, got <{_local(root.tag)}>")
    instruments = []
    for element in root.iter():
        if _local(element.tag) != "instrument":
            continue
        name = _child_text(element, "name") or _child_text(element, "id") or "?"
        here = f"{where}: instrument {name!r}"
        layers = []
        for layer in element.iter():
            if _local(layer.tag) != "layer":
                continue
            file = _child_text(layer, "filename")
            if not file:
                raise MixdownError(f"{here}: a layer has no <filename>")
            layers.append(DrumLayer(file, _child_float(layer, "min", 0.0, here), _child_float(layer, "max", 1.0, here),
                                    _child_float(layer, "gain", 1.0, here), _child_float(layer, "pitch", 0.0, here)))
        if not layers and _child_text(element, "filename"):  # Hydrogen 0.9.2 and older: one sample, no layers
            layers.append(DrumLayer(_child_text(element, "filename"), 0.0, 1.0))
        if layers:
            gain = _child_float(element, "volume", 1.0, here) * _child_float(element, "gain", 1.0, here)
            instruments.append(DrumInstrument(name, tuple(layers), gain))
    return Drumkit(_child_text(root, "name") or Path(source).name, Path(source), tuple(instruments), archive_dir)


def _archive_xml(path: Path) -> tuple[bytes, str]:
    """The ``drumkit.xml`` of a ``.h2drumkit`` archive and the folder inside it that holds it."""
    try:
        with tarfile.open(path, "r:*") as archive:
            names = [m.name for m in archive.getmembers() if m.isfile() and Path(m.name).name == DRUMKIT_XML]
            if not names:
                raise MixdownError(f"{path}: no {DRUMKIT_XML} inside the archive")
            name = min(names, key=lambda n: n.count("/"))
            return archive.extractfile(name).read(), str(Path(name).parent)
    except (tarfile.TarError, OSError) as exc:
        raise MixdownError(f"{path}: cannot read the drumkit archive ({exc})") from None


def load_drumkit(path: str | os.PathLike) -> Drumkit:
    """Load a Hydrogen drumkit from its folder, its ``drumkit.xml`` or a ``.h2drumkit`` archive.

    Raises:
        MixdownError: If ``path`` is none of these or the kit does not parse.
    """
    path = Path(path)
    if path.is_file() and path.name == DRUMKIT_XML:
        path = path.parent
    if path.is_dir():
        xml_path = path / DRUMKIT_XML
        if not xml_path.is_file():
            raise MixdownError(f"{path}: no {DRUMKIT_XML} in this folder")
        return parse_drumkit(xml_path.read_bytes(), path)
    if path.is_file() and path.suffix.lower() == DRUMKIT_ARCHIVE_SUFFIX:
        text, archive_dir = _archive_xml(path)
        return parse_drumkit(text, path, archive_dir)
    raise MixdownError(f"{path}: not a Hydrogen drumkit (a folder with {DRUMKIT_XML} or a "
                       f"{DRUMKIT_ARCHIVE_SUFFIX} file)" if path.exists() else f"drumkit {path} does not exist")


def find_drumkits(path: str | os.PathLike) -> list[Path]:
    """The drumkits at ``path``: the kit itself, or every kit in a folder of kits.

    Args:
        path: A kit (folder with ``drumkit.xml``, the XML itself or a ``.h2drumkit``
            file), or a folder whose sub-folders and ``.h2drumkit`` files are kits, such
            as Hydrogen's ``data/drumkits``.

    Returns:
        Kit paths in name order.

    Raises:
        MixdownError: If ``path`` does not exist or holds no kit.
    """
    path = Path(path)
    if not path.exists():
        raise MixdownError(f"drumkit {path} does not exist")
    if path.is_file() or (path / DRUMKIT_XML).is_file():
        return [path]
    kits = sorted(p for p in path.iterdir() if not p.name.startswith(".") and (
        (p.is_dir() and (p / DRUMKIT_XML).is_file()) or (p.is_file() and p.suffix.lower() == DRUMKIT_ARCHIVE_SUFFIX)))
    if not kits:
        raise MixdownError(f"{path}: no Hydrogen drumkits (folders with {DRUMKIT_XML} or "
                           f"{DRUMKIT_ARCHIVE_SUFFIX} files)")
    return kits


@functools.lru_cache(maxsize=8)
def usable_drumkits(path: str | os.PathLike) -> tuple[Drumkit, ...]:
    """The kits at ``path`` (see :func:`find_drumkits`) that have every piece of :data:`CORE_PIECES`.

    Raises:
        MixdownError: If there is none.
    """
    kits = tuple(kit for kit in map(load_drumkit, find_drumkits(path))
                 if all(piece in assign_pieces(kit) for piece in CORE_PIECES))
    if not kits:
        raise MixdownError(f"{path}: no drumkit with instruments named like a kick, a snare and a hi-hat")
    return kits


def _tokens(name: str) -> set[str]:
    return {token.lower() for token in _CAMEL_OR_WORD.findall(name)}


def assign_pieces(kit: Drumkit) -> dict[str, DrumInstrument]:
    """Map a kit's instruments to the pieces of a synthetic score by their names.

    Classes come from `mixdown.multitrack.guess_instrument_class`; within them: the
    first snare not named as a rimshot, roll, stick or side sound; the hi-hat explicitly
    named closed (else the first plain one) and the one named open (``hihat_open``),
    never ride, crash, bell or pedal sounds; the first crash, preferring one not also a
    ride; toms ordered high/rack, mid, low/floor (then kit order): ``tom_1`` the highest,
    ``tom_2`` the lowest of at least two.

    Returns:
        ``{piece: instrument}`` for the pieces of ``voice.DRUM_PIECES`` (plus
        ``hihat_open``) the kit has.
    """
    found: dict[str, DrumInstrument] = {}
    candidates: dict[str, list[tuple[tuple[int, int], DrumInstrument]]] = {}
    for index, instrument in enumerate(kit.instruments):
        tokens = _tokens(instrument.name)
        cls = guess_instrument_class(instrument.name)
        if "crash" in tokens:
            candidates.setdefault("crash", []).append((("ride" in tokens, index), instrument))
        elif cls == "kick":
            candidates.setdefault("kick", []).append(((0, index), instrument))
        elif cls == "snare" and not tokens & _NOT_MAIN_SNARE:
            candidates.setdefault("snare", []).append(((0, index), instrument))
        elif cls == "hihat" and not tokens & _NOT_HAT:
            if tokens & _OPEN:
                candidates.setdefault("hihat_open", []).append(((0, index), instrument))
            else:
                candidates.setdefault("hihat", []).append(((not tokens & _CLOSED, index), instrument))
        elif cls == "tom":
            height = min((_TOM_HEIGHT[t] for t in tokens if t in _TOM_HEIGHT), default=1)
            candidates.setdefault("tom", []).append(((height, index), instrument))
    for piece, ranked in candidates.items():
        ranked.sort(key=lambda item: item[0])
        if piece != "tom":
            found[piece] = ranked[0][1]
        elif len(ranked) >= 2:
            found["tom_1"], found["tom_2"] = ranked[0][1], ranked[-1][1]
    return found


def _kit_files(kit: Drumkit, files: set[str]) -> dict[str, bytes]:
    """The bytes of the named sample files of ``kit``."""
    if kit.source.is_dir():
        out = {}
        for file in files:
            try:
                out[file] = (kit.source / file).read_bytes()
            except OSError as exc:
                raise MixdownError(f"{kit.source}: cannot read sample {file!r} ({exc.strerror})") from None
        return out
    prefix = f"{kit.archive_dir}/" if kit.archive_dir not in ("", ".") else ""
    try:
        with tarfile.open(kit.source, "r:*") as archive:
            members = {m.name: m for m in archive.getmembers() if m.isfile()}
            missing = sorted(f for f in files if prefix + f not in members)
            if missing:
                raise MixdownError(f"{kit.source}: samples missing from the archive: {', '.join(missing)}")
            return {file: archive.extractfile(members[prefix + file]).read() for file in files}
    except (tarfile.TarError, OSError) as exc:
        raise MixdownError(f"{kit.source}: cannot read the drumkit archive ({exc})") from None


@functools.lru_cache(maxsize=2)
def _layer_audio(kit: Drumkit, sample_rate: int) -> dict[DrumLayer, np.ndarray]:
    """Every layer of the kit's assigned instruments as mono float32 at ``sample_rate`` (cached)."""
    layers = {layer for instrument in assign_pieces(kit).values() for layer in instrument.layers}
    data = _kit_files(kit, {layer.file for layer in layers})
    out = {}
    for layer in layers:
        try:
            audio, rate = sf.read(io.BytesIO(data[layer.file]), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise MixdownError(f"{kit.source}: cannot decode sample {layer.file!r} ({exc})") from None
        if not np.isfinite(audio).all():
            raise MixdownError(f"{kit.source}: sample {layer.file!r} holds NaN or infinite values")
        # A layer transposed by p semitones plays the recording 2**(p/12) times faster.
        rate_in = rate * 2.0 ** (layer.pitch / 12.0) if layer.pitch else rate
        out[layer] = resample(audio.mean(axis=1, keepdims=True).T, rate_in, sample_rate)[0]
    return out


def _pick_layer(instrument: DrumInstrument, velocity: float, rng: np.random.Generator) -> DrumLayer:
    """The layer playing ``velocity``: one at random of those covering it, else the nearest."""
    covering = [layer for layer in instrument.layers if layer.min_velocity <= velocity <= layer.max_velocity]
    if covering:
        return covering[int(rng.integers(len(covering)))]
    return min(instrument.layers, key=lambda layer: min(abs(velocity - layer.min_velocity),
                                                        abs(velocity - layer.max_velocity)))


def render_kit(
    kit: Drumkit,
    parts: Mapping[str, Sequence[Event]],
    pieces: Sequence[str],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Play the drum parts of a score with a drumkit's samples.

    Args:
        kit: The drumkit.
        parts: Events per piece of ``voice.DRUM_PIECES`` (e.g. ``Song.parts``).
        pieces: The pieces wanted.
        n_samples: Length of every output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the round-robin choices between overlapping layers.

    Returns:
        ``{piece: float64 (samples,)}`` for the wanted pieces the kit has (see
        :func:`assign_pieces`); the others are left to the synthesized voices.
    """
    unknown = sorted(set(pieces) - set(DRUM_PIECES))
    if unknown:
        raise ValueError(f"unknown kit pieces {unknown}; expected some of {DRUM_PIECES}")
    assigned = assign_pieces(kit)
    audio = _layer_audio(kit, sample_rate)
    out = {}
    for piece in pieces:
        if piece not in assigned:
            continue
        buffer = np.zeros(n_samples)
        for event in parts[piece]:
            instrument = assigned[piece]
            is_open = piece == "hihat" and event.duration_s > OPEN_HAT_MIN_S
            if is_open:
                instrument = assigned.get("hihat_open", instrument)
            layer = _pick_layer(instrument, event.velocity, rng)
            hit = (event.velocity * layer.gain * instrument.gain) * audio[layer].astype(np.float64)
            if is_open:  # choke the ringing hat at the end of its gate
                hit = fade(hit[: round((event.duration_s + _HAT_CHOKE_S) * sample_rate)].copy(),
                            sample_rate, 0.0, _HAT_CHOKE_S)
            add_at(buffer, hit, event.onset_s, sample_rate)
        out[piece] = buffer
    return out


# --------------------------------------------------------------------------- General MIDI via FluidSynth


def _vlq(value: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits per byte, most significant first."""
    if value < 0:
        raise ValueError(f"variable-length quantities are non-negative, got {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(events: Sequence[Event], program: int, channel: int = 0) -> bytes:
    """A standard MIDI file (format 0, one track) playing ``events`` on one channel.

    Timing is absolute: tempo 60 BPM at 10000 ticks per quarter note, so one tick is
    0.1 ms. A note ends at ``onset_s + duration_s`` or where the next note of the same
    pitch starts; velocities map to 1..127.

    Args:
        events: Pitched notes.
        program: General MIDI program, 0-127 (0-based).
        channel: MIDI channel, 0-15 (9 is the GM percussion channel).

    Returns:
        The file's bytes.
    """
    if not 0 <= program <= 127 or not 0 <= channel <= 15:
        raise ValueError(f"program must be 0-127 and channel 0-15, got {program}, {channel}")
    if any(e.pitch is None or not 0 <= e.pitch <= 127 for e in events):
        raise ValueError("every event needs a MIDI pitch in 0-127")
    ticks_per_s = _TICKS_PER_QUARTER * 1_000_000 / _MICROSECONDS_PER_QUARTER
    notes = sorted(events, key=lambda e: (e.pitch, e.onset_s))
    messages = []  # (tick, order, bytes): note-offs (order 0) before note-ons at the same tick
    for i, event in enumerate(notes):
        on = round(event.onset_s * ticks_per_s)
        off = round((event.onset_s + event.duration_s) * ticks_per_s)
        if i + 1 < len(notes) and notes[i + 1].pitch == event.pitch:
            off = min(off, round(notes[i + 1].onset_s * ticks_per_s))
        velocity = min(max(round(event.velocity * 127), 1), 127)
        messages.append((on, 1, bytes([0x90 | channel, event.pitch, velocity])))
        messages.append((max(off, on), 0, bytes([0x80 | channel, event.pitch, 0])))
    messages.sort(key=lambda m: (m[0], m[1]))
    track = bytearray(_vlq(0) + b"\xff\x51\x03" + _MICROSECONDS_PER_QUARTER.to_bytes(3, "big"))
    track += _vlq(0) + bytes([0xC0 | channel, program])
    last = 0
    for tick, _, message in messages:
        track += _vlq(tick - last) + message
        last = tick
    track += _vlq(0) + b"\xff\x2f\x00"  # end of track
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    return header + _TICKS_PER_QUARTER.to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def fluidsynth_program() -> str:
    """Path of the ``fluidsynth`` program.

    Raises:
        MixdownError: If it is not installed.
    """
    found = shutil.which(FLUIDSYNTH)
    if found is None:
        raise MixdownError("rendering with a SoundFont needs the fluidsynth program "
                           "(Debian/Ubuntu: apt-get install fluidsynth)")
    return found


def check_soundfont(path: str | os.PathLike, sample_rate: int) -> Path:
    """Check that ``path`` is a SoundFont FluidSynth can render at ``sample_rate``.

    Returns:
        The path.

    Raises:
        MixdownError: If the file is missing or not a SoundFont 2 (RIFF ``sfbk``), the
            rate is out of range or fluidsynth is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise MixdownError(f"soundfont {path} does not exist")
    with path.open("rb") as file:
        head = file.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise MixdownError(f"{path}: not a SoundFont 2 file (.sf2)")
    low, high = FLUIDSYNTH_RATES_HZ
    if not low <= sample_rate <= high:
        raise MixdownError(f"FluidSynth renders at {low}-{high} Hz, not {sample_rate} Hz")
    fluidsynth_program()
    return path


def render_soundfont(
    events: Sequence[Event],
    program: int,
    soundfont: str | os.PathLike,
    n_samples: int,
    sample_rate: int,
) -> np.ndarray:
    """Play a pitched part with a General MIDI SoundFont through FluidSynth.

    Args:
        events: The part's notes.
        program: General MIDI program (0-based), e.g. from :data:`GM_PROGRAMS`.
        soundfont: A ``.sf2`` file, e.g. Debian's ``/usr/share/sounds/sf2/FluidR3_GM.sf2``.
        n_samples: Length of the output (FluidSynth's render is cut or zero-padded).
        sample_rate: Sample rate in Hz, within :data:`FLUIDSYNTH_RATES_HZ`.

    Returns:
        Dry mono render (the two channels averaged), float64 ``(samples,)``.

    Raises:
        MixdownError: If the SoundFont or fluidsynth is unusable or the render fails.
    """
    soundfont = check_soundfont(soundfont, sample_rate)
    with tempfile.TemporaryDirectory(prefix="mixdown-fluidsynth-") as tmp:
        midi, wav = Path(tmp) / "part.mid", Path(tmp) / "part.wav"
        midi.write_bytes(midi_file(events, program))
        command = [fluidsynth_program(), "-ni", "-q", "-R", "0", "-C", "0", "-g", str(FLUIDSYNTH_GAIN),
                   "-O", "float", "-T", "wav", "-r", str(sample_rate), "-F", str(wav), str(soundfont), str(midi)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MixdownError(f"fluidsynth failed to run ({exc})") from None
        if result.returncode != 0 or not wav.is_file():
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise MixdownError(f"fluidsynth could not render with {soundfont} ({detail})")
        audio, _ = sf.read(wav, dtype="float64", always_2d=True)
    mono = np.zeros(n_samples)
    n = min(n_samples, len(audio))
    mono[:n] = audio[:n].mean(axis=1)
    return mono
