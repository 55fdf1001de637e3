"""Fast re-rendering of one multitrack under changing console settings.

A studio session renders the same stems again after every edit. `MixEngine` splits the
console at the fader: each channel's **strip** (EQ -> compressor -> pan, at unity fader)
is computed once with `mixdown.console.channel_strips` and cached under its EQ,
compressor and pan settings; a render then feeds the cached strips, as stereo stems at
centre, to `mixdown.console.render` with each channel's fader, mute and reverb send and
the master settings. So an edit re-processes only the channels whose EQ, compressor or
pan changed, and a fader, mute or send move costs one bus sum, reverb, loudness and
limiter pass.

This is exact: the fader is a scalar gain and the pan a pair of gains, both linear, so
moving them after the strip changes nothing but float rounding; a centred stereo stem
passes the console's balance law at unity. `tests/test_studio_api.py` checks renders
against `console.render` on the original stems.
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
from mixdown.console import DEFAULT_CHUNK_FRAMES, ConsoleTensors, channel_strips, render
from mixdown.dsp.eq import band_list_response_db
from mixdown.dsp.loudness import integrated_loudness
from mixdown.errors import ParamsError
from mixdown.multitrack import Multitrack, Stem
from mixdown.params import ChannelParams, ConsoleParams, EQBand, max_design_freq_hz

ProgressCallback = Callable[[int, int], None]
"""Called with ``(channels_done, channels_total)`` while strips are computed."""


@dataclass(frozen=True)
class RenderResult:
    """A rendered mix and its meter readings.

    Attributes:
        mix: float32 ``(2, frames)``.
        loudness_lufs: integrated loudness (BS.1770), ``-inf`` for silence.
        peak_dbfs: sample peak, ``-inf`` for silence.
    """

    mix: np.ndarray
    loudness_lufs: float
    peak_dbfs: float


class MixEngine:
    """Renders one multitrack again and again, re-processing only what changed.

    Thread-safe: renders are serialised by an internal lock.

    Args:
        multitrack: the stems (in memory or file-backed).
        chunk_frames: block size of the strip processing and of the final render.
        workers: threads computing strips in parallel (the DSP kernels release the GIL).
    """

    def __init__(self, multitrack: Multitrack, chunk_frames: int = DEFAULT_CHUNK_FRAMES, workers: int = 2):
        self.multitrack = multitrack
        self.chunk_frames = chunk_frames
        self.workers = workers
        self._strips: dict[str, tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def render(self, params: ConsoleParams, progress: ProgressCallback | None = None) -> RenderResult:
        """The mix `mixdown.console.render` makes of the multitrack with ``params``.

        Args:
            params: settings for exactly the multitrack's stems, at its sample rate.
            progress: optional callback while strips are (re)computed.

        Returns:
            The mix with its loudness and peak.

        Raises:
            ParamsError: if the settings do not fit the stems.
        """
        mt = self.multitrack
        if params.sample_rate != mt.sample_rate:
            raise ParamsError(f"params are for {params.sample_rate} Hz but the stems are {mt.sample_rate} Hz")
        ordered = params.ordered_like(mt.names)
        with self._lock:
            strips = self._update_strips(ordered.channels, progress)
            buses = Multitrack([Stem(ch.name, stem.instrument, 2, audio=strip)
                                for ch, stem, strip in zip(ordered.channels, mt.stems, strips, strict=True)],
                               mt.sample_rate, mt.num_frames)
            bus_params = replace(ordered, channels=[
                ChannelParams(name=ch.name, instrument=ch.instrument, gain_db=ch.gain_db, mute=ch.mute,
                              reverb_send_db=ch.reverb_send_db) for ch in ordered.channels])
            mix = render(buses, bus_params, chunk_frames=self.chunk_frames)
        with torch.no_grad():
            loudness = float(integrated_loudness(torch.from_numpy(mix)[None], mt.sample_rate)[0])
        return RenderResult(mix, loudness, peak_dbfs(mix))

    def _update_strips(self, channels: list[ChannelParams], progress: ProgressCallback | None) -> list[np.ndarray]:
        """Cached strips for ``channels`` (in track order), computing the stale ones."""
        keys = [strip_key(ch) for ch in channels]
        stale = [i for i, (ch, key) in enumerate(zip(channels, keys)) if self._strips.get(ch.name, ("",))[0] != key]
        if stale:
            with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(stale)))) as pool:
                strips = pool.map(lambda i: self._strip(i, channels[i]), stale)
                for done, (i, strip) in enumerate(zip(stale, strips), start=1):
                    self._strips[channels[i].name] = (keys[i], strip)
                    if progress is not None:
                        progress(done, len(stale))
        return [self._strips[ch.name][1] for ch in channels]

    def _strip(self, index: int, channel: ChannelParams) -> np.ndarray:
        """EQ -> compressor -> pan of track ``index`` at unity fader: float32 ``(2, frames)``."""
        mt = self.multitrack
        unity = replace(channel, gain_db=0.0, mute=False, reverb_send_db=None)
        p = ConsoleTensors.from_params([ConsoleParams(channels=[unity], sample_rate=mt.sample_rate)])
        stereo = torch.tensor([[mt.stems[index].is_stereo]])
        audio = mt.stem_audio(index)
        out = np.empty((2, mt.num_frames), dtype=np.float32)
        state = None
        with torch.no_grad():
            for start in range(0, mt.num_frames, self.chunk_frames):
                block = torch.from_numpy(audio[:, start:start + self.chunk_frames])[None, None]
                panned, state = channel_strips(block, p, stereo, mt.sample_rate, state)
                out[:, start:start + block.shape[-1]] = panned[0, 0].numpy()
        return out


def strip_key(channel: ChannelParams) -> str:
    """What a channel's strip depends on: its EQ bands, compressor and pan."""
    compressor = None if channel.compressor is None else asdict(channel.compressor)
    return json.dumps([[asdict(band) for band in channel.eq], compressor, channel.pan])


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
