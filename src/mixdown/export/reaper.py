"""REAPER project export: one track per stem with the mix's console settings.

`reaper_project` writes a REAPER project (``.RPP``, REAPER's plain-text format) so that an
engineer opens the session and carries on. Each stem becomes a track named after it,
holding one media item that points at the stem file (``<ITEM>`` / ``<SOURCE
WAVE|FLAC>``), from 0 s; ``mute`` becomes the track's ``MUTESOLO`` and each EQ band's type
its ReaEQ band type (`REAEQ_BAND_CODES`: peak -> band, low/high shelf -> low/high shelf,
highpass/lowpass -> high/low pass).

Every numeric setting is mapped by one table, `REAPER_FIELDS`, keyed by the schema's
tensor names (`mixdown.params.SCHEMA`; a test checks it covers every field): for each,
what holds it in REAPER and the converter that writes it, or why it has no REAPER
equivalent. In short:

========================  ===============================================================
mixdown                   REAPER
========================  ===============================================================
fader ``gain_db``         track volume (``VOLPAN`` field 1, linear); REAPER's fader stops
                          at +12 dB, higher settings are clamped (noted)
``pan``                   track pan (``VOLPAN`` field 2, -1..1) with the track's pan law
                          set to -3 dB (field 3), mixdown's constant-power law; stereo
                          stems, which mixdown balances at unity in the centre, get
                          +3.01 dB on the fader to match. This assumes REAPER's -3 dB law
                          is the sine/cosine one (REAPER calls it constant power).
EQ bands                  ReaEQ (stock VST), one ReaEQ band per band, same order;
                          frequency and gain exact (ReaEQ's range starts at 20 Hz: lower
                          frequencies are clamped, noted); Q becomes ReaEQ's bandwidth in
                          octaves by the RBJ relation ``1/Q = 2 sinh(ln2/2 BW)``, exact for
                          peak bands as RBJ defines them; for shelves and pass filters
                          ReaEQ's own use of bandwidth is not documented, so their shapes
                          are close, not identical
compressor                ReaComp (stock VST) after ReaEQ: threshold, ratio, attack,
                          release and knee set; makeup on ReaComp's wet gain (at most
                          +6 dB: more is clamped, noted); RMS size 0 (peak detection, as
                          mixdown's compressor). Ballistics differ in detail (mixdown
                          smooths the gain reduction, Giannoulis et al. 2012), so the
                          gain reduction is close, not identical
reverb send               a post-fader send (``AUXRECV`` mode 0) at the send level to a
                          track "Reverb" whose volume is the return level. **No reverb
                          plug-in is inserted**: mixdown's filtered-noise reverb has no
                          stock counterpart; its decay and pre-delay are in the notes
master loudness + trim    the master volume (``MASTER_VOLUME``) is set to the gain
                          mixdown's loudness normalisation applied to this mix (measured
                          by rendering it, `master_gain_db`) plus the master trim
true-peak limiter         **not mapped**: add a limiter at the ceiling given in the notes
========================  ===============================================================

The project notes (``<NOTES>``, in REAPER's Project Notes window) list these facts, every
setting that is not mapped and every clamped value.

Plug-in state. REAPER stores a VST's state in the project as base64 blocks: a header
(the plug-in's id, its pin mappings, the size of the state), the state, and a program
trailer. For ReaEQ the state is the plug-in's own chunk (version 33, band count, then per
band: type code, enabled, frequency in Hz, linear gain and bandwidth in octaves as
little-endian doubles, a flag byte; then the global gain); for ReaComp it is its
parameter values as 32-bit floats in parameter order. The layouts follow what REAPER 7
writes (field meanings from public reverse-engineering of REAPER-saved projects);
`tests/test_export.py` checks that the writer reproduces, byte for byte, chunks REAPER
itself saved. The project has not been opened in REAPER here (REAPER is not available
on the build machines). REAPER finds a plug-in by its file name, which differs by system
(``reaeq.dll``, ``reaeq.vst.dylib``, ``reaeq.vst.so``): ``platform`` picks the names,
by default those of the system running the export.
"""

from __future__ import annotations

import base64
import math
import struct
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mixdown.audio import probe_audio
from mixdown.console import ProgressCallback, render
from mixdown.dsp.loudness import loudness_lufs
from mixdown.errors import MixdownError
from mixdown.multitrack import Multitrack
from mixdown.params import (
    SCHEMA,
    SPECS,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    ParamSpec,
)

MAX_TRACK_GAIN_DB = 12.0
"""REAPER's track fader maximum."""

PAN_LAW_LINEAR = 10.0 ** (-3.0 / 20.0)
"""The -3 dB pan law REAPER stores in ``VOLPAN`` field 3 (as a linear gain)."""

STEREO_BALANCE_DB = 20.0 * math.log10(math.sqrt(2.0))
"""Fader offset for stereo stems: mixdown passes them at unity in the centre, REAPER at -3 dB."""

REAEQ_MIN_FREQ_HZ = 20.0
REAEQ_MAX_FREQ_HZ = 24000.0
REACOMP_MAX_WET_DB = 20.0 * math.log10(2.0)

# ReaEQ band type codes (REAPER's own numbering).
REAEQ_BAND_CODES = {"low_shelf": 0, "high_shelf": 1, "lowpass": 3, "highpass": 4, "peak": 8}

PLUGIN_SUFFIXES = {"windows": ".dll", "macos": ".vst.dylib", "linux": ".vst.so"}
"""File name endings of REAPER's own VST plug-ins by system."""

_REAEQ_VST = 'VST "VST: ReaEQ (Cockos)" reaeq{suffix} 0 "" 1919247729<56535472656571726561657100000000> ""'
_REACOMP_VST = 'VST "VST: ReaComp (Cockos)" reacomp{suffix} 0 "" 1919247213<5653547265636D726561636F6D700000> ""'
_REAEQ_ID = b"qeer"  # the plug-in's four-character id 'reeq', little-endian
_REACOMP_ID = b"mcer"  # 'recm'
_REAEQ_STATE_VERSION = 33
_REAEQ_UI_TAIL = struct.pack("<4i", 0, 509, 348, 2)  # editor state REAPER 7 appends (window size)
_PROGRAM_TRAILER = base64.b64encode(b"\x00\x00\x10\x00\x00\x00").decode()  # empty program name
_PARAMS_MAGIC = struct.pack("<2I", 0xDEADBEEF, 0xDEADF00D)  # a state of raw parameter values follows

# ReaComp's 21 parameters as REAPER 7 saves a fresh instance (raw values; the dry gain,
# parameter 10, at -150 dB is REAPER's "off"); the writer replaces the ones it maps.
_REACOMP_DEFAULTS = (1.0, 3.0 / 99.0, 0.006, 0.02, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 10.0 ** (-150.0 / 20.0), 1.0, 0.0,
                     0.05, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0)
_REACOMP_THRESHOLD, _REACOMP_RATIO, _REACOMP_ATTACK, _REACOMP_RELEASE = 0, 1, 2, 3
_REACOMP_WET, _REACOMP_RMS, _REACOMP_KNEE = 11, 13, 14
_REACOMP_FIXED = {_REACOMP_RMS: 0.0}
"""ReaComp parameters the export sets whatever the settings: RMS size 0 (peak detection, as mixdown's compressor)."""


# -- the mapping table -----------------------------------------------------------------------------

Target = Literal["track", "reaeq", "reacomp", "send", "reverb_track", "master"]


@dataclass
class MapContext:
    """What a converter needs besides the value.

    Attributes:
        where: whose setting it is, as the project notes name it: ``"bass"``,
            ``"bass: EQ band 3"``, ``"master"``.
        notes: where converters record values REAPER cannot hold (and how they were changed).
        stereo: the stem is stereo (its fader gets `STEREO_BALANCE_DB`).
        band_type: the EQ band's type, for band fields.
        unmapped: ``(spec, phrase)`` of the settings met that have no REAPER equivalent.
    """

    where: str
    notes: list[str]
    stereo: bool = False
    band_type: str = ""
    unmapped: list[tuple[ParamSpec, str]] = field(default_factory=list)


Converter = Callable[[float, MapContext], float]
"""mixdown value (the schema's unit) -> the number REAPER stores."""


@dataclass(frozen=True)
class ReaperField:
    """How one `mixdown.params.SCHEMA` field reaches a REAPER project.

    Three kinds of entry:

    * written: ``convert`` turns the value into the number stored at ``slot`` of ``target``;
    * folded: ``target`` set, ``convert`` None: the field has no number of its own in
      REAPER but enters another one, as ``how`` says (the master loudness target);
    * not mapped: ``target`` None: REAPER has no equivalent, ``how`` says why, and the
      project notes give the setting as ``note`` (``{value}`` is replaced by it).

    Attributes:
        target: what holds it: ``"track"`` (the stem's track, ``VOLPAN``), ``"reaeq"``
            (its band of the track's ReaEQ), ``"reacomp"`` (the track's ReaComp),
            ``"send"`` (the track's send to the track "Reverb"), ``"reverb_track"``,
            ``"master"`` (``MASTER_VOLUME``), or None.
        how: what is written and how, or why nothing is.
        slot: the value's place in the target: ``"volume"`` / ``"pan"`` (``VOLPAN`` and
            ``AUXRECV`` fields), a `ReaEQBand` field, a ReaComp parameter index.
        convert: the converter of a written field (may clamp and note, see `MapContext`).
        note: for a field not mapped, the phrase the project notes use.
    """

    target: Target | None
    how: str
    slot: str | int | None = None
    convert: Converter | None = None
    note: str = ""


def _fader(gain_db: float, ctx: MapContext) -> float:
    gain_db = gain_db + (STEREO_BALANCE_DB if ctx.stereo else 0.0)
    if gain_db > MAX_TRACK_GAIN_DB:
        ctx.notes.append(f"{ctx.where}: fader {gain_db:+.2f} dB set to +{MAX_TRACK_GAIN_DB:g} dB (REAPER's maximum)")
        gain_db = MAX_TRACK_GAIN_DB
    return _db_to_linear(gain_db)


def _reaeq_freq(freq_hz: float, ctx: MapContext) -> float:
    freq = min(max(freq_hz, REAEQ_MIN_FREQ_HZ), REAEQ_MAX_FREQ_HZ)
    if freq != freq_hz:
        ctx.notes.append(f"{ctx.where} at {freq_hz:g} Hz set to {freq:g} Hz (ReaEQ's range)")
    return freq


def _reaeq_gain(gain_db: float, ctx: MapContext) -> float:
    return 1.0 if ctx.band_type in ("highpass", "lowpass") else _db_to_linear(gain_db)


def _reacomp_wet(makeup_db: float, ctx: MapContext) -> float:
    wet_db = min(makeup_db, REACOMP_MAX_WET_DB)
    if wet_db != makeup_db:
        ctx.notes.append(f"{ctx.where}: compressor makeup {makeup_db:+.1f} dB set to {wet_db:+.1f} dB (ReaComp's wet "
                         "maximum); raise the fader by the rest")
    return _db_to_linear(wet_db)


_REVERB_MISSING = ("mixdown's reverb (exponentially decaying filtered noise) has no stock REAPER counterpart, so "
                   "no reverb plug-in is inserted; the notes give the setting")

REAPER_FIELDS: dict[str, ReaperField] = {
    "gain_db": ReaperField("track", "track volume (VOLPAN field 1, linear), +3.01 dB for stereo stems (mixdown "
                           "passes them at unity in the centre, REAPER's -3 dB law at -3 dB); above REAPER's "
                           "+12 dB maximum clamped (noted)", "volume", _fader),
    "pan": ReaperField("track", "track pan (VOLPAN field 2, -1..1) with the pan law set to -3 dB (field 3), "
                       "mixdown's constant-power law", "pan", lambda pan, ctx: float(pan)),
    "reverb_send_db": ReaperField("send", "post-fader send (AUXRECV mode 0) to the track 'Reverb', linear "
                                  "volume; null: no send", "volume", lambda db, ctx: _db_to_linear(db)),
    "eq_freq_hz": ReaperField("reaeq", "ReaEQ band frequency in Hz; outside ReaEQ's 20..24000 Hz clamped (noted)",
                              "freq_hz", _reaeq_freq),
    "eq_gain_db": ReaperField("reaeq", "ReaEQ band gain, linear (1 for pass filters, which have no gain)",
                              "gain", _reaeq_gain),
    "eq_q": ReaperField("reaeq", "ReaEQ bandwidth in octaves by the RBJ relation 1/Q = 2 sinh(ln2/2 BW) (exact "
                        "for peak bands; shelves and pass filters close)", "bandwidth_oct",
                        lambda q, ctx: q_to_bandwidth_oct(q)),
    "threshold_db": ReaperField("reacomp", "ReaComp threshold, linear amplitude", _REACOMP_THRESHOLD,
                                lambda db, ctx: _db_to_linear(db)),
    "ratio": ReaperField("reacomp", "ReaComp ratio, stored as (ratio - 1) / 99", _REACOMP_RATIO,
                         lambda ratio, ctx: (ratio - 1.0) / 99.0),
    "attack_ms": ReaperField("reacomp", "ReaComp attack, stored as ms / 500", _REACOMP_ATTACK,
                             lambda ms, ctx: ms / 500.0),
    "release_ms": ReaperField("reacomp", "ReaComp release, stored as ms / 5000", _REACOMP_RELEASE,
                              lambda ms, ctx: ms / 5000.0),
    "knee_db": ReaperField("reacomp", "ReaComp knee, stored as dB / 24", _REACOMP_KNEE, lambda db, ctx: db / 24.0),
    "makeup_db": ReaperField("reacomp", "ReaComp wet gain, linear; above ReaComp's +6 dB maximum clamped (noted)",
                             _REACOMP_WET, _reacomp_wet),
    "master_gain_db": ReaperField("master", "folded into MASTER_VOLUME: the trim plus the loudness "
                                  "normalisation's gain (`master_gain_db`)", "volume"),
    "target_lufs": ReaperField("master", "folded into MASTER_VOLUME: REAPER has no loudness normaliser, so "
                               "`master_gain_db` renders the mix, measures it (BS.1770) and adds the gain that "
                               "takes it to the target to the trim", "volume"),
    "ceiling_dbtp": ReaperField(None, "the true-peak limiter is not mapped: of REAPER's plug-ins only ReaEQ's and "
                                "ReaComp's saved states are reproduced and checked here",
                                note="mixdown's true-peak limiter at {value:g} dBTP: add a limiter on the master"),
    "reverb_decay_s": ReaperField(None, _REVERB_MISSING, note="decay {value:g} s"),
    "reverb_predelay_ms": ReaperField(None, _REVERB_MISSING, note="pre-delay {value:g} ms"),
    "reverb_return_db": ReaperField("reverb_track", "volume of the track 'Reverb' (VOLPAN field 1, linear, at "
                                    "most +12 dB)", "volume",
                                    lambda db, ctx: _db_to_linear(min(db, MAX_TRACK_GAIN_DB))),
}
"""How each schema field (by tensor name) is written to REAPER; the export iterates this table."""


def _value(level: Any, spec: ParamSpec) -> float | None:
    """The setting ``spec`` of ``level`` (a channel, EQ band or the master); None where its processor is off."""
    holder = getattr(level, spec.group) if spec.group else level
    return None if holder is None else getattr(holder, spec.key)


def _specs(level: str, target: Target | None) -> list[ParamSpec]:
    """The `SCHEMA` fields at ``level`` that `REAPER_FIELDS` sends to ``target``, in schema order."""
    return [spec for spec in SCHEMA if spec.level == level and REAPER_FIELDS[spec.tensor].target == target]


def map_values(settings: Iterable[tuple[ParamSpec, float | None]], ctx: MapContext) -> dict[str | int, float]:
    """REAPER's numbers for ``(spec, value)`` settings, by slot (`REAPER_FIELDS`).

    Switched-off settings (None) and folded fields give nothing; settings with no REAPER
    equivalent go to ``ctx.unmapped``.
    """
    values: dict[str | int, float] = {}
    for spec, value in settings:
        entry = REAPER_FIELDS[spec.tensor]
        if value is None:
            continue
        if entry.target is None:
            ctx.unmapped.append((spec, entry.note.format(value=value)))
        elif entry.convert is not None:
            values[entry.slot] = entry.convert(value, ctx)
    return values


def _map_level(holder: Any, level: str, target: Target | None, ctx: MapContext) -> dict[str | int, float]:
    return map_values(((spec, _value(holder, spec)) for spec in _specs(level, target)), ctx)


@dataclass(frozen=True)
class ReaEQBand:
    """One ReaEQ band in REAPER's units.

    Attributes:
        code: band type code (`REAEQ_BAND_CODES`).
        freq_hz: frequency.
        gain: linear gain (1.0 = 0 dB).
        bandwidth_oct: bandwidth in octaves.
        enabled: whether the band is on.
    """

    code: int
    freq_hz: float
    gain: float
    bandwidth_oct: float
    enabled: bool = True


@dataclass(frozen=True)
class ReaperProject:
    """A written project: its text and what did not map exactly."""

    text: str
    notes: list[str]


def q_to_bandwidth_oct(q: float) -> float:
    """Bandwidth in octaves of a band with quality ``q`` (RBJ cookbook: ``1/Q = 2 sinh(ln2/2 BW)``)."""
    return 2.0 / math.log(2.0) * math.asinh(1.0 / (2.0 * q))


def reaeq_bands(bands: list[EQBand], notes: list[str], where: str) -> list[ReaEQBand]:
    """mixdown EQ bands as ReaEQ bands (`REAPER_FIELDS`); clamped values are added to ``notes``."""
    out = []
    for k, band in enumerate(bands):
        ctx = MapContext(f"{where}: EQ band {k + 1}", notes, band_type=band.type)
        out.append(ReaEQBand(REAEQ_BAND_CODES[band.type], **_map_level(band, "band", "reaeq", ctx)))
        _map_level(band, "band", None, ctx)
        notes += [f"{ctx.where}: not mapped: {phrase}" for _, phrase in ctx.unmapped]
    return out


def reaeq_state(bands: list[ReaEQBand], global_gain: float = 1.0) -> bytes:
    """ReaEQ's own state chunk for ``bands``."""
    state = struct.pack("<2i", _REAEQ_STATE_VERSION, len(bands))
    for band in bands:
        state += struct.pack("<2i3dB", band.code, int(band.enabled), band.freq_hz, band.gain, band.bandwidth_oct, 1)
    return state + struct.pack("<2id", 1, 1, global_gain) + _REAEQ_UI_TAIL


def reacomp_state(threshold_db: float, ratio: float, attack_ms: float, release_ms: float, knee_db: float,
                  wet_db: float, rms_ms: float = 0.0) -> bytes:
    """ReaComp's state for compressor settings in mixdown's units (converted by `REAPER_FIELDS`).

    Args:
        threshold_db, ratio, attack_ms, release_ms, knee_db: as `mixdown.params.CompressorParams`.
        wet_db: ReaComp's wet gain (mixdown's makeup, at most `REACOMP_MAX_WET_DB`).
        rms_ms: ReaComp's RMS window (0: peak detection).
    """
    settings = {"threshold_db": threshold_db, "ratio": ratio, "attack_ms": attack_ms, "release_ms": release_ms,
                "knee_db": knee_db, "makeup_db": wet_db}
    values = map_values(((SPECS[name], value) for name, value in settings.items()), MapContext("ReaComp", []))
    return reacomp_raw_state({**values, _REACOMP_RMS: rms_ms / 100.0})


def reacomp_raw_state(values: Mapping[int, float]) -> bytes:
    """ReaComp's state: its parameter values by index (REAPER's stored numbers; `_REACOMP_DEFAULTS` elsewhere)."""
    params = list(_REACOMP_DEFAULTS)
    for index, value in values.items():
        params[index] = value
    return _PARAMS_MAGIC + struct.pack(f"<{len(params)}f", *params)


def vst_header(plugin_id: bytes, state_size: int, inputs: int, chunk: bool) -> bytes:
    """REAPER's header block before a VST state: id, pin mappings (stereo out), state size.

    Args:
        plugin_id: the plug-in's four-character id, little-endian (``b"qeer"``).
        state_size: length of the state block in bytes.
        inputs: input pins (2, or 4 with a sidechain), each mapped to its own channel.
        chunk: True when the state is the plug-in's own chunk, False for raw parameters.
    """
    header = plugin_id + struct.pack("<I", 0xFEED5EEE if chunk else 0xFEED5EEF)
    for pins in (inputs, 2):
        header += struct.pack("<I", pins) + b"".join(struct.pack("<Q", 1 << pin) for pin in range(pins))
    return header + struct.pack("<3I", state_size, 1 if chunk else 0, 0x00100000)


def vst_lines(vst_line: str, header: bytes, state: bytes) -> list[str]:
    """The ``<VST ...>`` block: header, state in 96-byte base64 lines (as REAPER wraps), trailer."""
    lines = [base64.b64encode(header).decode()]
    lines += [base64.b64encode(state[i:i + 96]).decode() for i in range(0, len(state), 96)]
    return [f"<{vst_line}", *_indent([*lines, _PROGRAM_TRAILER], 1), ">"]


def default_platform() -> str:
    """The `PLUGIN_SUFFIXES` key of the system running Python."""
    return "windows" if sys.platform.startswith(("win", "cygwin")) else "macos" if sys.platform == "darwin" else "linux"


def reaper_project(multitrack: Multitrack, params: ConsoleParams, media_paths: Mapping[str, str],
                   master_db: float, platform: str = "windows") -> ReaperProject:
    """The text of a REAPER project for file-backed ``multitrack`` mixed with ``params``.

    Args:
        multitrack: the stems (each with a file path).
        params: settings for exactly these stems.
        media_paths: ``{stem name: path as written in the project}`` (absolute, or relative
            to the project file's folder).
        master_db: the master volume to set, in dB (see `master_gain_db`).
        platform: whose plug-in file names to write (a `PLUGIN_SUFFIXES` key).

    Returns:
        The project text and the notes on what did not map exactly.
    """
    if platform not in PLUGIN_SUFFIXES:
        raise MixdownError(f"platform {platform!r} is not one of {', '.join(PLUGIN_SUFFIXES)}")
    ordered = params.ordered_like(multitrack.names)
    notes: list[str] = []
    tracks = []
    sends = []
    for i, (stem, ch) in enumerate(zip(multitrack.stems, ordered.channels, strict=True)):
        if stem.path is None:
            raise MixdownError(f"stem {stem.name!r} has no file; a REAPER project needs the stem files")
        item = _item(stem.name, media_paths[stem.name], probe_audio(stem.path).duration_s)
        # Mapped in signal-flow order (EQ, compressor, fader and pan, send), which orders the notes.
        fx = _fx_chain(stem.name, ch, notes, platform)
        ctx = MapContext(stem.name, notes, stereo=stem.is_stereo)
        volpan = _map_level(ch, "channel", "track", ctx)
        send = _map_level(ch, "channel", "send", ctx)
        _map_level(ch, "channel", None, ctx)
        notes += [f"{stem.name}: not mapped: {phrase}" for _, phrase in ctx.unmapped]
        tracks.append(_track(stem.name, volpan, ch.mute, item, fx))
        if send:
            sends.append((i, send["volume"]))
    if sends:
        tracks.append(_reverb_track(sends, _map_level(ordered.master, "master", "reverb_track",
                                                      MapContext("master", notes))))
    lines = ['<REAPER_PROJECT 0.1 "7.0/mixdown" 0',
             f"  SAMPLERATE {multitrack.sample_rate} 0 0",
             f"  MASTER_VOLUME {_fmt(_db_to_linear(master_db))} 0 -1 -1 1",
             *_indent(_notes_block(ordered, master_db, notes, bool(sends)), 1),
             *[line for track in tracks for line in _indent(track, 1)],
             ">"]
    return ReaperProject("\n".join(lines) + "\n", notes)


def master_gain_db(multitrack: Multitrack, params: ConsoleParams, progress: ProgressCallback | None = None) -> float:
    """The gain mixdown's master applies before its limiter: loudness normalisation plus trim.

    Renders the mix with the loudness target and limiter off and measures it (BS.1770).
    """
    master = params.master
    if master.target_lufs is None:
        return master.gain_db
    raw = render(multitrack, replace(params, master=replace(master, target_lufs=None, ceiling_dbtp=None, gain_db=0.0)),
                 progress=progress)
    loudness = loudness_lufs(raw, multitrack.sample_rate)
    return master.gain_db + (master.target_lufs - loudness if math.isfinite(loudness) else 0.0)


def media_paths_for(multitrack: Multitrack, project_dir: Path) -> dict[str, str]:
    """Paths to write for the stems: relative to ``project_dir`` when inside it, else absolute."""
    base = project_dir.resolve()
    paths = {}
    for stem in multitrack.stems:
        if stem.path is None:
            raise MixdownError(f"stem {stem.name!r} has no file; a REAPER project needs the stem files")
        path = stem.path.resolve()
        paths[stem.name] = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
    return paths


def _track(name: str, volpan: Mapping[str | int, float], mute: bool, item: list[str], fx: list[str]) -> list[str]:
    guid = _guid("track", name)
    lines = [f"<TRACK {guid}",
             f"  NAME {_quote(name)}",
             f"  VOLPAN {_fmt(volpan['volume'])} {_fmt(volpan['pan'])} {_fmt(PAN_LAW_LINEAR)} -1 1",
             f"  MUTESOLO {int(mute)} 0 0",
             "  NCHAN 2",
             f"  TRACKID {guid}",
             "  MAINSEND 1 0"]
    if fx:
        lines += _indent(["<FXCHAIN", "  SHOW 0", "  LASTSEL 0", "  DOCKED 0", *_indent(fx, 1), ">"], 1)
    return lines + _indent(item, 1) + [">"]


def _fx_chain(name: str, ch: ChannelParams, notes: list[str], platform: str) -> list[str]:
    fx: list[str] = []
    if ch.eq:
        state = reaeq_state(reaeq_bands(ch.eq, notes, name))
        fx += _fx(name, "ReaEQ", vst_lines(_REAEQ_VST.format(suffix=PLUGIN_SUFFIXES[platform]),
                                           vst_header(_REAEQ_ID, len(state), 2, True), state))
    if ch.compressor is not None and ch.compressor != CompressorParams():
        values = _map_level(ch, "channel", "reacomp", MapContext(name, notes))
        state = reacomp_raw_state({**values, **_REACOMP_FIXED})
        fx += _fx(name, "ReaComp", vst_lines(_REACOMP_VST.format(suffix=PLUGIN_SUFFIXES[platform]),
                                             vst_header(_REACOMP_ID, len(state), 4, False), state))
    return fx


def _fx(track: str, plugin: str, block: list[str]) -> list[str]:
    return ["BYPASS 0 0 0", *block, "FLOATPOS 0 0 0 0", f"FXID {_guid(plugin, track)}", "WAK 0 0"]


def _item(name: str, media_path: str, length_s: float) -> list[str]:
    source = "FLAC" if media_path.lower().endswith(".flac") else "WAVE"
    return ["<ITEM", "  POSITION 0", f"  LENGTH {_fmt(length_s)}", "  LOOP 0",
            f"  NAME {_quote(Path(media_path).name)}", f"  IGUID {_guid('item', name)}",
            f"  <SOURCE {source}", f"    FILE {_quote(media_path)}", "  >", ">"]


def _reverb_track(sends: list[tuple[int, float]], volpan: Mapping[str | int, float]) -> list[str]:
    """The track "Reverb": its volume, and ``sends`` as ``(source track index, linear send volume)``."""
    guid = _guid("track", "reverb bus")
    lines = [f"<TRACK {guid}",
             f"  NAME {_quote('Reverb')}",
             f"  VOLPAN {_fmt(volpan['volume'])} 0 -1 -1 1",
             "  MUTESOLO 0 0 0",
             "  NCHAN 2",
             f"  TRACKID {guid}",
             "  MAINSEND 1 0"]
    lines += [f"  AUXRECV {i} 0 {_fmt(volume)} 0 0 0 0 0 0 -1:U 0 -1 ''" for i, volume in sends]
    return lines + [">"]


def _notes_block(params: ConsoleParams, master_db: float, notes: list[str], has_reverb: bool) -> list[str]:
    m = params.master
    text = [f"Exported by mixdown from settings of method '{params.method}'.",
            "Tracks: fader, pan (-3 dB pan law), mute, ReaEQ (EQ bands), ReaComp (compressor).",
            f"Master volume {master_db:+.2f} dB = mixdown's loudness normalisation"
            + (f" to {m.target_lufs:g} LUFS" if m.target_lufs is not None else " (off)")
            + f" plus trim {m.gain_db:+.2f} dB."]
    ctx = MapContext("master", notes)
    _map_level(m, "master", None, ctx)
    phrases: dict[str, list[str]] = {}
    for spec, phrase in ctx.unmapped:
        phrases.setdefault(spec.group, []).append(phrase)
    text += [f"Not mapped: {phrase}." for phrase in phrases.pop("", [])]
    reverb = phrases.pop("reverb", [])
    if reverb and has_reverb:  # without sends the reverb is silent: nothing is missing
        text.append(f"Not mapped: the reverb ({', '.join(reverb)}): insert a reverb on the track 'Reverb' "
                    "(sends and return level are set).")
    text += [f"Not mapped: master {group}: {', '.join(group_phrases)}." for group, group_phrases in phrases.items()]
    text += notes
    return ["<NOTES 0 2", *[f"  |{line}" for line in text], ">"]


def _indent(lines: list[str], levels: int) -> list[str]:
    pad = "  " * levels
    return [pad + line for line in lines]


def _guid(kind: str, name: str) -> str:
    """A GUID derived from ``kind`` and ``name``: the same settings give the same file."""
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"mixdown:{kind}:{name}")).upper() + "}"


def _quote(text: str) -> str:
    """A string token as REAPER writes them: quoted with a character the text does not contain."""
    for quote in ('"', "'", "`"):
        if quote not in text:
            return f"{quote}{text}{quote}"
    return '"' + text.replace('"', "'") + '"'


def _db_to_linear(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def _fmt(value: float) -> str:
    """Numbers as REAPER writes them: plain decimals, enough digits to round-trip a float."""
    text = np.format_float_positional(float(value), precision=14, trim="-")
    return "0" if text in ("-0", "-0.") else text
