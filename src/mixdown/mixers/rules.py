"""A knowledge-engineered mixer after De Man & Reiss (2013).

B. De Man and J. D. Reiss, "A Knowledge-Engineered Autonomous Mixing System", AES
135th Convention, 2013, encode mixing practice from the engineering literature as
rules applied per instrument class. This mixer implements that approach with these
rules (each a column of the class table `mixdown.class_rules.RULES`):

1. **Loudness balance.** Every stem's loudness after its EQ and compressor is measured
   (ITU-R BS.1770) and its fader set so that the stem lands at a per-class target
   relative to the mix (``level_lu``): lead vocal loudest, kick, snare and bass close
   behind, supporting parts lower, cymbals and ambience lowest. This follows the
   paper's rule that the lead element and the rhythm section's low end are equally
   loud and other sources sit under them.
2. **Panning.** Low-frequency sources and the focal elements (kick, snare, bass, lead
   vocal) stay centred, as low frequencies carry most energy and their localisation
   matters least. Drums are placed from the drummer's point of view: hi-hat left, toms
   spread from high (left) to floor (right) in the order they are named. Other sources
   of a class alternate left/right at growing width to reduce masking; nothing is
   panned hard (|pan| <= 0.8). Stereo stems (overheads, rooms) keep their image.
   Stems named as a left/right pair (``_L``/``_R``) are panned to 0.8 on their side.
3. **High-pass filtering.** Every source but kick and bass gets a 12 dB/oct high-pass
   below its useful range (``highpass_hz``), removing rumble and low-end masking.
4. **Corrective EQ.** Kick: a cut around 400 Hz ("boxiness"); snare, toms, guitars and
   keys: a gentle 300 Hz cut against low-mid build-up; vocal: a small presence lift
   at 3 kHz; cymbals: a little air with a 10 kHz shelf.
5. **Dynamics.** Gentle compression by class (``ratio``; threshold ``depth_db`` below
   the stem's peak level), faster attack for bass and vocal than for drums, whose
   transients are let through; cymbals and ambience are left uncompressed.
6. **Reverb.** A little reverb on non-bass sources (``reverb_send_db``), more on snare,
   toms and vocal, none on kick and bass (reverb on low frequencies muddies a mix).

Finally the master bus normalises the mix to -14 LUFS with a -1 dBTP ceiling.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np

from mixdown.class_rules import MAX_PAN, REFERENCE_LUFS, RULES
from mixdown.console import channel_loudness
from mixdown.mixers import SettingsMethod
from mixdown.multitrack import Multitrack
from mixdown.params import SPECS, ChannelParams, CompressorParams, ConsoleParams, EQBand, clamp_freq_hz

_SIDE = re.compile(r"(?:^|[^a-z])(l|left|r|right)$")


def _pair_side(name: str) -> float | None:
    """-1 / +1 for stems named as the left / right half of a pair, else None."""
    match = _SIDE.search(name.lower())
    if match is None:
        return None
    return -1.0 if match.group(1).startswith("l") else 1.0


def pan_positions(names: list[str], instruments: list[str], stereo: np.ndarray) -> list[float]:
    """Rule 2: a pan position per stem."""
    positions = [0.0] * len(names)
    toms, spread = [], []
    for i, (name, instrument) in enumerate(zip(names, instruments, strict=True)):
        side = _pair_side(name)
        if stereo[i] or RULES[instrument].centred:
            continue
        if side is not None:
            positions[i] = side * MAX_PAN
        elif instrument == "hihat":
            positions[i] = -0.3
        elif instrument == "tom":
            toms.append(i)
        else:
            spread.append(i)
    # High tom left to floor tom right, in name order (drummer's perspective).
    for rank, i in enumerate(sorted(toms, key=lambda i: names[i].lower())):
        positions[i] = -0.4 + 0.9 * rank / (len(toms) - 1) if len(toms) > 1 else 0.2
    # Everything else alternates sides, widening, so neighbours in a class part ways.
    for rank, i in enumerate(sorted(spread, key=lambda i: (instruments[i], names[i].lower()))):
        positions[i] = (-1.0 if rank % 2 == 0 else 1.0) * min(0.35 + 0.15 * (rank // 2), MAX_PAN)
    return [round(p, 3) for p in positions]


class RulesMixer(SettingsMethod):
    """Rule-based mixing by instrument class (see the module docstring for the rules)."""

    name = "rules"

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        return self.predict_with_loudness(multitrack)[0]

    def predict_with_loudness(self, multitrack: Multitrack) -> tuple[ConsoleParams, np.ndarray]:
        """The settings, and each stem's loudness (LUFS) after their EQ and compressor
        (`mixdown.console.channel_loudness`, ``(tracks,)``), which rule 1 measured."""
        stereo = multitrack.stereo_mask()
        pans = pan_positions(multitrack.names, multitrack.instruments, stereo)
        channels = []
        for i, (name, instrument) in enumerate(zip(multitrack.names, multitrack.instruments, strict=True)):
            rule = RULES[instrument]
            eq = [replace(band, freq_hz=clamp_freq_hz(band.freq_hz, multitrack.sample_rate)) for band in
                  ([EQBand("highpass", rule.highpass_hz, 0.0, 0.707)] if rule.highpass_hz else []) + list(rule.eq)]
            compressor = None
            if rule.ratio is not None:
                peak = float(np.abs(multitrack.stem_audio(i)).max())
                peak_db = 20.0 * math.log10(peak) if peak > 0 else -60.0
                threshold = min(max(peak_db - rule.depth_db, SPECS["threshold_db"].minimum), 0.0)
                compressor = CompressorParams(threshold_db=round(threshold, 2), ratio=rule.ratio,
                                              attack_ms=rule.attack_ms, release_ms=rule.release_ms, knee_db=6.0)
            channels.append(ChannelParams(name=name, instrument=instrument, pan=pans[i], eq=eq,
                                          compressor=compressor, reverb_send_db=rule.reverb_send_db))
        params = ConsoleParams(channels=channels, sample_rate=multitrack.sample_rate, method=self.name)
        loudness = channel_loudness(multitrack, params)  # rule 1, after EQ and compression
        gain_spec = SPECS["gain_db"]
        for ch, lufs in zip(params.channels, loudness, strict=True):
            if math.isfinite(lufs):
                gain = REFERENCE_LUFS + RULES[ch.instrument].level_lu - float(lufs)
                ch.gain_db = round(min(max(gain, gain_spec.minimum), gain_spec.maximum), 2)
        return params, loudness
