"""The shared stereo reverb: a filtered-noise impulse response and FFT convolution.

The impulse response is decorrelated stereo noise (fixed seed, so renders are
deterministic) under an exponential envelope that falls 60 dB in ``decay_s``, with the
band above 4 kHz decaying twice as fast (air absorption), after a pre-delay. It is
normalised to unit energy per side so ``return_db`` sets the wet level directly. The
envelope is a torch function of ``decay_s``, so its gradient is available to training.

Two convolutions, equal to float rounding: with autograd, one FFT of the whole signal
(`fft_convolve`); streamed without it, uniformly partitioned overlap-add convolution
with a frequency-domain delay line (`ReverbState`; W. G. Gardner, "Efficient
convolution without input-output delay", JAES 43(3), 1995, uniform partitions; F.
Wefers, "Partitioned convolution algorithms for real-time auralization", 2015, sec.
5.3): the response is cut into `PARTITION`-sample pieces whose spectra are taken once,
each input partition is transformed once, and each output partition is the inverse
transform of the sum of the last input spectra times the pieces' spectra. Its FFTs are
short (``2 * PARTITION``) whatever the response's and the block's lengths, and the
state it carries between blocks is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NOISE_SEED = 1234
HIGH_BAND_HZ = 4000.0
MAX_DECAY_S = 8.0


def _noise_bands(length: int, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed stereo noise split at `HIGH_BAND_HZ`: ``(low, high)``, each ``(2, length)`` float64."""
    generator = torch.Generator().manual_seed(NOISE_SEED)
    noise = torch.randn(2, length, generator=generator, dtype=torch.float64)
    spectrum = torch.fft.rfft(noise)
    freqs = torch.fft.rfftfreq(length, 1.0 / sample_rate, dtype=torch.float64)
    low = torch.fft.irfft(spectrum * (freqs < HIGH_BAND_HZ), n=length)
    return low, noise - low


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


PARTITION = 16384
"""Samples per partition of the streamed convolution (FFT size ``2 * PARTITION``)."""


@dataclass
class ReverbState:
    """What the streamed reverb carries from one block to the next (exact).

    Attributes:
        ir_spectra: ``(batch, 2, parts, PARTITION + 1)`` spectra of the response's
            partitions (zero-padded to ``2 * PARTITION``), taken on the first block.
        taps: the response's length, checked on every block.
        history: ``(batch, 2, parts, PARTITION + 1)`` spectra of the last ``parts`` input
            partitions, newest first (the frequency-domain delay line).
        overlap: ``(batch, 2, PARTITION)`` second halves of the last inverse transform,
            owed to the next output partition.
        pending: ``(batch, 2, m)`` input samples of the partition being filled
            (``m < PARTITION``); their share of its output has been returned.
    """

    ir_spectra: torch.Tensor
    taps: int
    history: torch.Tensor
    overlap: torch.Tensor
    pending: torch.Tensor


def _start_stream(send: torch.Tensor, ir: torch.Tensor) -> ReverbState:
    """The empty state of a stream of ``send``-like blocks through ``ir``."""
    batch, channels, _ = send.shape
    ir = ir.expand(batch, *ir.shape[-2:]).to(send.dtype)
    taps = ir.shape[-1]
    parts = max(1, -(-taps // PARTITION))
    pieces = torch.nn.functional.pad(ir, (0, parts * PARTITION - taps)).reshape(batch, channels, parts, PARTITION)
    ir_spectra = torch.fft.rfft(pieces, n=2 * PARTITION)
    return ReverbState(ir_spectra=ir_spectra, taps=taps, history=torch.zeros_like(ir_spectra),
                       overlap=send.new_zeros(batch, channels, PARTITION), pending=send.new_zeros(batch, channels, 0))


def _output_partitions(state: ReverbState, spectra: torch.Tensor) -> torch.Tensor:
    """Inverse transforms ``(batch, 2, n, 2 * PARTITION)`` of the output partitions whose newest
    input spectra are ``spectra`` ``(batch, 2, n, bins)``, after ``state.history``."""
    parts, n = state.ir_spectra.shape[2], spectra.shape[2]
    # line[..., i] is the spectrum of the input partition i - parts + 1 (negative: history).
    line = torch.cat([state.history.flip(2)[:, :, 1:], spectra], dim=2)
    total = spectra * state.ir_spectra[:, :, :1]
    for k in range(1, parts):
        total.addcmul_(line[:, :, parts - 1 - k:parts - 1 - k + n], state.ir_spectra[:, :, k:k + 1])
    return torch.fft.irfft(total, n=2 * PARTITION)


def _stream(send: torch.Tensor, state: ReverbState) -> tuple[torch.Tensor, ReverbState]:
    """One block of the partitioned convolution (see the module docstring)."""
    batch, channels, samples = send.shape
    done = state.pending.shape[-1]  # outputs of the current partition already returned
    x = torch.cat([state.pending, send], dim=-1)
    full = x.shape[-1] // PARTITION
    out = send.new_empty(batch, channels, samples)
    history, overlap = state.history, state.overlap
    if full:
        spectra = torch.fft.rfft(x[..., :full * PARTITION].reshape(batch, channels, full, PARTITION),
                                 n=2 * PARTITION)
        blocks = _output_partitions(state, spectra)
        heads = blocks[..., :PARTITION].clone()
        heads[:, :, 0] += overlap
        heads[:, :, 1:] += blocks[:, :, :-1, PARTITION:]
        out[..., :full * PARTITION - done] = heads.reshape(batch, channels, -1)[..., done:]
        overlap = blocks[:, :, -1, PARTITION:]
        parts = history.shape[2]
        history = torch.cat([spectra.flip(2), history], dim=2)[:, :, :parts]
    rest = x[..., full * PARTITION:]
    if rest.shape[-1]:
        # The partition being filled: its output so far needs only the inputs so far (causal).
        partial = ReverbState(state.ir_spectra, state.taps, history, overlap, rest)
        head = _output_partitions(partial, torch.fft.rfft(rest, n=2 * PARTITION)[:, :, None])[:, :, 0]
        begin = 0 if full else done
        out[..., samples - (rest.shape[-1] - begin):] = (head[..., :PARTITION] + overlap)[..., begin:rest.shape[-1]]
    return out, ReverbState(state.ir_spectra, state.taps, history, overlap, rest)


def reverb(send: torch.Tensor, ir: torch.Tensor, tail: torch.Tensor | ReverbState | None = None,
           spectra: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | ReverbState]:
    """Convolve a block of the send bus with the reverb, carrying what it owes later blocks.

    With autograd (``send`` or ``ir`` requiring grad) the block is the whole signal,
    convolved by one FFT (`fft_convolve`), and the second output is its tail. Without,
    blocks stream through the partitioned convolution and the second output is its
    `ReverbState`; a first block starts the stream (``tail`` None). The two agree to
    float rounding.

    Args:
        send: ``(batch, 2, samples)`` summed reverb sends.
        ir: ``(batch, 2, taps)`` or ``(2, taps)``, the same on every block of a stream.
        tail: None on the first block, else what the previous block returned.
        spectra: cache of the response's spectra for the autograd path (see
            `fft_convolve`); the streamed path keeps its partitions' spectra in its state.

    Returns:
        ``(wet, tail)``: ``(batch, 2, samples)`` and what to pass with the next block.

    Raises:
        ValueError: on a carried ``tail`` with autograd, or a response that changed
            length within a stream.
    """
    if torch.is_grad_enabled() and (send.requires_grad or ir.requires_grad):
        if tail is not None:
            raise ValueError("gradients need the whole signal: call reverb without a carried tail")
        full = fft_convolve(send, ir, spectra)
        return full[..., :send.shape[-1]], full[..., send.shape[-1]:]
    with torch.no_grad():
        state = _start_stream(send, ir) if tail is None else tail
        if not isinstance(state, ReverbState) or state.taps != ir.shape[-1]:
            raise ValueError("tail must be the ReverbState of the same response's stream")
        return _stream(send, state)
