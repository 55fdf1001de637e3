"""LMMS projects as real-mix datasets (`mixdown.data.lmms`): a tiny project written here, rendered by LMMS."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mixdown.audio import load_audio
from mixdown.console import render
from mixdown.data import lmms
from mixdown.data.folder import check_dataset
from mixdown.errors import MixdownError
from mixdown.multitrack import load_multitrack
from mixdown.params import ConsoleParams

HAVE_LMMS = shutil.which("lmms") is not None
needs_lmms = pytest.mark.skipif(not HAVE_LMMS, reason=f"LMMS not installed: {lmms.install_hint()}")

# Two tripleoscillator tracks (one at 50 % hard left, one at 100 % pan 50 on a mixer channel at 0.5),
# one muted track; 2 bars at 240 bpm = 2 s.
TINY = """<?xml version="1.0"?>
<!DOCTYPE lmms-project>
<lmms-project version="1.0" creator="LMMS" creatorversion="1.2.2" type="song">
  <head bpm="240" mastervol="100" masterpitch="0" timesig_numerator="4" timesig_denominator="4"/>
  <song>
    <trackcontainer type="song">
      <track type="0" name="Bass" muted="0" solo="0">
        <instrumenttrack vol="50" pan="-100" fxch="0" pitch="0" basenote="57">
          <instrument name="tripleoscillator"><tripleoscillator vol0="33" vol1="0" vol2="0" wavetype0="0"/></instrument>
        </instrumenttrack>
        <pattern type="1" pos="0" len="192" steps="16" muted="0" name="b">
          <note pos="0" len="96" key="45" vol="100" pan="0"/>
          <note pos="96" len="96" key="48" vol="100" pan="0"/>
        </pattern>
      </track>
      <track type="0" name="Lead" muted="0" solo="0">
        <instrumenttrack vol="100" pan="50" fxch="1" pitch="0" basenote="57">
          <instrument name="tripleoscillator"><tripleoscillator vol0="33" vol1="0" vol2="0" wavetype0="1"/></instrument>
        </instrumenttrack>
        <pattern type="1" pos="0" len="192" steps="16" muted="0" name="l">
          <note pos="0" len="48" key="69" vol="100" pan="0"/>
          <note pos="48" len="48" key="72" vol="100" pan="0"/>
          <note pos="96" len="96" key="76" vol="100" pan="0"/>
        </pattern>
      </track>
      <track type="0" name="Muted" muted="1" solo="0">
        <instrumenttrack vol="100" pan="0" fxch="0" pitch="0" basenote="57">
          <instrument name="tripleoscillator"><tripleoscillator vol0="33"/></instrument>
        </instrumenttrack>
      </track>
    </trackcontainer>
    <fxmixer>
      <fxchannel num="0" volume="1" muted="0" name="Master"><fxchain enabled="0" numofeffects="0"/></fxchannel>
      <fxchannel num="1" volume="0.5" muted="0" name="Lead bus"><fxchain enabled="0" numofeffects="0"/>
        <send channel="0" amount="1"/></fxchannel>
    </fxmixer>
    <timeline lp0pos="0" lp1pos="192" lpstate="0"/>
  </song>
</lmms-project>
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.mmp"
    path.write_text(TINY, encoding="utf-8")
    return path


@pytest.mark.parametrize("pan_pct, pan, gain_db", [
    (0.0, 0.0, 0.0),                     # centre: unity on both sides in both laws
    (100.0, 1.0, -10 * math.log10(2)),   # hard right: LMMS keeps the right side at 1; ours sqrt(2) -> -3.01 dB
    (-100.0, -1.0, -10 * math.log10(2)),
    (50.0, 4 / math.pi * math.atan(2.0) - 1.0, 20 * math.log10(math.hypot(0.5, 1.0) / math.sqrt(2))),
])
def test_lmms_pan_law_known_answers(pan_pct: float, pan: float, gain_db: float) -> None:
    got_pan, got_gain = lmms.lmms_pan(pan_pct)
    assert got_pan == pytest.approx(pan, abs=1e-9)
    assert got_gain == pytest.approx(gain_db, abs=1e-9)


EFFECT = ('<effect name="ladspaeffect" on="1" wet="1"><key><attribute name="file" value="caps"/>'
          '<attribute name="plugin" value="Plate"/></key></effect>')


def test_stated_settings_fold_in_the_mixer_path(tiny: Path) -> None:
    root = lmms.read_project(tiny)
    chain = root.find("song/fxmixer/fxchannel[@num='1']/fxchain")
    chain.set("enabled", "1")
    chain.append(ET.fromstring(EFFECT))
    tracks = lmms.project_tracks(root)
    assert [t.name for t in tracks] == ["Bass", "Lead", "Muted"]
    bass, lead, muted = tracks
    assert muted.muted
    assert bass.gain_db == pytest.approx(20 * math.log10(0.5) - 10 * math.log10(2), abs=1e-9)
    # 100 % volume, mixer channel at 0.5 linear, pan 50: level hypot(0.5, 1) / sqrt(2)
    assert lead.mixer_gain_db == pytest.approx(20 * math.log10(0.5), abs=1e-9)
    assert lead.gain_db == pytest.approx(20 * math.log10(0.5 * math.hypot(0.5, 1.0) / math.sqrt(2)), abs=1e-9)
    assert lead.mixer_effects == ["Lead bus: caps:Plate"]


def test_dry_copy_solos_one_track_at_unity(tiny: Path) -> None:
    dry = lmms.dry_copy(lmms.read_project(tiny), solo=1)
    tracks = dry.findall("song/trackcontainer/track")
    assert [t.get("muted") for t in tracks] == ["1", "0", "1"]
    lead = tracks[1].find("instrumenttrack")
    assert (lead.get("vol"), lead.get("pan"), lead.get("fxch")) == ("100", "0", "0")
    assert tracks[0].find("instrumenttrack").get("vol") == "50"  # others untouched (and muted)
    assert dry.find("song/fxmixer/fxchannel[@num='0']/fxchain").get("enabled") == "0"


def test_missing_lmms_names_the_packages(monkeypatch: pytest.MonkeyPatch, tiny: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("LMMS", raising=False)
    with pytest.raises(MixdownError, match="apt-get install -y lmms lmms-common caps"):
        lmms.build_dataset([tiny], tmp_path / "out")


def test_not_a_project_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mmp"
    bad.write_text("<html/>", encoding="utf-8")
    with pytest.raises(MixdownError, match="not an LMMS song project"):
        lmms.read_project(bad)


@needs_lmms
def test_build_renders_dry_stems_and_the_stated_settings_reproduce_the_mix(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "real"
    reports = lmms.build_dataset([tiny], out, lmms.BuildConfig(seconds=None), workers=2)
    assert [(r.song, r.status, r.stems) for r in reports] == [("tiny", "built", 2)]
    assert check_dataset(out).songs_ok == ["tiny"]
    song = out / "tiny"
    notes = json.loads((song / "lmms.json").read_text())
    assert notes["left_out"] == [{"track": "Muted", "reason": "muted in the project"}]
    assert notes["not_represented"]["mixer_effects"] == []
    stems = load_multitrack(song / "stems")
    assert stems.names == ["00_Bass", "01_Lead"]
    for name in stems.names:  # dry: centred, so both sides equal
        audio, _ = load_audio(song / "stems" / f"{name}.wav")
        np.testing.assert_allclose(audio[0], audio[1], atol=1e-6)
    # Reference check: without mixer effects or automation, LMMS's own mix (track volumes, pans,
    # a mixer channel at 0.5) equals the console's render of the stated gains and pans on the dry stems.
    mix, _ = load_audio(song / "mix.wav")
    rendered = render(stems, ConsoleParams.load(song / "params.json"))
    assert np.abs(mix).max() > 0.05
    np.testing.assert_allclose(rendered, mix, atol=1e-4)
    # resumable: a second run keeps the song as it is
    before = (song / "mix.wav").stat().st_mtime_ns
    lines: list[str] = []
    again = lmms.build_dataset([tiny], out, lmms.BuildConfig(seconds=None), progress=lines.append)
    assert again[0].status == "built" and lines == ["tiny: already built"]
    assert (song / "mix.wav").stat().st_mtime_ns == before
    with pytest.raises(MixdownError, match="was built with"):
        lmms.build_dataset([tiny], out, lmms.BuildConfig(seconds=1.0))


def test_truncation_keeps_beat_bassline_patterns() -> None:
    root = ET.fromstring(
        '<lmms-project><song><trackcontainer type="song">'
        '<track type="0" name="a"><pattern pos="0"/><pattern pos="768"/></track>'
        '<track type="1" name="bb"><bbtrack><trackcontainer type="bbtrackcontainer">'
        '<track type="0" name="kick"><pattern pos="0"/><pattern pos="960"/></track>'
        '</trackcontainer></bbtrack><bbtco pos="0"/><bbtco pos="800"/></track>'
        '</trackcontainer></song></lmms-project>')
    cut = lmms.truncated(root, end_tick=768)
    song_tracks = cut.findall("song/trackcontainer/track")
    assert [p.get("pos") for p in song_tracks[0].findall("pattern")] == ["0"]
    assert [p.get("pos") for p in song_tracks[1].findall("bbtco")] == ["0"]
    # inside the beat/bassline a pattern's pos is its beat/bassline's index, not song time: kept
    inner = song_tracks[1].find("bbtrack/trackcontainer/track")
    assert [p.get("pos") for p in inner.findall("pattern")] == ["0", "960"]
    assert len(root.findall("song/trackcontainer/track/pattern")) == 2  # the original is untouched
