"""Real producer mixes from LMMS projects: dry stems, the producer's mix and the settings the project states.

Debian's ``lmms-common`` ships songs made and mixed by real producers
(``/usr/share/lmms/projects/demos`` and ``.../shorties``); any user's ``.mmp`` /
``.mmpz`` works the same way. For each project this module writes one song of the
folder layout (`mixdown.data.folder`)::

    root/manifest.json            every project asked for: built or skipped, and why
    root/<song>/stems/NN_<track>.wav   each track rendered solo and dry (float WAV)
    root/<song>/mix.wav           the project rendered as the producer saved it
    root/<song>/params.json       the gains and pans the project states, as ConsoleParams
    root/<song>/lmms.json         everything else the project states that the console
                                  does not represent (see below)

**Dry stems.** For each audible track (instrument or sample track, in the song editor or
in a beat/bassline) a modified copy of the project XML is rendered by LMMS
(``lmms render``) with that track alone unmuted, at 100 % volume and centre pan, routed
straight to the master mixer channel, the master channel at unity with its effects off,
the master volume at 100 % and no automation or controller left on any of those knobs.
The instrument's own sound design is kept: its plugin settings, envelopes, its own
effect chain (LMMS's per-track "FX" tab) and the automation of its sound parameters.

**The mix** is the project as saved: track volumes and pans, mixer channels, sends and
their effect chains, master effects and every automation.

**Stated settings** (``params.json``): per stem, ``gain_db`` is the track's volume
(LMMS: percent, 100 = unity) times the linear gain of its path through the mixer (each
channel's fader, 0..2 linear, times the send amounts down to the master, times the
master fader) times the project's master volume, in dB; ``pan`` is LMMS's pan converted
to the console's law. LMMS pans every signal (all LMMS tracks are stereo) with a linear
balance law: at ``p = pan / 100 > 0`` the left side is scaled by ``1 - p`` and the right
one kept (mirrored for ``p < 0``), so the centre is at unity on both sides. The
console balances a stereo stem by ``sqrt(2) * (cos t, sin t)``, ``t = (pan + 1) pi / 4``
(`mixdown.dsp.pan`). Equal left/right gains need ``tan t = r / l``; the remaining level
is folded into the gain: ``gain += 20 log10(sqrt(l^2 + r^2) / sqrt(2))`` dB (0 dB at
centre, -3 dB hard-panned). EQ, compressor and reverb are left off, the master does
neither loudness normalisation nor limiting (the producer's mix is rendered as is).

Not represented, and written to ``lmms.json`` per track and per song: automation or
controllers on a track's volume or pan or on a mixer fader (the stated value is the
saved one), effects on the mixer channels and the master (``mixer_effects``), the
tracks' own effect chains (kept in the stems), tracks left out (muted, at 0 %
volume, or silent in the excerpt) and how repeatable the project's render is (LMMS
instruments with free-running noise or random phases do not render twice alike:
``render_repeat_db`` compares two renders of the mix).

**Excerpts** (``seconds``): the window of whole bars of that length where the mix is
loudest. LMMS's command line cannot render between loop markers, so the copies are
truncated after the window (every clip that starts after it is dropped) and the window
is cut from the render.

Rendering needs LMMS (``lmms`` on the ``PATH`` or the ``LMMS`` environment variable)
and, for the shipped demos' effects, the LADSPA packages of `APT_PACKAGES`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from mixdown.audio import atomic_write_text, write_audio
from mixdown.errors import MixdownError
from mixdown.multitrack import guess_instrument_class
from mixdown.params import SPECS, ChannelParams, ConsoleParams, MasterParams

SHIPPED_FOLDERS = ("/usr/share/lmms/projects/demos", "/usr/share/lmms/projects/shorties")
"""Where Debian's ``lmms-common`` puts its producers' songs (the tutorials are left out)."""

APT_PACKAGES = ("lmms", "lmms-common", "caps", "calf-plugins", "tap-plugins", "cmt", "swh-plugins")
"""Debian packages: LMMS, its demo projects and the LADSPA effects they use."""

MANIFEST_FILE = "manifest.json"
LMMS_FILE = "lmms.json"
PARAMS_FILE = "params.json"
DEFAULT_SECONDS = 30.0
SILENT_DBFS = -60.0
"""A track whose render stays under this RMS level (dBFS, over the song or excerpt) is left out."""

MIN_STEMS = 2
TICKS_PER_BEAT = 48  # LMMS: 192 ticks per 4/4 bar
_TCO_TAGS = ("pattern", "bbtco", "sampletco", "automationpattern")
_STAGING_PREFIX = "."

ProgressCallback = Callable[[str], None]
"""Called with one line of news per finished render and per finished or skipped song."""


def install_hint() -> str:
    """The command that installs LMMS and the effects its demos use."""
    return f"apt-get install -y {' '.join(APT_PACKAGES)}"


def find_lmms() -> str:
    """The LMMS executable (``$LMMS`` or ``lmms`` on the ``PATH``).

    Raises:
        MixdownError: If it is not installed, naming the Debian packages to install.
    """
    candidate = os.environ.get("LMMS") or shutil.which("lmms")
    if not candidate or not Path(candidate).exists():
        raise MixdownError(f"LMMS is not installed (no 'lmms' on the PATH); install it with: {install_hint()}")
    return candidate


def shipped_projects() -> list[Path]:
    """Every ``.mmp`` / ``.mmpz`` of `SHIPPED_FOLDERS`, by path.

    Raises:
        MixdownError: If none is installed, naming the packages.
    """
    found = sorted(p for folder in SHIPPED_FOLDERS if Path(folder).is_dir()
                   for p in Path(folder).rglob("*") if p.suffix.lower() in (".mmp", ".mmpz"))
    if not found:
        raise MixdownError(f"no LMMS projects in {', '.join(SHIPPED_FOLDERS)}; install them with: {install_hint()}")
    return found


def song_name(project: Path) -> str:
    """A folder name for a project: its file stem with anything but letters, digits, ``._-`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", project.stem).strip("._") or "song"


# ---------------------------------------------------------------------------------------------- project XML


def read_project(path: str | os.PathLike) -> ET.Element:
    """Parse a ``.mmp`` (XML) or ``.mmpz`` (Qt ``qCompress``: 4-byte length + zlib) project.

    Raises:
        MixdownError: If the file cannot be read or is not an LMMS project.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MixdownError(f"{path}: cannot read ({exc.strerror})") from None
    if path.suffix.lower() == ".mmpz":
        try:
            data = zlib.decompress(data[4:])
        except zlib.error as exc:
            raise MixdownError(f"{path}: not a compressed LMMS project ({exc})") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MixdownError(f"{path}: not an LMMS project (XML error: {exc})") from None
    if root.tag not in ("lmms-project", "multimedia-project") or root.find("song") is None:
        raise MixdownError(f"{path}: not an LMMS song project (no <lmms-project><song>)")
    return root


def _model(elem: ET.Element, name: str, default: float) -> float:
    """A knob's saved value: an attribute, or a child element ``<name value=...>`` when automated."""
    if name in elem.attrib:
        return float(elem.get(name))
    child = elem.find(name)
    if child is not None and child.get("value") is not None:
        return float(child.get("value"))
    return default


def _set_model(elem: ET.Element, name: str, value: float) -> None:
    """Set a knob to a fixed value, dropping the child element that carries its automation or controller."""
    for child in elem.findall(name):
        elem.remove(child)
    elem.set(name, f"{value:g}")


def _model_automated(elem: ET.Element, name: str, automated_ids: set[str]) -> bool:
    child = elem.find(name)
    return child is not None and (child.get("id") in automated_ids or child.find("connection") is not None)


def _automated_ids(root: ET.Element) -> set[str]:
    return {obj.get("id") for pattern in root.iter("automationpattern") for obj in pattern.findall("object")
            if obj.get("id") is not None}


def _effects(chain: ET.Element | None) -> list[str]:
    """Names of the switched-on effects of an ``<fxchain>`` (LADSPA ones as ``file:plugin``)."""
    if chain is None or chain.get("enabled", "1") == "0":
        return []
    names = []
    for effect in chain.findall("effect"):
        if effect.get("on", "1") == "0":
            continue
        name = effect.get("name", "effect")
        key = {a.get("name"): a.get("value") for a in effect.iter("attribute")}
        if key.get("plugin"):
            name = f"{key.get('file', name)}:{key['plugin']}"
        names.append(name)
    return names


@dataclass
class TrackInfo:
    """One instrument or sample track of a project, as the project states it.

    Attributes:
        index: Position among the project's audio tracks (song editor first, then the
            beat/bassline editor), the key of its render.
        name: The track's name in LMMS.
        kind: ``"instrument"`` or ``"sample"``.
        container: ``"song"`` or ``"beat-bassline"``.
        instrument: The instrument plugin (``"sample"`` for sample tracks).
        sample: The sample file an AudioFileProcessor plays, if any.
        muted: Muted in the project.
        volume_pct: Track volume (100 = unity).
        pan_pct: Track pan, -100 (left) .. 100.
        mixer_channel: The mixer channel it feeds.
        mixer_gain_db: Linear gain of the path from that channel to the output (faders,
            sends, master fader, master volume), in dB.
        mixer_effects: Effects on that path (not represented by the console).
        track_effects: The track's own effect chain (kept in its stem).
        automated: Which of ``volume``, ``pan``, ``mixer`` are automated or controlled.
    """

    index: int
    name: str
    kind: str
    container: str
    instrument: str
    sample: str | None
    muted: bool
    volume_pct: float
    pan_pct: float
    mixer_channel: int
    mixer_gain_db: float
    mixer_effects: list[str] = field(default_factory=list)
    track_effects: list[str] = field(default_factory=list)
    automated: list[str] = field(default_factory=list)

    @property
    def gain_db(self) -> float:
        """Stated gain: track volume and mixer path, plus the pan law's level (`lmms_pan`)."""
        if self.volume_pct <= 0.0 or not math.isfinite(self.mixer_gain_db):
            return -math.inf
        return 20.0 * math.log10(self.volume_pct / 100.0) + self.mixer_gain_db + lmms_pan(self.pan_pct)[1]

    @property
    def pan(self) -> float:
        """Stated pan in the console's units."""
        return lmms_pan(self.pan_pct)[0]


def lmms_pan(pan_pct: float) -> tuple[float, float]:
    """LMMS's linear balance law in the console's terms (see the module docstring).

    Args:
        pan_pct: LMMS pan, -100 (hard left) .. 100.

    Returns:
        ``(pan, gain_db)``: the console pan in [-1, 1] with the same left/right ratio and
        the gain that gives the same levels (0 dB at centre, -3.01 dB hard-panned).
    """
    p = min(max(pan_pct / 100.0, -1.0), 1.0)
    left, right = 1.0 - max(p, 0.0), 1.0 - max(-p, 0.0)
    theta = math.atan2(right, left)
    return 4.0 * theta / math.pi - 1.0, 20.0 * math.log10(math.hypot(left, right) / math.sqrt(2.0))


def _audio_tracks(root: ET.Element) -> list[tuple[ET.Element, str]]:
    """``(<track>, container)`` of every instrument (type 0) and sample (type 2) track, in render order."""
    container = root.find("song/trackcontainer")
    if container is None:
        return []
    song = [(t, "song") for t in container.findall("track") if t.get("type") in ("0", "2")]
    beat = [(t, "beat-bassline") for bb in container.findall("track[@type='1']")
            for t in bb.findall("bbtrack/trackcontainer/track") if t.get("type") in ("0", "2")]
    return song + beat


def _mixer(root: ET.Element) -> dict[int, ET.Element]:
    mixer = root.find("song/fxmixer")
    return {} if mixer is None else {int(ch.get("num", 0)): ch for ch in mixer.findall("fxchannel")}


def _mixer_path(channels: dict[int, ET.Element], start: int, automated_ids: set[str]
                ) -> tuple[float, list[str], bool]:
    """Linear gain, effects and whether a fader is automated, from channel ``start`` to the output."""
    def walk(num: int, seen: frozenset[int]) -> tuple[float, list[str], bool]:
        channel = channels.get(num)
        if channel is None or num in seen:
            return (1.0 if num == 0 else 0.0), [], False
        if channel.get("muted", "0") == "1":
            return 0.0, [], False
        volume = _model(channel, "volume", 1.0)
        effects = [f"{channel.get('name', num)}: {e}" for e in _effects(channel.find("fxchain"))]
        automated = _model_automated(channel, "volume", automated_ids)
        if num == 0:
            return volume, effects, automated
        sends = channel.findall("send")
        targets = [(int(s.get("channel", 0)), _model(s, "amount", 1.0)) for s in sends] or [(0, 1.0)]
        total = 0.0
        for target, amount in targets:
            gain, more, auto = walk(target, seen | {num})
            total += amount * gain
            effects += [e for e in more if e not in effects]
            automated = automated or auto or _send_automated(sends, target, automated_ids)
        return volume * total, effects, automated

    return walk(start, frozenset())


def _send_automated(sends: list[ET.Element], target: int, automated_ids: set[str]) -> bool:
    return any(int(s.get("channel", 0)) == target and _model_automated(s, "amount", automated_ids) for s in sends)


def _track_settings(track: ET.Element) -> ET.Element | None:
    return track.find("instrumenttrack") if track.get("type") == "0" else track.find("sampletrack")


def project_tracks(root: ET.Element) -> list[TrackInfo]:
    """Every instrument and sample track of a project with the settings it states."""
    automated_ids = _automated_ids(root)
    channels = _mixer(root)
    head = root.find("head")
    master_volume = _model(head, "mastervol", 100.0) if head is not None else 100.0
    master_automated = head is not None and _model_automated(head, "mastervol", automated_ids)
    tracks = []
    for index, (track, container) in enumerate(_audio_tracks(root)):
        settings = _track_settings(track)
        if settings is None:
            settings = ET.Element("none")
        kind = "instrument" if track.get("type") == "0" else "sample"
        plugin = track.find("instrumenttrack/instrument")
        instrument = plugin.get("name", "?") if plugin is not None else "sample"
        afp = track.find("instrumenttrack/instrument/audiofileprocessor")
        sample = afp.get("src") if afp is not None and afp.get("src") else None
        if kind == "sample":
            clip = track.find("sampletco")
            sample = clip.get("src") if clip is not None and clip.get("src") else None
        channel = int(_model(settings, "fxch", 0.0))
        path_gain, mixer_effects, mixer_automated = _mixer_path(channels, channel, automated_ids)
        path_gain *= master_volume / 100.0
        automated = [name for name, knob in (("volume", "vol"), ("pan", "pan"))
                     if _model_automated(settings, knob, automated_ids)]
        if mixer_automated or master_automated:
            automated.append("mixer")
        tracks.append(TrackInfo(
            index=index, name=track.get("name", f"track {index}"), kind=kind, container=container,
            instrument=instrument, sample=sample, muted=track.get("muted", "0") == "1",
            volume_pct=_model(settings, "vol", 100.0), pan_pct=_model(settings, "pan", 0.0),
            mixer_channel=channel,
            mixer_gain_db=20.0 * math.log10(path_gain) if path_gain > 0.0 else -math.inf,
            mixer_effects=mixer_effects, track_effects=_effects(settings.find("fxchain")), automated=automated))
    return tracks


def _absolute_samples(root: ET.Element, project_dir: Path) -> None:
    """Point relative sample paths that exist beside the project at their absolute location.

    LMMS looks relative paths up in its sample folders, and copies are rendered from a
    temporary folder: a user project's own samples would be lost without this.
    """
    for elem in root.iter():
        src = elem.get("src")
        if src and not os.path.isabs(src) and (project_dir / src).is_file():
            elem.set("src", str((project_dir / src).resolve()))


def truncated(root: ET.Element, end_tick: int | None) -> ET.Element:
    """A copy of the project without the clips that start at or after ``end_tick`` (None: a plain copy)."""
    out = copy.deepcopy(root)
    if end_tick is None:
        return out
    # Song-editor tracks only: inside a beat/bassline, a clip's position is the index of its
    # beat/bassline (times a bar), not a time in the song.
    for track in out.findall("song/trackcontainer/track"):
        for child in list(track):
            if child.tag in _TCO_TAGS and float(child.get("pos", 0)) >= end_tick:
                track.remove(child)
    return out


def dry_copy(root: ET.Element, solo: int) -> ET.Element:
    """A copy of the project where track ``solo`` plays alone and dry (see the module docstring)."""
    out = copy.deepcopy(root)
    for index, (track, _) in enumerate(_audio_tracks(out)):
        track.set("muted", "0" if index == solo else "1")
        track.set("solo", "0")
        if index != solo:
            continue
        settings = _track_settings(track)
        if settings is not None:
            _set_model(settings, "vol", 100.0)
            _set_model(settings, "pan", 0.0)
            _set_model(settings, "fxch", 0.0)
    head = out.find("head")
    if head is not None:
        _set_model(head, "mastervol", 100.0)
    master = _mixer(out).get(0)
    if master is not None:
        _set_model(master, "volume", 1.0)
        master.set("muted", "0")
        chain = master.find("fxchain")
        if chain is not None:
            chain.set("enabled", "0")
    return out


def song_seconds(root: ET.Element) -> float:
    """Seconds per tick of a project (``60 / (bpm * 48)``)."""
    head = root.find("head")
    bpm = _model(head, "bpm", 140.0) if head is not None else 140.0
    return 60.0 / (bpm * TICKS_PER_BEAT)


def bar_ticks(root: ET.Element) -> int:
    """Ticks per bar (192 for 4/4)."""
    head = root.find("head")
    numerator = _model(head, "timesig_numerator", 4.0) if head is not None else 4.0
    denominator = _model(head, "timesig_denominator", 4.0) if head is not None else 4.0
    return max(1, round(4 * TICKS_PER_BEAT * numerator / denominator))


# ---------------------------------------------------------------------------------------------- rendering


def render_project(root: ET.Element, out: Path, sample_rate: int, work: Path, lmms: str,
                   timeout_s: float = 1800.0) -> np.ndarray:
    """Render a project (XML root) with LMMS to a float WAV and return it ``(2, samples)``.

    Raises:
        MixdownError: If LMMS fails, times out or writes nothing.
    """
    project = work / f"{out.stem}.mmp"
    ET.ElementTree(root).write(project, encoding="utf-8", xml_declaration=True)
    command = [lmms, "--allowroot", "render", str(project), "-f", "wav", "-a", "-s", str(sample_rate),
               "-o", str(out)]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout_s, cwd=work, check=False)
    except subprocess.TimeoutExpired:
        raise MixdownError(f"LMMS took over {timeout_s:g} s to render {out.stem}") from None
    if done.returncode != 0 or not out.exists():
        tail = done.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise MixdownError(f"LMMS failed to render {out.stem} (exit {done.returncode}): {tail[0][-200:]}")
    audio, rate = sf.read(out, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise MixdownError(f"LMMS rendered {out.stem} at {rate} Hz instead of {sample_rate} Hz")
    audio = audio.T
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if not np.isfinite(audio).all():
        raise MixdownError(f"LMMS rendered non-finite samples for {out.stem}")
    return np.ascontiguousarray(audio[:2])


def _rms_dbfs(audio: np.ndarray) -> float:
    power = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    return 10.0 * math.log10(power) if power > 0.0 else -math.inf  # 0 dBFS: a full-scale square wave


def loudest_window(mix: np.ndarray, sample_rate: int, window: int, hop: int) -> int:
    """Start (in frames, a multiple of ``hop``) of the ``window``-frame stretch where ``mix`` has most energy."""
    if mix.shape[-1] <= window:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(np.square(mix, dtype=np.float64).sum(axis=0))])
    starts = np.arange(0, mix.shape[-1] - window + 1, max(1, hop))
    return int(starts[int(np.argmax(energy[starts + window] - energy[starts]))])


# ---------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class BuildConfig:
    """How songs are made from projects.

    Attributes:
        seconds: Length of the excerpt (whole bars, where the mix is loudest), or None for
            whole songs.
        sample_rate: In Hz (LMMS renders 44100..192000).
        timeout_s: Longest one LMMS render may take.
    """

    seconds: float | None = DEFAULT_SECONDS
    sample_rate: int = 44100
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.seconds is not None and not self.seconds > 0.0:
            raise MixdownError(f"seconds must be positive (or None for whole songs), got {self.seconds}")
        if not 44100 <= self.sample_rate <= 192000:
            raise MixdownError(f"LMMS renders at 44100..192000 Hz, got {self.sample_rate}")


@dataclass
class SongReport:
    """What became of one project.

    Attributes:
        project: Its path.
        song: Folder name.
        status: ``"built"`` (now or by an earlier run) or ``"skipped"``.
        reason: Why it was skipped.
        stems: Stems written.
        seconds: Length of the song written.
        build_s: Wall time of this build.
        renders: LMMS renders made.
    """

    project: str
    song: str
    status: str
    reason: str | None = None
    stems: int = 0
    seconds: float = 0.0
    build_s: float = 0.0
    renders: int = 0


def _stem_name(track: TrackInfo, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", track.name).strip("._") or "track"
    name = f"{track.index:02d}_{base}"
    if guess_instrument_class(base) == "other" and track.sample:
        sample = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(track.sample).stem).strip("._")
        if sample:
            name = f"{name}_{sample}"
    while name in used:
        name += "_"
    used.add(name)
    return name


def build_song(project: str | os.PathLike, out_dir: Path, config: BuildConfig = BuildConfig(), workers: int = 1,
               progress: ProgressCallback | None = None) -> SongReport:
    """Render one project into one song folder (written to a staging folder, then renamed).

    Args:
        project: The ``.mmp`` / ``.mmpz``.
        out_dir: The dataset folder; the song goes to ``out_dir / song_name(project)``.
        config: Excerpt length and rate.
        workers: LMMS renders run at once.
        progress: Called with a line after each render.

    Returns:
        Its report; a project that cannot be used is ``"skipped"`` with the reason.

    Raises:
        MixdownError: If LMMS is missing (every project would fail alike).
    """
    project = Path(project)
    name = song_name(project)
    began = time.perf_counter()
    lmms = find_lmms()
    report = SongReport(str(project), name, "skipped")
    try:
        root = read_project(project)
    except MixdownError as exc:
        report.reason = str(exc)
        return report
    _absolute_samples(root, project.parent)
    tracks = project_tracks(root)
    left_out: list[dict[str, str]] = []
    playing = []
    for track in tracks:
        if track.muted:
            left_out.append({"track": track.name, "reason": "muted in the project"})
        elif not math.isfinite(track.gain_db):
            left_out.append({"track": track.name, "reason": "volume or mixer path at 0"})
        else:
            playing.append(track)
    if len(playing) < MIN_STEMS:
        report.reason = f"{len(playing)} audible track(s) in the project; at least {MIN_STEMS} are needed"
        return report
    rate = config.sample_rate
    staging = out_dir / f"{_STAGING_PREFIX}{name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "stems").mkdir(parents=True)
    try:
        with tempfile.TemporaryDirectory(prefix="mixdown-lmms-") as tmp:
            work = Path(tmp)
            renders = 0

            def render(tree: ET.Element, label: str) -> np.ndarray:
                nonlocal renders
                audio = render_project(tree, work / f"{label}.wav", rate, work, lmms, config.timeout_s)
                (work / f"{label}.wav").unlink(missing_ok=True)
                renders += 1
                if progress is not None:
                    progress(f"{name}: rendered {label} ({audio.shape[1] / rate:.1f} s)")
                return audio

            tick_s = song_seconds(root)
            excerpt = None
            end_tick = None
            full = render(root, "full_mix")
            if config.seconds is not None:
                bar = bar_ticks(root)
                bars = max(1, round(config.seconds / (bar * tick_s)))
                window = round(bars * bar * tick_s * rate)
                if full.shape[1] > window:
                    start = loudest_window(full, rate, window, max(1, round(bar * tick_s * rate)))
                    start_tick = round(start / rate / tick_s)
                    end_tick = start_tick + bars * bar
                    excerpt = (start, start + window, start_tick, end_tick)
            base = truncated(root, end_tick)
            jobs = [("mix", base)] + [(f"track_{t.index:02d}", dry_copy(base, t.index)) for t in playing]
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                audios = list(pool.map(lambda job: render(job[1], job[0]), jobs))
            mix = audios[0]
            window = slice(excerpt[0], excerpt[1]) if excerpt else slice(0, full.shape[1])
            length = window.stop - window.start

            def cut(audio: np.ndarray) -> np.ndarray:
                part = audio[:, window]
                return np.pad(part, ((0, 0), (0, length - part.shape[1]))) if part.shape[1] < length else part

            mix = cut(mix)
            repeat = cut(full)
            diff = float(np.sum(np.square(repeat - mix, dtype=np.float64)))
            energy = float(np.sum(np.square(mix, dtype=np.float64)))
            if energy == 0.0 or _rms_dbfs(mix) < SILENT_DBFS:
                report.reason = "the producer's mix is silent" + (" in the excerpt" if excerpt else "")
                return report
            used: set[str] = set()
            channels, described = [], []
            for track, audio in zip(playing, audios[1:]):
                stem = cut(audio)
                level = _rms_dbfs(stem)
                if level < SILENT_DBFS:
                    left_out.append({"track": track.name, "reason": f"silent ({level:.0f} dBFS RMS)"
                                     + (" in the excerpt" if excerpt else "")})
                    continue
                stem_name = _stem_name(track, used)
                write_audio(staging / "stems" / f"{stem_name}.wav", stem, rate, subtype="FLOAT")
                gain = SPECS["gain_db"]
                channels.append(ChannelParams(
                    name=stem_name, instrument=guess_instrument_class(stem_name),
                    gain_db=round(min(max(track.gain_db, gain.minimum), gain.maximum), 3),
                    pan=round(track.pan, 4)))
                described.append({"stem": stem_name, **asdict(track), "gain_db": channels[-1].gain_db,
                                  "pan": channels[-1].pan, "rms_dbfs": round(level, 2)})
            if len(channels) < MIN_STEMS:
                report.reason = (f"{len(channels)} track(s) sound" + (" in the excerpt" if excerpt else "")
                                 + f"; at least {MIN_STEMS} are needed")
                return report
            write_audio(staging / "mix.wav", mix, rate, subtype="FLOAT")
            params = ConsoleParams(channels=channels, master=MasterParams(target_lufs=None, ceiling_dbtp=None),
                                   sample_rate=rate, method="lmms")
            params.validate()
            atomic_write_text(staging / PARAMS_FILE, params.to_json())
            mixer_effects = sorted({e for t in described for e in t["mixer_effects"]})
            notes = {
                "project": str(project),
                "lmms_version": root.get("creatorversion"),
                "bpm": round(60.0 / (tick_s * TICKS_PER_BEAT), 3),
                "sample_rate": rate,
                "excerpt": None if excerpt is None else {
                    "start_s": round(excerpt[0] / rate, 4), "seconds": round(length / rate, 4),
                    "start_tick": excerpt[2], "end_tick": excerpt[3]},
                "render_repeat_db": (round(10.0 * math.log10(diff / energy), 2) if diff > 0.0 else None),
                "not_represented": {
                    "mixer_effects": mixer_effects,
                    "automated": sorted({f"{t['stem']}: {a}" for t in described for a in t["automated"]}),
                    "track_effects_kept_in_stems": sorted({f"{t['stem']}: {e}" for t in described
                                                          for e in t["track_effects"]}),
                },
                "left_out": left_out,
                "tracks": described,
            }
            atomic_write_text(staging / LMMS_FILE, json.dumps(notes, indent=2, default=_json_default) + "\n")
            target = out_dir / name
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            report.status, report.stems, report.seconds, report.renders = "built", len(channels), length / rate, renders
            return report
    except MixdownError as exc:
        report.reason = str(exc)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        report.build_s = round(time.perf_counter() - began, 2)


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _finished(folder: Path) -> bool:
    return all((folder / part).exists() for part in ("stems", "mix.wav", PARAMS_FILE, LMMS_FILE))


def build_dataset(projects: Sequence[str | os.PathLike] | None, root: str | os.PathLike,
                  config: BuildConfig = BuildConfig(), workers: int = 1,
                  progress: ProgressCallback | None = None) -> list[SongReport]:
    """Build (or resume) a dataset of LMMS songs and write ``manifest.json``.

    Args:
        projects: Project files; None takes every shipped one (`shipped_projects`).
        root: Dataset folder (created). A folder built with another `BuildConfig` is refused.
        config: Excerpt length and rate.
        workers: LMMS renders run at once.
        progress: Called with one line per render and per song.

    Returns:
        One report per project, in the order given.

    Raises:
        MixdownError: If LMMS or the projects are missing, two projects share a song name,
            or ``root`` holds a build with other settings.
    """
    find_lmms()
    paths = [Path(p) for p in projects] if projects else shipped_projects()
    for path in paths:
        if not path.is_file():
            raise MixdownError(f"{path}: no such project file")
        if path.suffix.lower() not in (".mmp", ".mmpz"):
            raise MixdownError(f"{path}: not an LMMS project (.mmp or .mmpz)")
    names = [song_name(p) for p in paths]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise MixdownError(f"several projects would become the song {clash[0]!r}; rename one")
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MixdownError(f"{root}: cannot create the dataset folder ({exc.strerror})") from None
    manifest_path = root / MANIFEST_FILE
    previous: dict[str, dict] = {}
    settings = asdict(config)
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise MixdownError(f"{manifest_path}: cannot read ({exc})") from None
        if old.get("config") != settings:
            raise MixdownError(f"{root} was built with {old.get('config')}, not {settings}; use another folder")
        previous = {entry["song"]: entry for entry in old.get("songs", [])}
    reports = []

    def save() -> None:
        entries = {**previous, **{r.song: asdict(r) for r in reports}}
        atomic_write_text(manifest_path, json.dumps(
            {"config": settings, "songs": sorted(entries.values(), key=lambda e: e["song"])}, indent=2) + "\n")

    for path, name in zip(paths, names):
        if _finished(root / name):
            entry = previous.get(name, {})
            reports.append(SongReport(str(path), name, "built", stems=entry.get("stems", 0),
                                      seconds=entry.get("seconds", 0.0), build_s=entry.get("build_s", 0.0),
                                      renders=entry.get("renders", 0)))
            if progress is not None:
                progress(f"{name}: already built")
            continue
        report = build_song(path, root, config, workers, progress)
        reports.append(report)
        save()
        if progress is not None:
            progress(f"{name}: {report.status}" + (f" ({report.reason})" if report.reason else
                                                    f", {report.stems} stems, {report.seconds:.1f} s in "
                                                    f"{report.build_s:.0f} s"))
    save()
    return reports
