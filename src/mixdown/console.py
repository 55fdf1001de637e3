"""The mixing console: channel strips, reverb bus and master bus.

Signal flow per channel: EQ -> compressor -> fader (``gain_db``, mute) -> pan. Each
panned channel feeds the stereo mix bus and, through its post-fader ``reverb_send_db``,
the shared reverb. Master: mix + reverb return -> loudness normalisation to
``target_lufs`` (BS.1770) -> trim (``gain_db``) -> true-peak ceiling limiter.

Two entry points share every processing function:

* `render` streams a `Multitrack` in chunks under ``torch.no_grad`` (memory bounded by
  the chunk size and the stereo mix), for mixing files;
* `render_tensor` processes whole batched tensors with autograd, for training and
  reverse engineering.

Their outputs agree to float rounding (tested).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, make_dataclass, replace
from typing import Any

import numpy as np
import torch

from mixdown.dsp.compressor import compressor
from mixdown.dsp.eq import BAND_TYPE_IDS, BYPASS, parametric_eq
from mixdown.dsp.gain import db_to_amplitude
from mixdown.dsp.limiter import apply_limiter, limiter_gain
from mixdown.dsp.loudness import LoudnessMeter, integrated_loudness
from mixdown.dsp.pan import pan, pan_matrix
from mixdown.dsp.reverb import impulse_response, reverb, stream_block_frames
from mixdown.errors import ParamsError
from mixdown.multitrack import Multitrack
from mixdown.params import (
    EQ_BAND_TYPES,
    SCHEMA,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    MasterParams,
    ParamSpec,
    parse_dataclass,
)

DEFAULT_CHUNK_FRAMES = 1 << 17

ProgressCallback = Callable[[int, int], None]
"""Called with ``(frames_done, frames_total)``."""


def _tensor_fields() -> list[tuple[str, type]]:
    return [("mute", torch.Tensor), ("eq_type", torch.Tensor), *((spec.tensor, torch.Tensor) for spec in SCHEMA)]


class _ConsoleTensorsMethods:
    """`ConsoleParams` of a batch of mixes as tensors (physical units), one field per `SCHEMA` entry.

    Fields are named by `ParamSpec.tensor`: channel fields are ``(batch, tracks)``, band
    fields ``(batch, tracks, bands)`` (empty slots have type `BYPASS` and the schema
    defaults), master fields ``(batch,)``; plus ``mute`` ``(batch, tracks)`` bool and
    ``eq_type`` ``(batch, tracks, bands)`` long. A field that is null in the settings
    (``reverb_send_db``, ``target_lufs``, ``ceiling_dbtp``) holds its spec's ``off`` value
    (-inf or NaN); a channel without compressor holds the compressor defaults (ratio 1:
    the identity).
    """

    @property
    def batch(self) -> int:
        return self.gain_db.shape[0]

    @property
    def tracks(self) -> int:
        return self.gain_db.shape[1]

    @classmethod
    def from_params(cls, batch: list[ConsoleParams], dtype: torch.dtype = torch.float32) -> ConsoleTensors:
        """Stack the settings of mixes with equal channel counts."""
        tracks = {len(p.channels) for p in batch}
        if len(tracks) != 1:
            raise ParamsError(f"cannot batch mixes with different channel counts {sorted(tracks)}")
        bands = max((len(ch.eq) for p in batch for ch in p.channels), default=0)

        def channel_value(ch: ChannelParams, spec: ParamSpec) -> float:
            holder = getattr(ch, spec.group) if spec.group else ch
            if holder is None:  # the processor is off: its neutral defaults
                return spec.default
            value = getattr(holder, spec.key)
            return spec.off if value is None else value

        def band_value(ch: ChannelParams, k: int, spec: ParamSpec) -> float:
            return getattr(ch.eq[k], spec.key) if k < len(ch.eq) else spec.default

        def master_value(m: MasterParams, spec: ParamSpec) -> float:
            value = getattr(getattr(m, spec.group) if spec.group else m, spec.key)
            return spec.off if value is None else value

        def per_channel(get) -> torch.Tensor:
            return torch.tensor([[get(ch) for ch in p.channels] for p in batch], dtype=dtype)

        def per_band(get) -> torch.Tensor:
            return torch.tensor([[[get(ch, k) for k in range(bands)] for ch in p.channels] for p in batch],
                                dtype=dtype).reshape(len(batch), len(batch[0].channels), bands)

        values: dict[str, torch.Tensor] = {}
        for spec in SCHEMA:
            if spec.level == "channel":
                values[spec.tensor] = per_channel(lambda ch, s=spec: channel_value(ch, s))
            elif spec.level == "band":
                values[spec.tensor] = per_band(lambda ch, k, s=spec: band_value(ch, k, s))
            else:
                values[spec.tensor] = torch.tensor([master_value(p.master, spec) for p in batch], dtype=dtype)
        return cls(mute=per_channel(lambda ch: ch.mute).bool(),
                   eq_type=per_band(lambda ch, k: BAND_TYPE_IDS[ch.eq[k].type] if k < len(ch.eq) else BYPASS).long(),
                   **values)

    def to_params(self, index: int, names: list[str], instruments: list[str], sample_rate: int,
                  method: str) -> ConsoleParams:
        """The ``index``-th mix of the batch as editable `ConsoleParams` (rounded to each spec's digits).

        A compressor at its neutral defaults becomes ``None``, as do off values (-inf, NaN).
        """
        def value(spec: ParamSpec, *idx: int) -> float | None:
            v = float(getattr(self, spec.tensor)[(index, *idx)])
            return None if spec.off is not None and not math.isfinite(v) else round(v, spec.digits)

        def assemble(specs: list[ParamSpec], *idx: int) -> dict[str, Any]:
            """Nested JSON-like values of ``specs`` below their level."""
            tree: dict[str, Any] = {}
            for spec in specs:
                holder = tree.setdefault(spec.group, {}) if spec.group else tree
                holder[spec.key] = value(spec, *idx)
            return tree

        channel_specs = [s for s in SCHEMA if s.level == "channel"]
        band_specs = [s for s in SCHEMA if s.level == "band"]
        neutral_compressor = asdict(CompressorParams())
        channels = []
        for t, (name, instrument) in enumerate(zip(names, instruments, strict=True)):
            channel = assemble(channel_specs, t)
            if channel.get("compressor") == neutral_compressor:
                channel["compressor"] = None
            channel["eq"] = [{"type": EQ_BAND_TYPES[int(self.eq_type[index, t, k])], **assemble(band_specs, t, k)}
                             for k in range(self.eq_type.shape[-1]) if int(self.eq_type[index, t, k]) != BYPASS]
            channels.append({"name": name, "instrument": instrument, "mute": bool(self.mute[index, t]), **channel})
        master = assemble([s for s in SCHEMA if s.level == "master"])
        return parse_dataclass(ConsoleParams, {"channels": channels, "master": master, "sample_rate": sample_rate,
                                               "method": method}, "params")

    def select_tracks(self, index: torch.Tensor) -> ConsoleTensors:
        """The same settings restricted to tracks ``index`` (master fields unchanged)."""
        per_track = (f.name for f in fields(self) if getattr(self, f.name).dim() >= 2)
        return replace(self, **{name: getattr(self, name)[:, index] for name in per_track})


ConsoleTensors = make_dataclass("ConsoleTensors", _tensor_fields(), bases=(_ConsoleTensorsMethods,))
ConsoleTensors.__doc__ = _ConsoleTensorsMethods.__doc__
ConsoleTensors.__module__ = __name__


@dataclass
class StripState:
    """Filter and detector memory of a group of channel strips between chunks."""

    eq: list[torch.Tensor] | None = None
    compressor: torch.Tensor | None = None


def _strip_rows(stems: torch.Tensor, p: ConsoleTensors, sample_rate: int,
                state: StripState | None) -> tuple[torch.Tensor, StripState]:
    """EQ -> compressor of every track: ``(batch * tracks, channels, samples)`` and the memory to carry."""
    batch, tracks, channels, samples = stems.shape
    if (batch, tracks) != (p.batch, p.tracks):
        raise ValueError(f"stems {tuple(stems.shape)} do not match settings for ({p.batch}, {p.tracks}) tracks")
    state = state or StripState()
    rows = stems.reshape(batch * tracks, channels, samples)
    flat = lambda t: t.reshape(batch * tracks, *t.shape[2:])  # noqa: E731
    rows, eq_state = parametric_eq(rows, flat(p.eq_type), flat(p.eq_freq_hz), flat(p.eq_gain_db),
                                   flat(p.eq_q), sample_rate, state.eq)
    rows, comp_state = compressor(rows, flat(p.threshold_db), flat(p.ratio), flat(p.attack_ms),
                                  flat(p.release_ms), flat(p.knee_db), flat(p.makeup_db), sample_rate,
                                  state.compressor)
    return rows, StripState(eq=eq_state, compressor=comp_state)


def _fader(p: ConsoleTensors) -> torch.Tensor:
    """Linear fader gains ``(batch, tracks)`` (0 where muted)."""
    return db_to_amplitude(p.gain_db) * ~p.mute


def channel_strips(stems: torch.Tensor, p: ConsoleTensors, stereo: torch.Tensor, sample_rate: int,
                   state: StripState | None = None) -> tuple[torch.Tensor, StripState]:
    """EQ -> compressor -> fader -> pan for every track.

    Args:
        stems: ``(batch, tracks, channels, samples)``, 1 or 2 channels.
        p: settings with matching ``batch`` and ``tracks``.
        stereo: ``(batch, tracks)`` bool, True for genuinely stereo stems.
        sample_rate: in Hz.
        state: memory carried from the previous chunk (streaming), or None.

    Returns:
        ``(panned, state)``: ``(batch, tracks, 2, samples)`` and the memory to carry.
    """
    batch, tracks, _, samples = stems.shape
    rows, state = _strip_rows(stems, p, sample_rate, state)
    panned = pan(rows, p.pan.flatten(), stereo.flatten(), gain=_fader(p).flatten())
    return panned.reshape(batch, tracks, 2, samples), state


def _bus_gains(p: ConsoleTensors) -> torch.Tensor:
    """Gains ``(batch, 2, tracks)`` of each track into the mix bus (1) and the reverb-send bus."""
    return torch.stack([torch.ones_like(p.reverb_send_db), db_to_amplitude(p.reverb_send_db)], dim=1)


def mix_buses(panned: torch.Tensor, p: ConsoleTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum panned tracks ``(batch, tracks, 2, samples)`` to the mix and reverb-send buses, each ``(batch, 2, samples)``."""
    batch, tracks, channels, samples = panned.shape
    buses = torch.bmm(_bus_gains(p).to(panned.dtype), panned.reshape(batch, tracks, channels * samples))
    dry, send = buses.reshape(batch, 2, channels, samples).unbind(dim=1)
    return dry, send


def strip_buses(stems: torch.Tensor, p: ConsoleTensors, stereo: torch.Tensor, sample_rate: int,
                state: StripState | None = None, strip_grad: bool = True) -> tuple[torch.Tensor, StripState]:
    """`channel_strips` summed into the buses (`mix_buses`) in one product, without panned tracks.

    Fader, pan and bus gains form one ``(4, tracks * channels)`` matrix per mix, applied to
    the compressors' outputs: equal to ``mix_buses(channel_strips(...))`` to float rounding.

    Args:
        stems, p, stereo, sample_rate, state: as for `channel_strips`.
        strip_grad: False runs the EQs and compressors without gradients (their settings
            then get none; a cheaper backward when only the faders, pans and sends learn).

    Returns:
        ``(buses, state)``: ``(batch, 2, 2, samples)``, the mix bus then the reverb-send bus,
        and the memory to carry.
    """
    batch, tracks, channels, samples = stems.shape
    with torch.set_grad_enabled(strip_grad and torch.is_grad_enabled()):
        rows, state = _strip_rows(stems, p, sample_rate, state)
    placement = pan_matrix(p.pan.flatten(), stereo.flatten(), channels, gain=_fader(p).flatten())
    weights = torch.einsum("bkt,btoc->bkotc", _bus_gains(p), placement.reshape(batch, tracks, 2, channels))
    buses = torch.bmm(weights.reshape(batch, 4, tracks * channels).to(rows.dtype),
                      rows.reshape(batch, tracks * channels, samples))
    return buses.reshape(batch, 2, 2, samples), state


def reverb_impulse_responses(p: ConsoleTensors, sample_rate: int) -> torch.Tensor:
    """Reverb responses ``(batch, 2, taps)`` (zero-padded to the longest) scaled by the return level."""
    irs = [impulse_response(p.reverb_decay_s[i], float(p.reverb_predelay_ms[i]), sample_rate)
           * db_to_amplitude(p.reverb_return_db[i]) for i in range(p.batch)]
    taps = max(ir.shape[-1] for ir in irs)
    return torch.stack([torch.nn.functional.pad(ir, (0, taps - ir.shape[-1])) for ir in irs])


def _loudness_gain_db(loudness: torch.Tensor, p: ConsoleTensors) -> torch.Tensor:
    """Gain ``(batch,)`` that brings ``loudness`` to the target, plus the master trim."""
    to_target = torch.where(torch.isnan(p.target_lufs) | torch.isinf(loudness),
                            torch.zeros_like(loudness), p.target_lufs - loudness)
    return to_target + p.master_gain_db


def render_tensor(stems: torch.Tensor, p: ConsoleTensors, stereo: torch.Tensor, sample_rate: int,
                  strip_grad: bool = True) -> torch.Tensor:
    """Differentiable render of whole signals.

    Args:
        stems: ``(batch, tracks, channels, samples)``.
        p: the settings, any of whose tensors may require grad.
        stereo: ``(batch, tracks)`` bool.
        sample_rate: in Hz.
        strip_grad: as for `strip_buses`.

    Returns:
        ``(batch, 2, samples)`` mixes. The limiter's gain is applied as a constant
        (no gradient through its detector); everything else is differentiated. Where every
        send of the batch is off (-inf dB), the send bus is silent and the reverb is not run
        (its settings then get no gradient, which would be 0).
    """
    dry, send = strip_buses(stems, p, stereo, sample_rate, strip_grad=strip_grad)[0].unbind(dim=1)
    mix = dry
    if not bool(torch.isneginf(p.reverb_send_db).all()):
        mix = mix + reverb(send, reverb_impulse_responses(p, sample_rate))[0]
    mix = mix * db_to_amplitude(_loudness_gain_db(integrated_loudness(mix, sample_rate), p))[:, None, None]
    limited = []
    for i in range(p.batch):
        if torch.isnan(p.ceiling_dbtp[i]):
            limited.append(mix[i])
            continue
        gain = limiter_gain(mix[i].detach().cpu().numpy(), float(p.ceiling_dbtp[i]), sample_rate)
        limited.append(mix[i] * torch.from_numpy(gain).to(mix))
    return torch.stack(limited)


def render(multitrack: Multitrack, params: ConsoleParams, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
           progress: ProgressCallback | None = None) -> np.ndarray:
    """Render a multitrack to a stereo mix, streaming it in chunks.

    Args:
        multitrack: the stems (in memory or file-backed).
        params: settings for exactly the multitrack's stems (any order).
        chunk_frames: frames per block of the channel strips. The master bus (reverb,
            loudness meter) runs on the mix in blocks of
            `mixdown.dsp.reverb.stream_block_frames`, as the strips fill it.
        progress: optional callback, called per chunk of the strips.

    Returns:
        float32 ``(2, frames)`` mix at the multitrack's rate.
    """
    params.check_matches(multitrack.names)
    if params.sample_rate != multitrack.sample_rate:
        raise ParamsError(f"params are for {params.sample_rate} Hz but the stems are {multitrack.sample_rate} Hz")
    sample_rate, total = multitrack.sample_rate, multitrack.num_frames
    p = ConsoleTensors.from_params([params.ordered_like(multitrack.names)])
    # Allocated by torch, in 4-KiB pages: numpy advises huge pages for large arrays, and
    # faulting those in after other large allocations stalled on the kernel's memory
    # compaction: fresh stems loaded after a pedalboard render, as benchmarks/render_speed.py
    # runs it, rendered in 1.0-1.1 s that way and 0.81-0.86 s this way.
    mix = torch.zeros(2, total, dtype=torch.float32).numpy()
    with torch.no_grad():
        ir = reverb_impulse_responses(p, sample_rate)
        ir_spectra: dict[int, torch.Tensor] = {}
        meter = LoudnessMeter(sample_rate)
        tail = None
        start = 0
        sends = _dry_into_mix(_stream_strips(multitrack, p, chunk_frames, strip_buses), mix, progress)
        for send in _regroup(sends, stream_block_frames(ir.shape[-1])):
            wet, tail = reverb(send, ir, tail, ir_spectra)
            stop = start + send.shape[-1]
            mix[:, start:stop] += wet[0].numpy()
            meter.update(torch.from_numpy(mix[None, :, start:stop]))
            start = stop
        gain = float(db_to_amplitude(_loudness_gain_db(meter.integrated().float(), p))[0])
    mix *= gain
    ceiling = float(p.ceiling_dbtp[0])
    if math.isnan(ceiling):
        _warn_clipping(mix)
        return mix
    apply_limiter(mix, ceiling, sample_rate)  # in place; its last stage verifies the ceiling
    return mix


def _dry_into_mix(groups: Iterator[list[tuple[torch.Tensor, torch.Tensor]]], mix: np.ndarray,
                  progress: ProgressCallback | None) -> Iterator[torch.Tensor]:
    """Write the mix bus of each chunk of `strip_buses` groups into ``mix (2, frames)``; yield its send bus.

    Yields:
        ``(1, 2, samples)`` reverb sends, chunk by chunk.
    """
    done = 0
    for group_buses in groups:
        buses = group_buses[0][1]
        for _, out in group_buses[1:]:
            buses = buses + out
        n = buses.shape[-1]
        mix[:, done:done + n] = buses[0, 0].numpy()
        done += n
        if progress is not None:
            progress(done, mix.shape[-1])
        yield buses[:, 1]


def _regroup(blocks: Iterator[torch.Tensor], frames: int) -> Iterator[torch.Tensor]:
    """The same signal ``(..., samples)`` in blocks of ``frames`` samples (the last one shorter)."""
    pending: list[torch.Tensor] = []
    count = 0
    for block in blocks:
        pending.append(block)
        count += block.shape[-1]
        while count >= frames:
            joined = torch.cat(pending, dim=-1)
            yield joined[..., :frames]
            pending, count = [joined[..., frames:]], count - frames
    if count:
        yield torch.cat(pending, dim=-1)


def _warn_clipping(mix: np.ndarray) -> None:
    """With the limiter off, warn (``UserWarning``) when samples exceed full scale: integer files clip them."""
    clipped = int(np.count_nonzero(np.abs(mix) > 1.0))
    if clipped:
        warnings.warn(f"the limiter is off (ceiling_dbtp: null) and {clipped} of {mix.size} samples "
                      f"({clipped / mix.size:.2%}) exceed full scale (peak {float(np.abs(mix).max()):.2f}); "
                      "integer files clip them: lower master.gain_db or set a ceiling", UserWarning, stacklevel=3)


Strip = Callable[[torch.Tensor, ConsoleTensors, torch.Tensor, int, StripState | None],
                 tuple[torch.Tensor, StripState]]
"""`channel_strips` or `strip_buses`: ``(stems, p, stereo, sample_rate, state) -> (out, state)``."""


def _stream_strips(multitrack: Multitrack, p: ConsoleTensors, chunk_frames: int,
                   strip: Strip) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
    """``strip`` over a multitrack, chunk by chunk: yields ``[(track_index, out), ...]``, one per group.

    Mono stems are processed as one channel and stereo stems as two (two groups, each
    with its own carried state), so mono stems cost half.
    """
    is_stereo = torch.from_numpy(multitrack.stereo_mask())
    groups = [(idx, width, p.select_tracks(idx))
              for idx, width in ((torch.nonzero(~is_stereo).flatten(), 1), (torch.nonzero(is_stereo).flatten(), 2))
              if len(idx)]
    states: list[StripState | None] = [None] * len(groups)
    for block in multitrack.iter_chunks(chunk_frames):
        block = torch.from_numpy(block)
        outputs = []
        for g, (idx, width, group_params) in enumerate(groups):
            stems = block[None, :, :width] if len(groups) == 1 else block[idx, :width].unsqueeze(0)
            out, states[g] = strip(stems, group_params, is_stereo[idx].unsqueeze(0), multitrack.sample_rate,
                                   states[g])
            outputs.append((idx, out))
        yield outputs


def channel_loudness(multitrack: Multitrack, params: ConsoleParams,
                     chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> np.ndarray:
    """Loudness (LUFS) of each stem after its EQ and compressor, before fader and pan.

    Returns:
        ``(tracks,)`` in the multitrack's stem order; ``-inf`` for silent stems.
    """
    neutral = ConsoleParams(
        channels=[replace(ch, gain_db=0.0, pan=0.0, mute=False) for ch in params.ordered_like(multitrack.names).channels],
        sample_rate=params.sample_rate, method=params.method)
    p = ConsoleTensors.from_params([neutral])
    meter = LoudnessMeter(multitrack.sample_rate, batch=multitrack.num_tracks)
    with torch.no_grad():
        for groups in _stream_strips(multitrack, p, chunk_frames, channel_strips):
            panned = torch.empty(multitrack.num_tracks, 2, groups[0][1].shape[-1])
            for idx, out in groups:
                panned[idx] = out[0]
            meter.update(panned)
    return meter.integrated().numpy()
