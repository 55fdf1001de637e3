"""Reading a REAPER project back: settings from an ``.RPP`` that `mixdown.export.reaper` wrote.

`parse_rpp` reads REAPER's plain-text format into nested `RppBlock`s (``<TAG args`` opens
a block, ``>`` closes it; other lines are ``KEY args`` with strings quoted by ``"``, ``'``
or a backtick). `params_from_rpp` turns a project written by `reaper_project` (and maybe
edited in REAPER since) into `ConsoleParams` for its stems, reading what REAPER holds
first, so edits made in REAPER come back:

* per track: fader and pan (``VOLPAN``, the stereo offset of the export removed), mute
  (``MUTESOLO``), EQ bands from ReaEQ's state (bandwidth back to Q by
  `mixdown.export.reaper.bandwidth_oct_to_q`), the compressor from ReaComp's, the reverb
  send from the track "Reverb"'s ``AUXRECV`` lines;
* the master: the reverb return from the track "Reverb"'s volume, the limiter's ceiling
  from the master's ReaLimit; REAPER has no loudness normaliser, so the master volume
  becomes the trim with normalisation off (the mix sounds as the project does);
* from the notes' settings line (`mixdown.export.reaper.reaper_settings`): what REAPER
  shows nowhere, the reverb's decay and pre-delay and the instrument classes.

Each track's media item names its stem file (``<SOURCE> FILE``); `rpp_media` lists them.
"""

from __future__ import annotations

import base64
import json
import math
import shlex
import struct
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from mixdown.errors import ParamsError
from mixdown.export.reaper import (
    REAEQ_BAND_CODES,
    REVERB_TRACK,
    SETTINGS_PREFIX,
    STEREO_BALANCE_DB,
    bandwidth_oct_to_q,
)
from mixdown.params import (
    SPECS,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
    ReverbParams,
)

_BAND_TYPES = {code: name for name, code in REAEQ_BAND_CODES.items()}


@dataclass
class RppBlock:
    """One ``<TAG ...>`` block of an RPP file.

    Attributes:
        tag: ``REAPER_PROJECT``, ``TRACK``, ``VST``, ...
        args: the tag line's tokens after the tag.
        lines: the block's ``KEY args`` lines, tokenised (notes lines ``|...`` kept whole).
        raw: the same lines as written (base64 plug-in states).
        children: nested blocks in order.
    """

    tag: str
    args: list[str]
    lines: list[list[str]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    children: list[RppBlock] = field(default_factory=list)

    def first(self, key: str, default: list[str] | None = None) -> list[str]:
        """The arguments of the first line ``key``."""
        for line in self.lines:
            if line and line[0] == key:
                return line[1:]
        if default is not None:
            return default
        raise ParamsError(f"RPP: {self.tag} block has no {key} line")

    def all(self, key: str) -> list[list[str]]:
        return [line[1:] for line in self.lines if line and line[0] == key]

    def blocks(self, tag: str) -> list[RppBlock]:
        return [child for child in self.children if child.tag == tag]


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.quotes = "\"'`"
    lexer.escape = ""
    lexer.commenters = ""
    return list(lexer)


def parse_rpp(text: str) -> RppBlock:
    """Parse RPP text into its root block.

    Raises:
        ParamsError: unbalanced blocks, text outside the root block, or no block at all.
    """
    stack: list[RppBlock] = []
    root = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            if line.startswith("<"):
                tokens = _tokens(line[1:])
                if not tokens:
                    raise ValueError("empty tag")
                block = RppBlock(tokens[0], tokens[1:])
                if stack:
                    stack[-1].children.append(block)
                elif root is not None:
                    raise ValueError("a second root block")
                else:
                    root = block
                stack.append(block)
            elif line == ">":
                if not stack:
                    raise ValueError("'>' closes no block")
                stack.pop()
            else:
                if not stack:
                    raise ValueError("a line outside the project block")
                stack[-1].raw.append(line)
                stack[-1].lines.append([line] if line.startswith("|") else _tokens(line))
        except ValueError as exc:
            raise ParamsError(f"RPP line {number}: {exc}") from None
    if root is None or stack:
        raise ParamsError("RPP: no project block" if root is None else f"RPP: block <{stack[-1].tag} is not closed")
    return root


def decode_vst(block: RppBlock) -> tuple[bytes, bytes]:
    """A ``<VST>`` block's header and state bytes (REAPER's base64 lines: header, state..., program)."""
    data = [base64.b64decode(line) for line in block.raw]
    if len(data) < 2:
        raise ParamsError(f"RPP: plug-in {block.args[:1]} has no state")
    header = data[0]
    size = struct.unpack_from("<I", header, len(header) - 12)[0]
    state = b"".join(data[1:])[:size]
    return header, state


def track_media(track: RppBlock) -> str:
    """The media file path (as written) of a track's first item, "" when it has none."""
    for item in track.blocks("ITEM"):
        for source in item.blocks("SOURCE"):
            path = source.first("FILE", [""])[0]
            if path:
                return path
    return ""


def rpp_media(project: RppBlock) -> dict[str, str]:
    """``{track name: media file path as written}`` of the tracks with an item."""
    return {track.first("NAME", [""])[0]: track_media(track) for track in project.blocks("TRACK") if track_media(track)}


def media_stem(path: str) -> str:
    """The stem name of a media path (Windows or POSIX separators)."""
    return (PureWindowsPath(path) if "\\" in path else PurePosixPath(path)).stem


def params_from_rpp(text: str, stems: dict[str, bool], sample_rate: int) -> ConsoleParams:
    """Console settings for ``stems`` from a project `mixdown.export.reaper` wrote.

    Args:
        text: the ``.RPP`` text.
        stems: ``{stem name: is stereo}`` of the stems the session plays; a track is matched
            to a stem by its media file's name, else by its own name.
        sample_rate: the stems' rate (ReaEQ's bandwidths are converted at it).

    Returns:
        Settings for exactly ``stems`` (stems no track names get unity faders), method ``reaper``.

    Raises:
        ParamsError: not an RPP, or values outside the schema's ranges.
    """
    project = parse_rpp(text)
    if project.tag != "REAPER_PROJECT":
        raise ParamsError(f"RPP: the root block is <{project.tag}, not <REAPER_PROJECT")
    settings = _settings_line(project)
    tracks = project.blocks("TRACK")
    reverb = next((t for t in tracks if t.first("NAME", [""])[0] == REVERB_TRACK and not t.blocks("ITEM")), None)
    sends = {}
    if reverb is not None:
        for args in reverb.all("AUXRECV"):
            if len(args) >= 3 and args[1] == "0":
                sends[int(args[0])] = _linear_to_db(float(args[2]))
    instruments = settings.get("instruments", {})
    channels: dict[str, ChannelParams] = {}
    for index, track in enumerate(tracks):
        if track is reverb:
            continue
        name = track.first("NAME", [""])[0]
        media = track_media(track)
        stem = media_stem(media) if media and media_stem(media) in stems else name
        if stem not in stems or stem in channels:
            continue
        volume, pan = (float(v) for v in track.first("VOLPAN", ["1", "0"])[:2])
        gain_db = _linear_to_db(volume) - (STEREO_BALANCE_DB if stems[stem] else 0.0)
        eq, compressor = _fx(track)
        channels[stem] = ChannelParams(
            name=stem, instrument=instruments.get(stem, "other"), gain_db=_clamp("gain_db", gain_db),
            pan=_clamp("pan", pan), mute=track.first("MUTESOLO", ["0"])[0] == "1",
            eq=[_band(band, sample_rate) for band in eq], compressor=compressor,
            reverb_send_db=None if index not in sends else _clamp("reverb_send_db", sends[index]))
    master_volume = float(project.first("MASTER_VOLUME", ["1"])[0])
    limiter = _master_ceiling(project)
    reverb_settings = settings.get("reverb", {})
    return_db = 0.0 if reverb is None else _linear_to_db(float(reverb.first("VOLPAN", ["1"])[0]))
    master = MasterParams(
        gain_db=_clamp("master_gain_db", _linear_to_db(master_volume)), target_lufs=None,
        ceiling_dbtp=None if limiter is None else _clamp("ceiling_dbtp", limiter),
        reverb=ReverbParams(decay_s=float(reverb_settings.get("decay_s", ReverbParams.decay_s)),
                            predelay_ms=float(reverb_settings.get("predelay_ms", ReverbParams.predelay_ms)),
                            return_db=_clamp("reverb_return_db", return_db)))
    params = ConsoleParams(channels=[channels.get(name) or ChannelParams(name=name) for name in stems],
                           master=master, sample_rate=sample_rate, method="reaper")
    params.validate()
    return params


def _settings_line(project: RppBlock) -> dict:
    for notes in project.blocks("NOTES"):
        for line in notes.raw:
            text = line.removeprefix("|")
            if text.startswith(SETTINGS_PREFIX):
                try:
                    data = json.loads(text[len(SETTINGS_PREFIX):])
                except ValueError:
                    return {}
                return data if isinstance(data, dict) else {}
    return {}


def _fx(track: RppBlock) -> tuple[list[tuple], CompressorParams | None]:
    """ReaEQ bands ``(code, enabled, freq, gain, bandwidth)`` and the ReaComp settings of a track."""
    bands: list[tuple] = []
    compressor = None
    for chain in track.blocks("FXCHAIN"):
        bypassed = [line for line in chain.lines if line and line[0] == "BYPASS"]
        for slot, vst in enumerate(chain.blocks("VST")):
            if slot < len(bypassed) and bypassed[slot][1:2] == ["1"]:
                continue
            name = vst.args[0] if vst.args else ""
            if name.startswith("VST: ReaEQ"):
                state = decode_vst(vst)[1]
                _, count = struct.unpack_from("<2i", state)
                bands += [struct.unpack_from("<2i3dB", state, 8 + 33 * k)[:5] for k in range(count)]
            elif name.startswith("VST: ReaComp"):
                state = decode_vst(vst)[1]
                v = struct.unpack(f"<{(len(state) - 8) // 4}f", state[8:])
                compressor = CompressorParams(
                    threshold_db=_clamp("threshold_db", _linear_to_db(v[0])), ratio=_clamp("ratio", 1.0 + 99.0 * v[1]),
                    attack_ms=_clamp("attack_ms", 500.0 * v[2]), release_ms=_clamp("release_ms", 5000.0 * v[3]),
                    knee_db=_clamp("knee_db", 24.0 * v[14]), makeup_db=_clamp("makeup_db", _linear_to_db(v[11])))
    return [b for b in bands if b[1] and b[0] in _BAND_TYPES], compressor


def _band(band: tuple, sample_rate: int) -> EQBand:
    code, _, freq, gain, bandwidth = band
    kind = _BAND_TYPES[code]
    freq = _clamp("eq_freq_hz", freq)
    return EQBand(kind, freq, 0.0 if kind.endswith("pass") else _clamp("eq_gain_db", _linear_to_db(gain)),
                  _clamp("eq_q", bandwidth_oct_to_q(bandwidth, freq, sample_rate)))


def _master_ceiling(project: RppBlock) -> float | None:
    for chain in project.blocks("MASTERFXLIST"):
        for vst in chain.blocks("VST"):
            if vst.args and vst.args[0].startswith("VST: ReaLimit"):
                state = decode_vst(vst)[1]
                return struct.unpack_from("<2i2d", state)[3]
    return None


def _linear_to_db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def _clamp(tensor: str, value: float) -> float:
    spec = SPECS[tensor]
    return round(min(max(value, spec.minimum), spec.maximum), 9)
