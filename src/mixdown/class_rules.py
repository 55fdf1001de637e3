"""Mixing practice per instrument class, as a table (De Man & Reiss 2013).

B. De Man and J. D. Reiss, "A Knowledge-Engineered Autonomous Mixing System", AES
135th Convention, 2013, encode mixing practice from the engineering literature as
rules applied per instrument class. `RULES` holds one row per class of
`mixdown.multitrack`; the rules mixer (`mixdown.mixers.rules`) applies them, the
engineer-like synthetic targets (`mixdown.synth.targets`) draw settings around them and
the forest mixer (`mixdown.mixers.forest`) places its predicted levels on the same scale
(`REFERENCE_LUFS`). The columns (`ClassRule`):

* ``level_lu``: loudness after EQ and compression relative to the mix (ITU-R BS.1770):
  lead vocal loudest, kick, snare and bass close behind, supporting parts lower, cymbals
  and ambience lowest; a 0 LU stem sits at `REFERENCE_LUFS`.
* ``centred``: low-frequency sources and the focal elements (kick, snare, bass, lead
  vocal) stay in the middle; nothing is panned wider than `MAX_PAN`.
* ``highpass_hz``: a 12 dB/oct high-pass below the source's useful range (``None`` for
  kick and bass).
* ``eq``: corrective bands: kick a cut around 400 Hz ("boxiness"); snare, toms, guitars
  and keys a gentle 300 Hz cut against low-mid build-up; vocal a small presence lift at
  3 kHz; cymbals a little air with a 10 kHz shelf.
* ``ratio``, ``depth_db``, ``attack_ms``, ``release_ms``: gentle compression by class,
  the threshold ``depth_db`` under the stem's peak, faster attack for bass and vocal than
  for drums, whose transients are let through; ``ratio=None`` leaves cymbals and ambience
  uncompressed.
* ``reverb_send_db``: a little reverb on non-bass sources, more on snare, toms and vocal;
  ``None`` (no reverb) on kick and bass, where it muddies a mix, and on room microphones.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixdown.params import EQBand


@dataclass(frozen=True)
class ClassRule:
    """What the rules say for one instrument class (see the module docstring)."""

    level_lu: float
    highpass_hz: float | None
    ratio: float | None
    depth_db: float
    attack_ms: float
    release_ms: float
    reverb_send_db: float | None
    eq: tuple[EQBand, ...] = ()
    centred: bool = False


_LOW_MID_CUT = EQBand("peak", 300.0, -2.0, 1.0)

RULES: dict[str, ClassRule] = {
    "kick": ClassRule(-2.0, None, 4.0, 10.0, 15.0, 120.0, None, (EQBand("peak", 400.0, -3.0, 1.4),), centred=True),
    "snare": ClassRule(-3.0, 80.0, 3.0, 8.0, 10.0, 150.0, -16.0, (_LOW_MID_CUT,), centred=True),
    "hihat": ClassRule(-12.0, 300.0, None, 0.0, 10.0, 100.0, -26.0, (EQBand("high_shelf", 10000.0, 2.0, 0.707),)),
    "tom": ClassRule(-8.0, 60.0, 3.0, 8.0, 10.0, 200.0, -18.0, (_LOW_MID_CUT,)),
    "overhead": ClassRule(-9.0, 200.0, None, 0.0, 10.0, 100.0, -22.0, (EQBand("high_shelf", 10000.0, 2.0, 0.707),)),
    "room": ClassRule(-14.0, 100.0, None, 0.0, 10.0, 100.0, None),
    "bass": ClassRule(-2.0, None, 4.0, 8.0, 5.0, 120.0, None, centred=True),
    "guitar": ClassRule(-6.0, 100.0, 2.5, 6.0, 10.0, 150.0, -20.0, (_LOW_MID_CUT,)),
    "keys": ClassRule(-6.0, 80.0, 2.0, 6.0, 15.0, 200.0, -18.0, (_LOW_MID_CUT,)),
    "vocal": ClassRule(0.0, 100.0, 3.0, 8.0, 5.0, 150.0, -14.0, (EQBand("peak", 3000.0, 2.0, 1.0),), centred=True),
    "other": ClassRule(-8.0, 80.0, 2.0, 6.0, 10.0, 150.0, -20.0),
}
"""One row per instrument class of `mixdown.multitrack`."""

MAX_PAN = 0.8
"""Widest pan position the rules give a mono source (nothing is panned hard)."""

REFERENCE_LUFS = -20.0
"""Where a 0 LU stem is placed before the master normalises the mix."""
