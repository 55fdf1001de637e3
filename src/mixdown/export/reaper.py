"""REAPER project export: one track per stem with the mix's console settings.

`reaper_project` writes a REAPER project (``.RPP``, REAPER's plain-text format) so that an
engineer opens the session and carries on. Each stem becomes a track named after it,
holding one media item that points at the stem file (``<ITEM>`` / ``<SOURCE
WAVE|FLAC>``), from 0 s; ``mute`` becomes the track's ``MUTESOLO`` and each EQ band's type
its ReaEQ band type (`REAEQ_BAND_CODES`: peak -> band, low/high shelf -> low/high shelf,
highpass/lowpass -> high/low pass).

Every numeric setting is mapped by one table, `REAPER_FIELDS`, keyed by the schema's
tensor names (`mixdown.params.SCHEMA`; a test checks it covers every field): for each,
what holds it in REAPER and the converter that writes it, and what about it REAPER does
not reproduce exactly (``inexact``). In short:

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
                          octaves by the Audio EQ Cookbook's digital relation
                          ``1/Q = 2 sinh(ln2/2 BW w0/sin w0)`` (`q_to_bandwidth_oct`), so
                          the band's biquad is the console's exactly, for every band type
                          (the high-pass included) where ReaEQ forms its biquads from the
                          bandwidth as the Cookbook does, at the project's sample rate
compressor                ReaComp (stock VST) after ReaEQ: threshold, ratio, attack,
                          release and knee set; makeup on ReaComp's wet gain (at most
                          +6 dB: more is clamped, noted); RMS size 0 (peak detection, as
                          mixdown's compressor). Ballistics differ in detail (mixdown
                          smooths the gain reduction, Giannoulis et al. 2012), so the
                          gain reduction is close, not identical
reverb send               a post-fader send (``AUXRECV`` mode 0) at the send level to a
                          track "Reverb" whose volume is the return level
reverb decay, pre-delay   the console's impulse response itself
                          (`reverb_impulse_response`, the very samples the console
                          convolves with) written as a WAV next to the project
                          (`ReaperProject.write`) and loaded by ReaVerb (stock VST, its
                          "File" generator) on the track "Reverb"
master loudness + trim    the master volume (``MASTER_VOLUME``) is set to the gain
                          mixdown's loudness normalisation applied to this mix (measured
                          by rendering it, `master_gain_db`) plus the master trim
true-peak limiter         ReaLimit (stock VST) on the master (``<MASTERFXLIST>``) in true
                          peak mode, threshold and ceiling both at the ceiling (ReaLimit
                          maps its threshold to its ceiling, so the gain below it is
                          0 dB); its release and true-peak estimate are REAPER's own
========================  ===============================================================

The project notes (``<NOTES>``, in REAPER's Project Notes window) list these facts, every
setting without an exact REAPER equivalent, every clamped value, and one machine-readable
line with the settings REAPER cannot show (`reaper_settings`), from which
`mixdown.export.rpp.params_from_rpp` reads a project back.

Names are sanitised: control characters (a newline in a file name would start a new
line of the project) are replaced by spaces, and a name holding all three of REAPER's
quote characters loses its double quotes; a media path with control characters is
refused (it cannot be written and still name the file).

Plug-in state. REAPER stores a VST's state in the project as base64 blocks: a header
(the plug-in's id, its pin mappings, the size of the state), the state, and a program
trailer. For ReaEQ the state is the plug-in's own chunk (version 33, band count, then per
band: type code, enabled, frequency in Hz, linear gain and bandwidth in octaves as
little-endian doubles, a flag byte; then the global gain); for ReaComp it is its
parameter values as 32-bit floats in parameter order; for ReaLimit its own chunk
(version 3, a flags word whose bit 0 is true-peak mode, threshold and ceiling in dB as
doubles, then fields left as REAPER saves a fresh instance); for ReaVerb a global block
as REAPER 7 saves a fresh instance followed by tagged generator blocks (a NUL-terminated
tag, a 32-bit size, the payload), here one ``FILELDR`` block (4 zero bytes and the
NUL-terminated file path). The layouts follow what REAPER writes (field meanings from
public REAPER-saved projects and public code that edits them); `tests/test_export.py`
checks that the writer reproduces, byte for byte, ReaEQ, ReaComp and ReaLimit chunks
REAPER itself saved. The ReaVerb generator block and the ReaEQ bandwidth relation are
inferred, not reproduced from a saved chunk, and nothing here has been opened in REAPER
(REAPER is not available on the build machines): the notes say how to check them.
REAPER finds a plug-in by its file name, which differs by system (``reaeq.dll``,
``reaeq.vst.dylib``, ``reaeq.vst.so``): ``platform`` picks the names, by default those of
the system running the export.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mixdown.audio import atomic_write_text, probe_audio, write_audio
from mixdown.console import ProgressCallback, render
from mixdown.dsp.loudness import loudness_lufs
from mixdown.dsp.reverb import impulse_response
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

REVERB_TRACK = "Reverb"
SETTINGS_PREFIX = "mixdown settings: "
"""Starts the project-notes line with the settings REAPER cannot show (`reaper_settings`, JSON)."""

_REAEQ_VST = 'VST "VST: ReaEQ (Cockos)" reaeq{suffix} 0 "" 1919247729<56535472656571726561657100000000> ""'
_REACOMP_VST = 'VST "VST: ReaComp (Cockos)" reacomp{suffix} 0 "" 1919247213<5653547265636D726561636F6D700000> ""'
_REALIMIT_VST = 'VST "VST: ReaLimit (Cockos)" realimit{suffix} 0 "" 1919708532<565354726C6D747265616C696D697400> ""'
_REAVERB_VST = 'VST "VST: ReaVerb (Cockos)" reaverb{suffix} 0 "" 1919252066<56535472657662726561766572620000> ""'
_REAEQ_ID = b"qeer"  # the plug-in's four-character id 'reeq', little-endian
_REACOMP_ID = b"mcer"  # 'recm'
_REALIMIT_ID = b"tmlr"  # 'rlmt'
_REAVERB_ID = b"bver"  # 'revb'
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

# ReaLimit's chunk as REAPER saves a fresh instance: version 3, flags, threshold and ceiling
# (dB, doubles), then fields the export leaves as they are.
_REALIMIT_VERSION = 3
_REALIMIT_TRUE_PEAK = 1  # bit 0 of the flags word
_REALIMIT_TAIL = bytes.fromhex("02000000" "00000000" "0000000000000000" "3f9f76e310c3c63f")
# ReaVerb's global block as REAPER 7 saves a fresh instance (wet/dry and options), before its generators.
_REAVERB_GLOBALS = base64.b64decode("AAAQwcybgD4AAIA/AAAAAAAAgD8AAIA/AAAAPwAAgD8AAIA/AAAAQA==")

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


# -- the mapping table -----------------------------------------------------------------------------

Target = Literal["track", "reaeq", "reacomp", "send", "reverb_track", "reverb_ir", "master", "realimit"]


@dataclass
class MapContext:
    """What a converter needs besides the value.

    Attributes:
        where: whose setting it is, as the project notes name it: ``"bass"``,
            ``"bass: EQ band 3"``, ``"master"``.
        notes: where converters record values REAPER cannot hold (and how they were changed).
        stereo: the stem is stereo (its fader gets `STEREO_BALANCE_DB`).
        band_type: the EQ band's type, for band fields.
        freq_hz: the EQ band's frequency as ReaEQ gets it, for its bandwidth.
        sample_rate: the project's sample rate, for the bandwidth.
        unmapped: ``(spec, phrase)`` of the settings met that have no REAPER equivalent.
    """

    where: str
    notes: list[str]
    stereo: bool = False
    band_type: str = ""
    freq_hz: float = 1000.0
    sample_rate: int = 44100
    unmapped: list[tuple[ParamSpec, str]] = field(default_factory=list)


Converter = Callable[[float, MapContext], float]
"""mixdown value (the schema's unit) -> the number REAPER stores."""


@dataclass(frozen=True)
class ReaperField:
    """How one `mixdown.params.SCHEMA` field reaches a REAPER project.

    Three kinds of entry:

    * written: ``convert`` turns the value into the number stored at ``slot`` of ``target``;
    * folded: ``target`` set, ``convert`` None: the field has no number of its own in
      REAPER but enters another one or a file, as ``how`` says (the master loudness
      target, the reverb's decay in its impulse response);
    * not mapped: ``target`` None: REAPER has no equivalent, ``how`` says why, and the
      project notes give the setting as ``note`` (``{value}`` is replaced by it).

    Attributes:
        target: what holds it: ``"track"`` (the stem's track, ``VOLPAN``), ``"reaeq"``
            (its band of the track's ReaEQ), ``"reacomp"`` (the track's ReaComp),
            ``"send"`` (the track's send to the track "Reverb"), ``"reverb_track"``,
            ``"reverb_ir"`` (the impulse response file ReaVerb loads), ``"master"``
            (``MASTER_VOLUME``), ``"realimit"`` (the master's ReaLimit), or None.
        how: what is written and how, or why nothing is.
        slot: the value's place in the target: ``"volume"`` / ``"pan"`` (``VOLPAN`` and
            ``AUXRECV`` fields), a `ReaEQBand` field, a ReaComp parameter index.
        convert: the converter of a written field (may clamp and note, see `MapContext`).
        note: for a field not mapped, the phrase the project notes use.
        inexact: what REAPER does differently with the setting ("" when it is exact); the
            project notes and the export summary list these.
    """

    target: Target | None
    how: str
    slot: str | int | None = None
    convert: Converter | None = None
    note: str = ""
    inexact: str = ""


def _fader(gain_db: float, ctx: MapContext) -> float:
    gain_db = gain_db + (STEREO_BALANCE_DB if ctx.stereo else 0.0)
    if gain_db > MAX_TRACK_GAIN_DB:
        ctx.notes.append(f"{ctx.where}: fader {gain_db:+.2f} dB set to +{MAX_TRACK_GAIN_DB:g} dB (REAPER's maximum)")
        gain_db = MAX_TRACK_GAIN_DB
    return _db_to_linear(gain_db)


def _reaeq_freq(freq_hz: float, ctx: MapContext) -> float:
    freq = reaeq_freq_hz(freq_hz)
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


_REVERB_IR = ("the console's impulse response (decaying filtered noise of this decay and pre-delay) written as a "
              "WAV next to the project and loaded by ReaVerb on the track 'Reverb'")
_COMPRESSOR_INEXACT = ("ReaComp's attack/release ballistics differ from mixdown's (which smooths the gain reduction, "
                       "Giannoulis et al. 2012): the gain reduction is close, not identical")

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
    "eq_q": ReaperField("reaeq", "ReaEQ bandwidth in octaves by the Audio EQ Cookbook's digital relation "
                        "1/Q = 2 sinh(ln2/2 BW w0/sin w0) at the band's frequency and the project's rate (the "
                        "band's biquad is the console's where ReaEQ forms it from the bandwidth as the Cookbook "
                        "does, the high-pass included)", "bandwidth_oct",
                        lambda q, ctx: q_to_bandwidth_oct(q, ctx.freq_hz, ctx.sample_rate),
                        inexact="ReaEQ's use of the bandwidth is inferred (the Cookbook's), not read from REAPER; "
                                "the band shapes hold at the project's sample rate"),
    "threshold_db": ReaperField("reacomp", "ReaComp threshold, linear amplitude", _REACOMP_THRESHOLD,
                                lambda db, ctx: _db_to_linear(db), inexact=_COMPRESSOR_INEXACT),
    "ratio": ReaperField("reacomp", "ReaComp ratio, stored as (ratio - 1) / 99", _REACOMP_RATIO,
                         lambda ratio, ctx: (ratio - 1.0) / 99.0),
    "attack_ms": ReaperField("reacomp", "ReaComp attack, stored as ms / 500", _REACOMP_ATTACK,
                             lambda ms, ctx: ms / 500.0, inexact=_COMPRESSOR_INEXACT),
    "release_ms": ReaperField("reacomp", "ReaComp release, stored as ms / 5000", _REACOMP_RELEASE,
                              lambda ms, ctx: ms / 5000.0, inexact=_COMPRESSOR_INEXACT),
    "knee_db": ReaperField("reacomp", "ReaComp knee, stored as dB / 24", _REACOMP_KNEE, lambda db, ctx: db / 24.0),
    "makeup_db": ReaperField("reacomp", "ReaComp wet gain, linear; above ReaComp's +6 dB maximum clamped (noted)",
                             _REACOMP_WET, _reacomp_wet),
    "master_gain_db": ReaperField("master", "folded into MASTER_VOLUME: the trim plus the loudness "
                                  "normalisation's gain (`master_gain_db`)", "volume"),
    "target_lufs": ReaperField("master", "folded into MASTER_VOLUME: REAPER has no loudness normaliser, so "
                               "`master_gain_db` renders the mix, measures it (BS.1770) and adds the gain that "
                               "takes it to the target to the trim", "volume",
                               inexact="REAPER has no loudness normaliser: the master volume holds the gain measured "
                                       "on this mix, so edits in REAPER are not re-normalised"),
    "ceiling_dbtp": ReaperField("realimit", "ReaLimit on the master in true-peak mode, threshold and ceiling at the "
                                "ceiling in dB", "ceiling", lambda db, ctx: float(db),
                                inexact="ReaLimit's release and true-peak estimate are REAPER's own (mixdown's limiter "
                                        "looks 5 ms ahead and oversamples 4x): peaks stay under the ceiling alike, the "
                                        "gain reduction differs in detail"),
    "reverb_decay_s": ReaperField("reverb_ir", _REVERB_IR, "decay_s",
                                  inexact="ReaVerb's wet and dry start at the values REAPER gives a new ReaVerb: set "
                                          "Wet 0 dB and Dry off (-inf) so the track 'Reverb' returns the reverb alone"),
    "reverb_predelay_ms": ReaperField("reverb_ir", _REVERB_IR, "predelay_ms"),
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
    """A written project: its text, what did not map exactly, and the reverb's impulse response.

    Attributes:
        text: the ``.RPP`` text.
        notes: clamped values and settings that did not map exactly (also in the project's notes).
        inexact: the settings of this mix that REAPER does not reproduce exactly, one line
            each (also in the project's notes): the export summary.
        reverb_ir: float32 ``(2, taps)`` impulse response ReaVerb loads, or None when no
            channel sends to the reverb.
        reverb_ir_path: the file name the project gives it, relative to the project's folder.
        sample_rate: of the impulse response.
    """

    text: str
    notes: list[str]
    inexact: list[str] = field(default_factory=list)
    reverb_ir: np.ndarray | None = None
    reverb_ir_path: str = ""
    sample_rate: int = 44100

    def write(self, path: str | Path) -> list[Path]:
        """Write the project to ``path`` and the impulse response next to it (both atomically).

        Returns:
            The files written: the project, then the impulse response if any.
        """
        path = Path(path)
        written = []
        if self.reverb_ir is not None:
            ir_path = path.parent / self.reverb_ir_path
            write_audio(ir_path, self.reverb_ir, self.sample_rate, subtype="FLOAT")
            written.append(ir_path)
        atomic_write_text(path, self.text)
        return [path, *written]


def q_to_bandwidth_oct(q: float, freq_hz: float | None = None, sample_rate: int | None = None) -> float:
    """ReaEQ bandwidth in octaves of a band with quality ``q`` at ``freq_hz``.

    The Audio EQ Cookbook (Bristow-Johnson) forms a biquad's ``alpha`` from the quality as
    ``sin(w0) / (2 Q)`` and from a bandwidth in octaves as
    ``sin(w0) sinh(ln2/2 BW w0/sin(w0))``, ``w0 = 2 pi f / fs`` (the bilinear transform's
    bandwidth warping compensated). Equating the two gives the bandwidth whose biquad is
    the console's exactly: ``BW = 2/ln2 asinh(1/(2Q)) sin(w0)/w0``. The same ``alpha``
    enters every band type's coefficients (peak, shelves, pass filters), so the relation
    holds for each. Without a frequency (or far under Nyquist) it is the analogue relation
    ``1/Q = 2 sinh(ln2/2 BW)``.
    """
    analogue = 2.0 / math.log(2.0) * math.asinh(1.0 / (2.0 * q))
    if freq_hz is None or sample_rate is None:
        return analogue
    w0 = 2.0 * math.pi * freq_hz / sample_rate
    return analogue * math.sin(w0) / w0


def bandwidth_oct_to_q(bandwidth_oct: float, freq_hz: float | None = None, sample_rate: int | None = None) -> float:
    """The inverse of `q_to_bandwidth_oct`."""
    warp = 1.0
    if freq_hz is not None and sample_rate is not None:
        w0 = 2.0 * math.pi * freq_hz / sample_rate
        warp = w0 / math.sin(w0)
    return 1.0 / (2.0 * math.sinh(math.log(2.0) / 2.0 * bandwidth_oct * warp))


def reaeq_freq_hz(freq_hz: float) -> float:
    """The frequency ReaEQ can hold (its 20..24000 Hz range)."""
    return min(max(freq_hz, REAEQ_MIN_FREQ_HZ), REAEQ_MAX_FREQ_HZ)


def reaeq_bands(bands: list[EQBand], notes: list[str], where: str, sample_rate: int = 44100) -> list[ReaEQBand]:
    """mixdown EQ bands as ReaEQ bands (`REAPER_FIELDS`); clamped values are added to ``notes``."""
    out = []
    for k, band in enumerate(bands):
        ctx = MapContext(f"{where}: EQ band {k + 1}", notes, band_type=band.type,
                         freq_hz=reaeq_freq_hz(band.freq_hz), sample_rate=sample_rate)
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


def realimit_state(threshold_db: float, ceiling_db: float, true_peak: bool = True) -> bytes:
    """ReaLimit's own state chunk: threshold and ceiling in dB, true-peak mode on or off."""
    flags = _REALIMIT_TRUE_PEAK if true_peak else 0
    return struct.pack("<2i2d", _REALIMIT_VERSION, flags, threshold_db, ceiling_db) + _REALIMIT_TAIL


def reaverb_state(ir_path: str) -> bytes:
    """ReaVerb's state: REAPER 7's fresh global block and one file generator loading ``ir_path``."""
    path = ir_path.encode("utf-8") + b"\x00"
    return _REAVERB_GLOBALS + b"FILELDR\x00" + struct.pack("<I", 4 + len(path)) + b"\x00" * 4 + path


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


def reverb_impulse_response(decay_s: float, predelay_ms: float, sample_rate: int) -> np.ndarray:
    """The console's reverb impulse response (`mixdown.dsp.reverb.impulse_response`, float32 as the
    console computes it), unit energy per side, without the return level: ``(2, taps)``."""
    with torch.no_grad():
        ir = impulse_response(torch.tensor(decay_s, dtype=torch.float32), predelay_ms, sample_rate)
    return ir.numpy().astype(np.float32)


def reverb_ir_filename(decay_s: float, predelay_ms: float, sample_rate: int) -> str:
    """The impulse response's file name: its settings, so projects of one folder share equal files only."""
    return f"mixdown-reverb-{decay_s:g}s-{predelay_ms:g}ms-{sample_rate}Hz.wav"


def reaper_settings(params: ConsoleParams) -> dict[str, Any]:
    """What the project notes keep for `mixdown.export.rpp.params_from_rpp`: settings REAPER
    shows nowhere (the reverb's decay and pre-delay, the loudness target, the method)."""
    m = params.master
    return {"method": params.method, "target_lufs": m.target_lufs, "ceiling_dbtp": m.ceiling_dbtp,
            "reverb": asdict(m.reverb), "instruments": {ch.name: ch.instrument for ch in params.channels}}


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
        The project text, the notes on what did not map exactly and the reverb's impulse
        response to write next to it (`ReaperProject.write`).

    Raises:
        MixdownError: an unknown platform, a stem without a file, or a media path with
            control characters.
    """
    if platform not in PLUGIN_SUFFIXES:
        raise MixdownError(f"platform {platform!r} is not one of {', '.join(PLUGIN_SUFFIXES)}")
    suffix = PLUGIN_SUFFIXES[platform]
    rate = multitrack.sample_rate
    ordered = params.ordered_like(multitrack.names)
    notes: list[str] = []
    tracks = []
    sends = []
    for i, (stem, ch) in enumerate(zip(multitrack.stems, ordered.channels, strict=True)):
        if stem.path is None:
            raise MixdownError(f"stem {stem.name!r} has no file; a REAPER project needs the stem files")
        where = clean_name(stem.name)
        item = _item(stem.name, _media_path(media_paths[stem.name]), probe_audio(stem.path).duration_s)
        # Mapped in signal-flow order (EQ, compressor, fader and pan, send), which orders the notes.
        fx = _fx_chain(where, ch, notes, suffix, rate)
        ctx = MapContext(where, notes, stereo=stem.is_stereo)
        volpan = _map_level(ch, "channel", "track", ctx)
        send = _map_level(ch, "channel", "send", ctx)
        _map_level(ch, "channel", None, ctx)
        notes += [f"{where}: not mapped: {phrase}" for _, phrase in ctx.unmapped]
        tracks.append(_track(stem.name, volpan, ch.mute, item, fx))
        if send:
            sends.append((i, send["volume"]))
    master = ordered.master
    reverb_ir, ir_path = None, ""
    if sends:
        ir_path = reverb_ir_filename(master.reverb.decay_s, master.reverb.predelay_ms, rate)
        reverb_ir = reverb_impulse_response(master.reverb.decay_s, master.reverb.predelay_ms, rate)
        reverb_fx = _fx(REVERB_TRACK, "ReaVerb", _vst(_REAVERB_VST, suffix, _REAVERB_ID, reaverb_state(ir_path)))
        tracks.append(_reverb_track(sends, _map_level(master, "master", "reverb_track", MapContext("master", notes)),
                                    reverb_fx))
    limiter = _map_level(master, "master", "realimit", MapContext("master", notes))
    master_fx = [] if not limiter else _fx("master", "ReaLimit", _vst(
        _REALIMIT_VST, suffix, _REALIMIT_ID, realimit_state(limiter["ceiling"], limiter["ceiling"])))
    inexact = inexact_settings(ordered, bool(sends))
    lines = ['<REAPER_PROJECT 0.1 "7.0/mixdown" 0',
             f"  SAMPLERATE {rate} 0 0",
             f"  MASTER_VOLUME {_fmt(_db_to_linear(master_db))} 0 -1 -1 1",
             f"  MASTER_FX {int(bool(master_fx))}",
             *_indent(["<MASTERFXLIST", "  SHOW 0", "  LASTSEL 0", "  DOCKED 0", *_indent(master_fx, 1), ">"], 1),
             *_indent(_notes_block(ordered, master_db, notes, inexact, ir_path), 1),
             *[line for track in tracks for line in _indent(track, 1)],
             ">"]
    return ReaperProject("\n".join(lines) + "\n", notes, inexact, reverb_ir, ir_path, rate)


def inexact_settings(params: ConsoleParams, has_reverb: bool = True) -> list[str]:
    """One line per setting of ``params`` that REAPER does not reproduce exactly (`ReaperField.inexact`)."""
    used = set()
    for spec in SCHEMA:
        if spec.level == "master":
            holders = [params.master]
        elif spec.level == "channel":
            holders = params.channels
        else:
            holders = [band for ch in params.channels for band in ch.eq]
        if spec.group == "reverb" and not has_reverb:
            continue
        if any(_value(holder, spec) is not None for holder in holders):
            used.add(spec.tensor)
    lines: list[str] = []
    for spec in SCHEMA:
        entry = REAPER_FIELDS[spec.tensor]
        if spec.tensor in used and entry.inexact and entry.inexact not in lines:
            lines.append(entry.inexact)
    return lines


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


def clean_name(text: str) -> str:
    """``text`` made safe for one RPP line: control characters (newlines, tabs, ...) become spaces."""
    return _CONTROL.sub(" ", text).strip() or "track"


def _media_path(path: str) -> str:
    if _CONTROL.search(path):
        raise MixdownError(f"{path!r}: a file path with control characters (a newline?) cannot be written to a "
                           "REAPER project; rename the file")
    return path


def _track(name: str, volpan: Mapping[str | int, float], mute: bool, item: list[str], fx: list[str]) -> list[str]:
    guid = _guid("track", name)
    lines = [f"<TRACK {guid}",
             f"  NAME {_quote(clean_name(name))}",
             f"  VOLPAN {_fmt(volpan['volume'])} {_fmt(volpan['pan'])} {_fmt(PAN_LAW_LINEAR)} -1 1",
             f"  MUTESOLO {int(mute)} 0 0",
             "  NCHAN 2",
             f"  TRACKID {guid}",
             "  MAINSEND 1 0"]
    return lines + _fx_chain_block(fx) + _indent(item, 1) + [">"]


def _fx_chain_block(fx: list[str]) -> list[str]:
    return _indent(["<FXCHAIN", "  SHOW 0", "  LASTSEL 0", "  DOCKED 0", *_indent(fx, 1), ">"], 1) if fx else []


def _fx_chain(where: str, ch: ChannelParams, notes: list[str], suffix: str, sample_rate: int) -> list[str]:
    fx: list[str] = []
    if ch.eq:
        fx += _fx(where, "ReaEQ", _vst(_REAEQ_VST, suffix, _REAEQ_ID,
                                       reaeq_state(reaeq_bands(ch.eq, notes, where, sample_rate))))
    if ch.compressor is not None and ch.compressor != CompressorParams():
        values = _map_level(ch, "channel", "reacomp", MapContext(where, notes))
        state = reacomp_raw_state({**values, **_REACOMP_FIXED})
        fx += _fx(where, "ReaComp", vst_lines(_REACOMP_VST.format(suffix=suffix),
                                              vst_header(_REACOMP_ID, len(state), 4, False), state))
    return fx


def _vst(line: str, suffix: str, plugin_id: bytes, state: bytes) -> list[str]:
    """A stereo plug-in's ``<VST>`` block whose state is its own chunk."""
    return vst_lines(line.format(suffix=suffix), vst_header(plugin_id, len(state), 2, True), state)


def _fx(track: str, plugin: str, block: list[str]) -> list[str]:
    return ["BYPASS 0 0 0", *block, "FLOATPOS 0 0 0 0", f"FXID {_guid(plugin, track)}", "WAK 0 0"]


def _item(name: str, media_path: str, length_s: float) -> list[str]:
    source = "FLAC" if media_path.lower().endswith(".flac") else "WAVE"
    return ["<ITEM", "  POSITION 0", f"  LENGTH {_fmt(length_s)}", "  LOOP 0",
            f"  NAME {_quote(clean_name(Path(media_path).name))}", f"  IGUID {_guid('item', name)}",
            f"  <SOURCE {source}", f"    FILE {_quote(media_path)}", "  >", ">"]


def _reverb_track(sends: list[tuple[int, float]], volpan: Mapping[str | int, float], fx: list[str]) -> list[str]:
    """The track "Reverb": its volume, ReaVerb, and ``sends`` as ``(source track index, linear send volume)``."""
    guid = _guid("track", "reverb bus")
    lines = [f"<TRACK {guid}",
             f"  NAME {_quote(REVERB_TRACK)}",
             f"  VOLPAN {_fmt(volpan['volume'])} 0 -1 -1 1",
             "  MUTESOLO 0 0 0",
             "  NCHAN 2",
             f"  TRACKID {guid}",
             "  MAINSEND 1 0"]
    lines += [f"  AUXRECV {i} 0 {_fmt(volume)} 0 0 0 0 0 0 -1:U 0 -1 ''" for i, volume in sends]
    return lines + _fx_chain_block(fx) + [">"]


def _notes_block(params: ConsoleParams, master_db: float, notes: list[str], inexact: list[str],
                 ir_path: str) -> list[str]:
    m = params.master
    text = [f"Exported by mixdown from settings of method '{params.method}'.",
            "Tracks: fader, pan (-3 dB pan law), mute, ReaEQ (EQ bands), ReaComp (compressor).",
            f"Master volume {master_db:+.2f} dB = mixdown's loudness normalisation"
            + (f" to {m.target_lufs:g} LUFS" if m.target_lufs is not None else " (off)")
            + f" plus trim {m.gain_db:+.2f} dB."]
    if m.ceiling_dbtp is not None:
        text.append(f"Master: ReaLimit, true peak, threshold and ceiling {m.ceiling_dbtp:g} dB "
                    f"(mixdown's true-peak limiter at {m.ceiling_dbtp:g} dBTP).")
    if ir_path:
        text.append(f"Track 'Reverb': ReaVerb loading {ir_path} (mixdown's reverb, decay {m.reverb.decay_s:g} s, "
                    f"pre-delay {m.reverb.predelay_ms:g} ms); if ReaVerb opens empty, add it with ReaVerb's "
                    "'Add' > 'File'.")
    ctx = MapContext("master", notes)
    _map_level(m, "master", None, ctx)
    text += [f"Not mapped: {phrase}." for _, phrase in ctx.unmapped]
    text += [f"No exact REAPER equivalent: {line}." for line in inexact]
    text += notes
    text.append(SETTINGS_PREFIX + json.dumps(reaper_settings(params), separators=(",", ":")))
    return ["<NOTES 0 2", *[f"  |{_CONTROL.sub(' ', line)}" for line in text], ">"]


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


def reaper_summary(project: ReaperProject) -> str:
    """The export summary as text: what was clamped and what REAPER does not reproduce exactly."""
    lines = ["mixdown REAPER export: open project.RPP (the stems are in stems/"
             + (f", the reverb's impulse response is {project.reverb_ir_path}" if project.reverb_ir_path else "")
             + ")."]
    lines += [f"note: {note}" for note in project.notes]
    lines += [f"no exact REAPER equivalent: {line}" for line in project.inexact]
    return "\n".join(lines) + "\n"
