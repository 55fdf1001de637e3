"""Sample libraries (`mixdown.synth.samples`): Hydrogen drumkits, MIDI files, FluidSynth renders.

The parser, piece assignment, kit rendering and MIDI writer run everywhere on generated
fixtures; the tests that use the Debian packages ``hydrogen-drumkits``, ``fluidsynth`` and
``fluid-soundfont-gm`` (installed by ``.ci/run``) skip when those are absent.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import MixdownError
from mixdown.synth import samples
from mixdown.synth.demo import AVAILABLE_STEMS, MIN_FULL_DURATION_S, compose_song
from mixdown.synth.synthetic import SynthConfig, generate_song
from mixdown.synth.voice import DRUM_PIECES, Event

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 16000
HYDROGEN_KITS = Path("/usr/share/hydrogen/data/drumkits")
GM_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
needs_hydrogen = pytest.mark.skipif(
    not HYDROGEN_KITS.is_dir(),
    reason=f"Hydrogen drumkits not installed ({HYDROGEN_KITS}; apt package hydrogen-drumkits)")
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not GM_SOUNDFONT.is_file(),
    reason=f"fluidsynth or {GM_SOUNDFONT} not installed (apt packages fluidsynth, fluid-soundfont-gm)")

# Kit fixture: instrument -> [(file, min, max, gain, pitch, samples)]. Samples are boxes and ramps
# so that a render can be checked sample by sample.
BOX = np.full(40, 0.5)
RAMP = np.linspace(0.1, 0.8, 60)
KIT = {
    "Kick": [("kick_soft.wav", 0.0, 0.5, 1.0, 0.0, BOX), ("kick_hard.wav", 0.5, 1.0, 0.5, 0.0, RAMP)],
    "Snare Rimshot": [("rim.wav", 0.0, 1.0, 1.0, 0.0, -BOX)],
    "Snare": [("snare.wav", 0.0, 1.0, 1.0, 0.0, RAMP)],
    "Closed HH": [("hh.wav", 0.0, 1.0, 1.0, 0.0, BOX[:10])],
    "Open HH": [("ohh.wav", 0.0, 1.0, 1.0, 0.0, np.full(SR, 0.3))],
    "Tom Hi": [("tom_hi.wav", 0.0, 1.0, 1.0, 0.0, BOX)],
    "Floor Tom": [("tom_floor.wav", 0.0, 1.0, 1.0, 0.0, -RAMP)],
    "Ride": [("ride.wav", 0.0, 1.0, 1.0, 0.0, BOX)],
    "Crash": [("crash.wav", 0.0, 1.0, 1.0, 0.0, RAMP[::-1])],
}
INSTRUMENT_VOLUME = {"Kick": 0.8}


def _drumkit_xml(instruments: dict, namespaced: bool, components: bool) -> str:
    """A drumkit.xml in the old layout (layers under <instrument>) or the new one (<instrumentComponent>)."""
    body = []
    for i, (name, layers) in enumerate(instruments.items()):
        layer_xml = "".join(f"<layer><filename>{f}</filename><min>{lo}</min><max>{hi}</max><gain>{g}</gain>"
                            f"<pitch>{p}</pitch></layer>" for f, lo, hi, g, p, _ in layers)
        if components:
            layer_xml = f"<instrumentComponent><component_id>0</component_id>{layer_xml}</instrumentComponent>"
        volume = INSTRUMENT_VOLUME.get(name, 1.0)
        body.append(f"<instrument><id>{i}</id><name>{name}</name><volume>{volume}</volume>{layer_xml}</instrument>")
    body.append("<instrument><id>99</id><name>empty slot</name></instrument>")
    xmlns = ' xmlns="http://www.hydrogen-music.org/drumkit"' if namespaced else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<drumkit_info{xmlns}><name>Test Kit</name>'
            f"<instrumentList>{''.join(body)}</instrumentList></drumkit_info>")


def _write_kit(folder: Path, instruments: dict = KIT, namespaced: bool = True, components: bool = True,
               rate: int = SR) -> Path:
    folder.mkdir(parents=True)
    (folder / samples.DRUMKIT_XML).write_text(_drumkit_xml(instruments, namespaced, components))
    for layers in instruments.values():
        for file, *_, audio in layers:
            sf.write(folder / file, audio, rate, subtype="FLOAT")
    return folder


@pytest.fixture
def kit_dir(tmp_path: Path) -> Path:
    return _write_kit(tmp_path / "Test Kit")


@pytest.mark.parametrize("namespaced", [True, False])
@pytest.mark.parametrize("components", [True, False])
def test_parser_reads_instruments_and_layers_of_every_hydrogen_layout(tmp_path, namespaced, components):
    kit = samples.load_drumkit(_write_kit(tmp_path / "kit", namespaced=namespaced, components=components))
    assert kit.name == "Test Kit"
    assert [i.name for i in kit.instruments] == list(KIT)  # the empty slot is left out
    kick = kit.instruments[0]
    assert kick.gain == 0.8
    assert kick.layers == (samples.DrumLayer("kick_soft.wav", 0.0, 0.5, 1.0, 0.0),
                           samples.DrumLayer("kick_hard.wav", 0.5, 1.0, 0.5, 0.0))


def test_parser_reads_single_sample_instruments_of_old_kits():
    xml = ("<drumkit_info><name>Old</name><instrumentList><instrument><id>0</id><filename>k.flac</filename>"
           "<name>Kick 1</name><volume>0.5</volume></instrument></instrumentList></drumkit_info>")
    kit = samples.parse_drumkit(xml, "old")
    assert kit.instruments == (samples.DrumInstrument("Kick 1", (samples.DrumLayer("k.flac", 0.0, 1.0),), 0.5),)


def test_kit_pieces_are_assigned_by_name(kit_dir):
    assigned = {piece: inst.name for piece, inst in samples.assign_pieces(samples.load_drumkit(kit_dir)).items()}
    assert assigned == {"kick": "Kick", "snare": "Snare", "hihat": "Closed HH", "hihat_open": "Open HH",
                        "tom_1": "Tom Hi", "tom_2": "Floor Tom", "crash": "Crash"}


@pytest.mark.parametrize("names, expected", [
    (["BassDrum", "Snare", "Hi Hat Closed", "Hi Hat Opened", "Tom", "Floor Tom", "Crash Left"],
     {"kick": "BassDrum", "snare": "Snare", "hihat": "Hi Hat Closed", "hihat_open": "Hi Hat Opened",
      "tom_1": "Tom", "tom_2": "Floor Tom", "crash": "Crash Left"}),
    (['Kick (Tama Superstar 22")', 'Tom Low (Tama 16")', 'Tom High (Tama 12")', "Snare Rimshot (Pearl)",
      "Snare (Pearl)", 'Hi-Hat Pedal (Paiste)', 'Hi-Hat Semiopen (Paiste)', 'Hi-Hat Closed (Paiste)',
      'Crash/Ride (Paiste 18")', 'Crash (Paiste 18")'],
     {"kick": 'Kick (Tama Superstar 22")', "snare": "Snare (Pearl)", "hihat": 'Hi-Hat Closed (Paiste)',
      "tom_1": 'Tom High (Tama 12")', "tom_2": 'Tom Low (Tama 16")', "crash": 'Crash (Paiste 18")'}),
    (["Cajon Thump", "Maraca", "Cowbell"], {}),
], ids=["bja-style", "forzee-style", "percussion"])
def test_piece_assignment_on_real_kit_naming_styles(names, expected):
    kit = samples.Drumkit("k", Path("k"), tuple(samples.DrumInstrument(n, (samples.DrumLayer("x.wav", 0, 1),))
                                                for n in names))
    assert {piece: inst.name for piece, inst in samples.assign_pieces(kit).items()} == expected


def _events(*hits: tuple[float, float, float]) -> tuple[Event, ...]:
    return tuple(Event(onset, duration, None, velocity) for onset, duration, velocity in hits)


def test_render_plays_velocity_layers_at_their_onsets_with_gains(kit_dir):
    kit = samples.load_drumkit(kit_dir)
    parts = {"kick": _events((0.1, 0.1, 0.3), (0.5, 0.1, 0.9)), "hihat": _events((0.2, 0.05, 0.5), (0.6, 0.3, 1.0))}
    out = samples.render_kit(kit, parts, ("kick", "hihat"), SR, SR, np.random.default_rng(0))
    assert set(out) == {"kick", "hihat"}
    expected = np.zeros(SR)
    expected[1600:1640] += 0.3 * 1.0 * 0.8 * BOX  # soft layer: velocity x layer gain x instrument volume
    expected[8000:8060] += 0.9 * 0.5 * 0.8 * RAMP  # hard layer
    np.testing.assert_allclose(out["kick"], expected, atol=1e-7)
    hat = out["hihat"]
    np.testing.assert_allclose(hat[3200:3210], 0.5 * BOX[:10], atol=1e-7)  # closed hat: the whole sample
    open_start, open_end = 9600, 9600 + round((0.3 + 0.012) * SR)
    np.testing.assert_allclose(hat[open_start + 1:open_end - 200], 0.3, atol=1e-7)  # the open hat sample ...
    assert np.all(np.diff(hat[open_end - 192:open_end]) <= 0) and hat[open_end:].max() == 0  # ... choked


def test_render_resamples_transposes_and_reads_archives(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 500.0 * np.arange(8000) / 8000)  # 1 s at 8 kHz
    instruments = {"Kick": [("k.wav", 0, 1, 1, 0.0, tone)], "Snare": [("s.wav", 0, 1, 1, 12.0, tone)],
                   "Closed HH": [("h.wav", 0, 1, 1, 0.0, BOX)]}
    folder = _write_kit(tmp_path / "Tone Kit", instruments, rate=8000)
    archive = tmp_path / "ToneKit.h2drumkit"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="Tone Kit")
    parts = {"kick": _events((0.0, 0.1, 1.0)), "snare": _events((0.0, 0.1, 1.0))}
    renders = [samples.render_kit(samples.load_drumkit(path), parts, ("kick", "snare"), 2 * SR, SR,
                                  np.random.default_rng(0)) for path in (folder, archive)]
    np.testing.assert_array_equal(renders[0]["kick"], renders[1]["kick"])
    for piece, pitch_hz, length in (("kick", 500.0, SR), ("snare", 1000.0, SR // 2)):  # +12 semitones: twice as fast
        x = renders[0][piece]
        extent = np.flatnonzero(np.abs(x) > 1e-3)[-1] + 1
        assert abs(extent - length) < 0.01 * length, piece
        peak_bin = np.argmax(np.abs(np.fft.rfft(x)))
        assert abs(peak_bin * SR / len(x) - pitch_hz) < 2.0, piece


def test_folders_of_kits_keep_only_usable_ones(tmp_path):
    _write_kit(tmp_path / "kits" / "Full")
    _write_kit(tmp_path / "kits" / "Hands", {"Cajon": KIT["Kick"], "Maraca": KIT["Ride"]})
    (tmp_path / "kits" / "notes").mkdir()
    assert [p.name for p in samples.find_drumkits(tmp_path / "kits")] == ["Full", "Hands"]
    assert [k.name for k in samples.usable_drumkits(tmp_path / "kits")] == ["Test Kit"]
    with pytest.raises(MixdownError, match="no drumkit with"):
        samples.usable_drumkits(tmp_path / "kits" / "Hands")
    with pytest.raises(MixdownError, match="no Hydrogen drumkits"):
        samples.find_drumkits(tmp_path / "kits" / "notes")


@pytest.mark.parametrize("xml, message", [
    ("<drumkit_info><instrumentList>", "not valid XML"),
    ("<song><name>x</name></song>", "expected a <drumkit_info>"),
    ("<drumkit_info><instrument><name>K</name><layer><min>0</min></layer></instrument></drumkit_info>",
     "no <filename>"),
    ("<drumkit_info><instrument><name>K</name><layer><filename>k.wav</filename><max>loud</max></layer>"
     "</instrument></drumkit_info>", "not a number"),
])
def test_bad_drumkit_xml_is_refused(xml, message):
    with pytest.raises(MixdownError, match=message):
        samples.parse_drumkit(xml, "kit")


def test_missing_or_corrupt_samples_are_refused(kit_dir):
    (kit_dir / "snare.wav").unlink()
    with pytest.raises(MixdownError, match="snare.wav"):
        samples.render_kit(samples.load_drumkit(kit_dir), {"kick": ()}, ("kick",), SR, SR, np.random.default_rng(0))
    (kit_dir / "snare.wav").write_bytes(b"not audio")
    with pytest.raises(MixdownError, match="cannot decode sample 'snare.wav'"):
        samples.render_kit(samples.load_drumkit(kit_dir), {"kick": ()}, ("kick",), SR, SR, np.random.default_rng(0))


# --------------------------------------------------------------------------- MIDI


@pytest.mark.parametrize("value, encoded", [  # the examples of the Standard MIDI File specification
    (0x00, "00"), (0x40, "40"), (0x7F, "7F"), (0x80, "81 00"), (0x2000, "C0 00"), (0x3FFF, "FF 7F"),
    (0x4000, "81 80 00"), (0x100000, "C0 80 00"), (0x1FFFFF, "FF FF 7F"), (0x200000, "81 80 80 00"),
    (0x08000000, "C0 80 80 00"), (0x0FFFFFFF, "FF FF FF 7F"),
])
def test_variable_length_quantities_match_the_specification(value, encoded):
    assert samples._vlq(value) == bytes.fromhex(encoded)


def test_midi_file_bytes_for_one_note():
    data = samples.midi_file([Event(0.5, 0.25, 60, 100 / 127)], program=5)
    expected = ("4D546864 00000006 0000 0001 2710"  # MThd, format 0, one track, 10000 ticks per quarter
                "4D54726B 00000018"  # MTrk, 24 bytes
                "00 FF5103 0F4240"  # tempo: 1 000 000 us per quarter, so 0.1 ms per tick
                "00 C005"  # program 5
                "A708 903C64"  # +5000 ticks: note on, middle C, velocity 100
                "9344 803C00"  # +2500 ticks: note off
                "00 FF2F00")  # end of track
    assert data == bytes.fromhex(expected)


def test_midi_notes_of_one_pitch_never_overlap():
    data = samples.midi_file([Event(0.0, 1.0, 60, 0.5), Event(0.5, 0.2, 60, 0.5)], program=0)
    events = data[22 + 7 + 3:]  # after the header, tempo and program
    assert events[:4] == bytes.fromhex("00903C40")  # note on at 0
    # The first note ends where the second starts (+5000 ticks, off before on), then the second ends.
    assert events[4:13] == bytes.fromhex("A708 803C00 00 903C40")
    assert events[13:] == bytes.fromhex("8F50 803C00 00FF2F00")  # +2000 ticks, end of track


# --------------------------------------------------------------------------- installed libraries


@needs_fluidsynth
def test_fluidsynth_plays_the_note_at_its_pitch_and_time_deterministically():
    events = [Event(0.25, 0.5, 69, 0.8)]  # A4 = 440 Hz
    render = samples.render_soundfont(events, 0, GM_SOUNDFONT, SR, SR)
    assert render.shape == (SR,)
    assert np.abs(render[: round(0.24 * SR)]).max() < 1e-6 < np.abs(render[round(0.25 * SR):]).max()
    spectrum = np.abs(np.fft.rfft(render[round(0.25 * SR):round(0.75 * SR)]))
    assert abs(np.argmax(spectrum) * 2.0 - 440.0) < 4.0  # bins are 2 Hz apart
    np.testing.assert_array_equal(samples.render_soundfont(events, 0, GM_SOUNDFONT, SR, SR), render)


def test_bad_soundfonts_are_refused(tmp_path):
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    with pytest.raises(MixdownError, match="not a SoundFont"):
        samples.check_soundfont(fake, SR)


@needs_hydrogen
def test_installed_hydrogen_kits_play_every_core_piece():
    kits = samples.usable_drumkits(HYDROGEN_KITS)
    assert len(kits) >= 5
    song = compose_song(3, MIN_FULL_DURATION_S)
    n = round(MIN_FULL_DURATION_S * SR)
    for kit in kits[:3]:
        out = samples.render_kit(kit, song.parts, DRUM_PIECES, n, SR, np.random.default_rng(0))
        for piece in samples.CORE_PIECES:
            onset = round(song.parts[piece][0].onset_s * SR)
            assert np.abs(out[piece][onset:onset + SR // 20]).max() > 1e-3, (kit.name, piece)
            assert np.abs(out[piece][: max(onset - 1, 0)]).max(initial=0.0) == 0.0, (kit.name, piece)


@needs_hydrogen
@needs_fluidsynth
def test_songs_from_sample_libraries_are_deterministic_and_replace_the_voices():
    plain = SynthConfig(seed=1, sample_rate=SR, duration_s=MIN_FULL_DURATION_S, min_stems=len(AVAILABLE_STEMS))
    config = SynthConfig(seed=1, sample_rate=SR, duration_s=MIN_FULL_DURATION_S, min_stems=len(AVAILABLE_STEMS),
                         drumkit=str(HYDROGEN_KITS), soundfont=str(GM_SOUNDFONT))
    song, again, synthesized = generate_song(0, config), generate_song(0, config), generate_song(0, plain)
    for i, name in enumerate(song.multitrack.names):
        audio = song.multitrack.stem_audio(i)
        np.testing.assert_array_equal(audio, again.multitrack.stem_audio(i), err_msg=name)
        assert 10 ** (-12 / 20) - 1e-6 <= np.abs(audio).max() <= 10 ** (-3 / 20) + 1e-6, name
        assert not np.allclose(audio, synthesized.multitrack.stem_audio(i), atol=1e-3), name
    np.testing.assert_array_equal(song.mix, again.mix)
