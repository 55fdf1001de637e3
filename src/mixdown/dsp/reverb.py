"""The shared stereo reverb: a filtered-noise impulse response and FFT convolution.

The impulse response is decorrelated stereo noise (fixed seed, so renders are
deterministic) under an exponential envelope that falls 60 dB in ``decay_s``, with the
band above 4 kHz decaying twice as fast (air absorption), after a pre-delay. It is
normalised to unit energy per side so ``return_db`` sets the wet level directly. The
envelope is a torch function of ``decay_s``, so its gradient is available to training.

Streaming is overlap-add: each block is convolved by one FFT of the block plus the
response, and the part past the block (the tail, ``taps - 1`` samples) is carried into
the next block, so a streamed render equals the whole-signal convolution to float
rounding. The response's spectrum per FFT size is cached by the caller (``spectra``).
The console streams the send in blocks of `stream_block_frames`, which fill FFTs of at
least `STREAM_FFT_FRAMES` points exactly: with a 1.6 s response, per output sample an FFT
of 2^19 points filled this way costs about 0.8 of one of 2^18 points filled by a
2^17-sample block, and it is one parallel call where that is three and a half (measured,
torch 2.13, one thread). Larger is cheaper still but not as exact: torch's (MKL's)
float32 transforms of 2^20 points and more are off by 6e-6 rms relative to float64,
those of 2^19 and less by 3e-7 (the convolution of noise by the response). A uniformly
partitioned convolution with a frequency-domain delay line was tried: it took 4.8 s of an
8.8 s profiled render (8 stereo stems x 60 s, cProfile) in its per-partition complex
products and copies; it pays only when blocks are much shorter than the response
(real-time, low-latency playback).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

NOISE_SEED = 1234
HIGH_BAND_HZ = 4000.0
MAX_DECAY_S = 8.0
STREAM_FFT_FRAMES = 1 << 19
"""Smallest FFT, in points, of a streamed block (`stream_block_frames`)."""


@functools.lru_cache(maxsize=2)
def _noise_bands(length: int, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed stereo noise split at `HIGH_BAND_HZ`: ``(low, high)``, each ``(2, length)`` float64.

    The split is a constant (no gradient), so it uses numpy's FFT (pocketfft), which gives
    the same bits in every process; torch's (MKL's) float64 transforms of these lengths
    differed in the last bit between processes, and so did every render with a reverb.
    The last two are kept (read-only: callers must not modify them), so re-rendering with
    the same decay (the studio's edits) skips the transforms (20 ms at 1.6 s, 44.1 kHz).
    """
    generator = torch.Generator().manual_seed(NOISE_SEED)
    noise = torch.randn(2, length, generator=generator, dtype=torch.float64).numpy()
    spectrum = np.fft.rfft(noise)
    low = np.fft.irfft(spectrum * (np.fft.rfftfreq(length, 1.0 / sample_rate) < HIGH_BAND_HZ), n=length)
    return torch.from_numpy(low), torch.from_numpy(noise - low)


def impulse_response(decay_s: torch.Tensor, predelay_ms: float, sample_rate: int) -> torch.Tensor:
    """Stereo reverb impulse response.

    Args:
        decay_s: scalar tensor, RT60 of the low band in seconds.
        predelay_ms: silence before the tail starts.
        sample_rate: in Hz.

    Returns:
        ``(2, length)`` with ``length`` covering pre-delay plus the low band's RT60.
    """
    predelay = int(round(predelay_ms * sample_rate / 1000.0))
    tail = int(math.ceil(float(decay_s.detach().clamp(max=MAX_DECAY_S)) * sample_rate))
    low, high = _noise_bands(tail, sample_rate)
    t = torch.arange(tail, dtype=torch.float64) / sample_rate
    rate = 3.0 * math.log(10.0) / decay_s.double()  # amplitude falls 60 dB per decay_s
    ir = low * torch.exp(-rate * t) + high * torch.exp(-2.0 * rate * t)
    ir = ir / ir.pow(2).sum(dim=-1, keepdim=True).sqrt()
    return torch.nn.functional.pad(ir, (predelay, 0)).to(decay_s.dtype)


def fft_convolve(x: torch.Tensor, ir: torch.Tensor,
                 spectra: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """Full linear convolution along the last axis.

    Args:
        x: ``(..., channels, samples)``.
        ir: ``(..., channels, taps)``, one response per channel.
        spectra: optional cache of ``ir``'s spectrum by FFT size, filled as needed
            (saves one FFT per block when streaming with a fixed response).

    Returns:
        ``(..., channels, samples + taps - 1)``.
    """
    n = x.shape[-1] + ir.shape[-1] - 1
    size = 1 << (n - 1).bit_length()
    if spectra is None:
        spectra = {}
    if size not in spectra:
        spectra[size] = torch.fft.rfft(ir, n=size)
    ir_spectrum = spectra[size]
    return torch.fft.irfft(torch.fft.rfft(x, n=size) * ir_spectrum, n=size)[..., :n]


def stream_block_frames(taps: int) -> int:
    """Send frames per `reverb` call when streaming a response of ``taps`` samples.

    The block plus the response's ``taps - 1``-sample tail fill an FFT of
    ``max(STREAM_FFT_FRAMES, 2^ceil(log2(2 taps)))`` points exactly, so that at least half
    of each FFT's output is new signal.
    """
    size = max(STREAM_FFT_FRAMES, 1 << (2 * taps - 1).bit_length())
    return size - taps + 1


def reverb(send: torch.Tensor, ir: torch.Tensor, tail: torch.Tensor | None = None,
           spectra: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Convolve a block of the send bus with the reverb, carrying the tail (overlap-add).

    Args:
        send: ``(batch, 2, samples)`` summed reverb sends.
        ir: ``(batch, 2, taps)`` or ``(2, taps)``, the same on every block of a stream.
        tail: ``(batch, 2, taps - 1)`` returned by the previous block, or None on the first.
        spectra: cache of the response's spectra by FFT size (see `fft_convolve`).

    Returns:
        ``(wet, tail)``: ``(batch, 2, samples)`` and the tail for the next block.

    Raises:
        ValueError: on a tail that is not ``taps - 1`` samples long (another response's).
    """
    samples = send.shape[-1]
    full = fft_convolve(send, ir, spectra)
    if tail is not None:
        if tail.shape[-1] != ir.shape[-1] - 1:
            raise ValueError(f"tail has {tail.shape[-1]} samples; this response carries {ir.shape[-1] - 1}")
        full[..., :tail.shape[-1]] += tail  # full has samples + taps - 1 samples, so the tail always fits
    return full[..., :samples], full[..., samples:]
