"""Fast re-rendering of one multitrack under changing console settings.

A studio session renders the same stems again after every edit. `MixEngine` splits the
console after the compressor: each channel's **strip** (EQ -> compressor, at unity fader,
before the pan) is computed once and cached under its EQ and compressor settings; a
render then feeds the cached strips, as stems with the channel's fader, pan, mute and
reverb send and no EQ or compressor, to `mixdown.console.render`'s buses. So an edit
re-processes only the channels whose EQ or compressor changed, and a fader, pan, mute or
send move costs one bus sum, reverb, loudness and limiter pass.

This is exact: the fader is a scalar gain and the pan a pair of gains, both linear and
after the compressor in the console (EQ -> compressor -> fader -> pan), so applying them
to the cached strip is what the console does. `tests/test_studio_api.py` checks renders
against `console.render` on the original stems.

The same strips are what the studio page plays for its live preview (fader, pan, mute,
solo and sends applied in the browser while the exact mix renders), with each compressor's
gain reduction over time (`Strip.gain_reduction_db`) for the page's meters. The master
stage is run here rather than inside `console.render` so that its figures reach the page:
the gain that loudness normalisation and trim applied (`RenderResult.master_gain_db`, the
preview's master gain) and the mix's true peak next to the limiter's ceiling.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from mixdown.audio import peak_dbfs
from mixdown.console import DEFAULT_CHUNK_FRAMES, ConsoleTensors, render
from mixdown.dsp.compressor import compressor
from mixdown.dsp.eq import band_list_response_db, parametric_eq
from mixdown.dsp.gain import db_to_amplitude
from mixdown.dsp.limiter import apply_limiter
from mixdown.dsp.loudness import integrated_loudness
from mixdown.dsp.true_peak import true_peak_dbtp
from mixdown.errors import ParamsError
from mixdown.multitrack import Multitrack, Stem
from mixdown.params import ChannelParams, ConsoleParams, EQBand, max_design_freq_hz

ProgressCallback = Callable[[int, int], None]
"""Called with ``(channels_done, channels_total)`` while strips are computed."""

GAIN_REDUCTION_HOP = 512
"""Frames per value of a strip's gain-reduction envelope (11.6 ms at 44.1 kHz); divides the chunk size."""

_BUS_TRIM_DB = -80.0
"""The buses are summed this far down and scaled back: the mix before loudness normalisation may
pass full scale, and `mixdown.console.render` (with its limiter off) warns of clipping, which
does not apply to this intermediate (never written to a file). Scaling by a constant changes
nothing but float rounding."""

_SILENT = 1e-6
"""Below this input level (-120 dBFS) a frame's gain reduction is not measured (reads 0 dB)."""


@dataclass(frozen=True)
class Strip:
    """One channel after its EQ and compressor, at unity fader, before the pan.

    Attributes:
        key: `strip_key` of the settings it was computed with.
        audio: float32 ``(channels, frames)``, the stem's own channel count.
        gain_reduction_db: float32 ``(ceil(frames / GAIN_REDUCTION_HOP),)``: the compressor's
            gain reduction (dB, >= 0, makeup not included) at the loudest sample of each hop
            of `GAIN_REDUCTION_HOP` frames; None without a compressor.
    """

    key: str
    audio: np.ndarray
    gain_reduction_db: np.ndarray | None


@dataclass(frozen=True)
class RenderResult:
    """A rendered mix and its meter readings.

    Attributes:
        mix: float32 ``(2, frames)``.
        loudness_lufs: integrated loudness (BS.1770), ``-inf`` for silence.
        peak_dbfs: sample peak, ``-inf`` for silence.
        true_peak_dbtp: true peak (BS.1770 Annex 2, `mixdown.dsp.true_peak`), ``-inf`` for silence.
        master_gain_db: the gain the master applied before its limiter: loudness
            normalisation plus trim.
    """

    mix: np.ndarray
    loudness_lufs: float
    peak_dbfs: float
    true_peak_dbtp: float = -math.inf
    master_gain_db: float = 0.0


class MixEngine:
    """Renders one multitrack again and again, re-processing only what changed.

    Thread-safe: renders are serialised by an internal lock.

    Args:
        multitrack: the stems (in memory or file-backed).
        chunk_frames: block size of the strip processing and of the final render (a
            multiple of `GAIN_REDUCTION_HOP`).
        workers: threads computing strips in parallel (the DSP kernels release the GIL).
    """

    def __init__(self, multitrack: Multitrack, chunk_frames: int = DEFAULT_CHUNK_FRAMES, workers: int = 2):
        if chunk_frames % GAIN_REDUCTION_HOP:
            raise ValueError(f"chunk_frames {chunk_frames} is not a multiple of {GAIN_REDUCTION_HOP}")
        self.multitrack = multitrack
        self.chunk_frames = chunk_frames
        self.workers = workers
        self._strips: dict[str, Strip] = {}
        self._lock = threading.Lock()

    def render(self, params: ConsoleParams, progress: ProgressCallback | None = None) -> RenderResult:
        """The mix `mixdown.console.render` makes of the multitrack with ``params``.

        Args:
            params: settings for exactly the multitrack's stems, at its sample rate.
            progress: optional callback while strips are (re)computed.

        Returns:
            The mix with its loudness, peaks and master gain.

        Raises:
            ParamsError: if the settings do not fit the stems.
        """
        mt = self.multitrack
        ordered = self._ordered(params)
        master = ordered.master
        with self._lock:
            strips = self._update_strips(ordered.channels, progress)
            buses = Multitrack([Stem(ch.name, stem.instrument, strip.audio.shape[0], audio=strip.audio)
                                for ch, stem, strip in zip(ordered.channels, mt.stems, strips, strict=True)],
                               mt.sample_rate, mt.num_frames)
            bus_params = replace(ordered, channels=[
                ChannelParams(name=ch.name, instrument=ch.instrument, gain_db=ch.gain_db, pan=ch.pan, mute=ch.mute,
                              reverb_send_db=ch.reverb_send_db) for ch in ordered.channels],
                master=replace(master, gain_db=_BUS_TRIM_DB, target_lufs=None, ceiling_dbtp=None))
            quiet = render(buses, bus_params, chunk_frames=self.chunk_frames)
        # The console's master stage (mixdown.console.render): normalise to the target, trim, limit.
        mix = quiet
        mix *= np.float32(1.0 / float(db_to_amplitude(torch.tensor(_BUS_TRIM_DB, dtype=torch.float32))))
        raw_lufs = _loudness(mix, mt.sample_rate)  # at full level: BS.1770's -70 LUFS gate is absolute
        to_target = master.target_lufs - raw_lufs if master.target_lufs is not None and math.isfinite(raw_lufs) else 0.0
        gain_db = to_target + master.gain_db
        mix *= np.float32(10.0 ** (gain_db / 20.0))
        if master.ceiling_dbtp is not None:
            apply_limiter(mix, master.ceiling_dbtp, mt.sample_rate)
        return RenderResult(mix, _loudness(mix, mt.sample_rate), peak_dbfs(mix),
                            float(true_peak_dbtp(mix, mt.sample_rate)), gain_db)

    def strip(self, params: ConsoleParams, name: str) -> Strip:
        """Channel ``name``'s strip under ``params`` (computed if not cached)."""
        ordered = self._ordered(params)
        with self._lock:
            (strip,) = self._update_strips([ordered.channel(name)], None)
        return strip

    def _ordered(self, params: ConsoleParams) -> ConsoleParams:
        if params.sample_rate != self.multitrack.sample_rate:
            raise ParamsError(f"params are for {params.sample_rate} Hz but the stems are "
                              f"{self.multitrack.sample_rate} Hz")
        return params.ordered_like(self.multitrack.names)

    def _update_strips(self, channels: list[ChannelParams], progress: ProgressCallback | None) -> list[Strip]:
        """Cached strips for ``channels``, computing the stale ones."""
        names = self.multitrack.names
        keys = [strip_key(ch) for ch in channels]
        stale = [i for i, (ch, key) in enumerate(zip(channels, keys)) if getattr(self._strips.get(ch.name), "key", None)
                 != key]
        if stale:
            with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(stale)))) as pool:
                strips = pool.map(lambda i: self._strip(names.index(channels[i].name), channels[i]), stale)
                for done, (i, strip) in enumerate(zip(stale, strips), start=1):
                    self._strips[channels[i].name] = strip
                    if progress is not None:
                        progress(done, len(stale))
        return [self._strips[ch.name] for ch in channels]

    def _strip(self, index: int, channel: ChannelParams) -> Strip:
        """EQ -> compressor of track ``index`` (the first two stages of `mixdown.console.channel_strips`)."""
        mt = self.multitrack
        p = ConsoleTensors.from_params([ConsoleParams(channels=[channel], sample_rate=mt.sample_rate)])
        row = lambda t: t.reshape(1, *t.shape[2:])
        audio = mt.stem_audio(index)
        out = np.empty(audio.shape, dtype=np.float32)
        hops = -(-mt.num_frames // GAIN_REDUCTION_HOP)
        reduction = None if channel.compressor is None else np.zeros(hops, dtype=np.float32)
        eq_state = comp_state = None
        with torch.no_grad():
            for start in range(0, mt.num_frames, self.chunk_frames):
                block = torch.from_numpy(np.ascontiguousarray(audio[:, start:start + self.chunk_frames]))[None]
                equalised, eq_state = parametric_eq(block, row(p.eq_type), row(p.eq_freq_hz), row(p.eq_gain_db),
                                                    row(p.eq_q), mt.sample_rate, eq_state)
                compressed, comp_state = compressor(equalised, row(p.threshold_db), row(p.ratio), row(p.attack_ms),
                                                    row(p.release_ms), row(p.knee_db), row(p.makeup_db),
                                                    mt.sample_rate, comp_state)
                out[:, start:start + block.shape[-1]] = compressed[0].numpy()
                if reduction is not None:
                    first = start // GAIN_REDUCTION_HOP
                    values = _gain_reduction_db(equalised[0].numpy(), compressed[0].numpy(),
                                                channel.compressor.makeup_db)
                    reduction[first:first + len(values)] = values
        return Strip(strip_key(channel), out, reduction)


def _gain_reduction_db(before: np.ndarray, after: np.ndarray, makeup_db: float) -> np.ndarray:
    """Per hop: the compressor's gain reduction at the hop's loudest input sample (0 where silent).

    The compressor multiplies every channel by one gain (stereo-linked), so the ratio of
    output to input at any sample is that gain, exactly: ``makeup - reduction`` in dB.
    """
    frames = before.shape[-1]
    hops = -(-frames // GAIN_REDUCTION_HOP)
    pad = hops * GAIN_REDUCTION_HOP - frames
    x = np.pad(before, ((0, 0), (0, pad))).reshape(before.shape[0], hops, GAIN_REDUCTION_HOP)
    y = np.pad(after, ((0, 0), (0, pad))).reshape(after.shape[0], hops, GAIN_REDUCTION_HOP)
    magnitude = np.abs(x).max(axis=0)                      # (hops, hop): loudest channel per sample
    loudest = magnitude.argmax(axis=1)                       # (hops,)
    channel = np.abs(x).argmax(axis=0)[np.arange(hops), loudest]
    level_in = x[channel, np.arange(hops), loudest].astype(np.float64)
    level_out = y[channel, np.arange(hops), loudest].astype(np.float64)
    audible = np.abs(level_in) > _SILENT
    gain_db = np.zeros(hops)
    gain_db[audible] = 20.0 * np.log10(np.abs(level_out[audible] / level_in[audible]))
    return np.where(audible, np.maximum(makeup_db - gain_db, 0.0), 0.0).astype(np.float32)


def _loudness(mix: np.ndarray, sample_rate: int) -> float:
    with torch.no_grad():
        return float(integrated_loudness(torch.from_numpy(mix)[None], sample_rate)[0])


def strip_key(channel: ChannelParams) -> str:
    """What a channel's strip depends on: its EQ bands and compressor."""
    compressor_settings = None if channel.compressor is None else asdict(channel.compressor)
    return json.dumps([[asdict(band) for band in channel.eq], compressor_settings])
CURVE_FLOOR_DB = -240.0
"""Lowest gain `eq_curve_db` draws."""


def eq_curve_db(bands: list[EQBand], freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Magnitude response in dB of an EQ (the product of its RBJ biquads, `mixdown.dsp.eq.eq_response_db`).

    Args:
        bands: the channel's EQ bands (empty: flat).
        freqs_hz: ``(F,)`` frequencies, each under Nyquist.
        sample_rate: in Hz.

    Returns:
        ``(F,)`` gains in dB, floored at `CURVE_FLOOR_DB`.
    """
    return np.maximum(band_list_response_db(bands, freqs_hz, sample_rate), CURVE_FLOOR_DB)


def display_freqs_hz(sample_rate: int, points: int = 96) -> np.ndarray:
    """Log-spaced frequencies from 20 Hz to 20 kHz (or `mixdown.params.max_design_freq_hz`) for EQ plots."""
    top = min(20000.0, max_design_freq_hz(sample_rate))
    return np.exp(np.linspace(math.log(20.0), math.log(top), points))
