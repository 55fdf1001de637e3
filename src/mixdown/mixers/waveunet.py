"""Mix-Wave-U-Net as a mixer: a multitrack in, a stereo mix out, and no settings.

`mixdown.models.waveunet` makes audio, not console settings, so `WaveUNetMixer` declares
``Capabilities(gives_params=False)`` and its `run` returns the mix itself
(``mix(multitrack) -> (2, samples)``). ``mixdown mix --method waveunet`` writes the mix
and no settings file.

A song of any length is mixed in bounded memory, as a stream (`WaveUNetMixer.mix`):

1. the stems are read in blocks (`Multitrack.iter_chunks`) and summed into the
   model's stereo instrument slots (`mixdown.models.waveunet.slot_stems`' rule);
2. at another rate than the model's, the slot signals are resampled on the fly
   (streaming soxr, quality HQ as `mixdown.audio.resample`);
3. `run_network` runs the network on windows of ``chunk_frames`` output samples, each
   with its valid-convolution context on both sides (zeros before the song's start
   and after its end), on the ``2 ** levels`` grid: the result equals the network run
   on the whole song at once (`WaveUNet.forward`) to float rounding;
4. the mix is resampled back to the song's rate, and the master stage
   (`mixdown.models.waveunet.master`: loudness normalisation and true-peak limiter)
   sees the whole mix, as the console's master does.

Memory: the blocks, one window's activations, and the stereo mix itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import soxr
import torch

from mixdown.audio import resampled_length
from mixdown.errors import MixdownError
from mixdown.mixers import Capabilities, MethodOutput
from mixdown.models.waveunet import WaveUNet, master, slot_table
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack
from mixdown.weights import require

CHUNK_FRAMES = 1 << 17
"""Output samples per network window, at the model's rate (about 3 s at 44.1 kHz)."""

READ_FRAMES = 1 << 16
"""Frames per block read from the stems."""

ProgressCallback = Callable[[int, int], None]
"""Called with ``(frames done, frames)`` at the model's rate."""



def run_network(model: WaveUNet, blocks: Iterable[np.ndarray], total_frames: int,
                chunk_frames: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
    """The network's mix of a stream of slot signals, window by window (no master stage).

    Windows advance by ``chunk_frames`` rounded down to the ``2 ** levels`` grid (at
    least one grid step), so every window sees the decimation phase the whole signal
    would: the output equals ``model.mix_slots`` of the whole signal to float rounding.

    Args:
        model: The network.
        blocks: Consecutive slot signals ``(config.input_channels, frames)`` at the
            model's rate, ``total_frames`` in all (missing frames count as silence).
        total_frames: Length of the stream.
        chunk_frames: Output samples per window.

    Yields:
        Consecutive float32 mix blocks ``(2, frames)``, ``total_frames`` in all.
    """
    config = model.config
    stride = max(config.grid, chunk_frames // config.grid * config.grid)
    window = config.input_frames(config.bottleneck_for(stride))
    pending = np.zeros((config.input_channels, config.context), dtype=np.float32)  # silence before the start
    done = 0

    def step(inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model.network(torch.from_numpy(np.ascontiguousarray(inputs))[None])[0].numpy()
        return out[:, :min(stride, total_frames - done)]

    stream = iter(blocks)
    exhausted = False
    while done < total_frames:
        while pending.shape[-1] < window and not exhausted:
            block = next(stream, None)
            if block is None:
                exhausted = True
            else:
                pending = np.concatenate([pending, np.asarray(block, dtype=np.float32)], axis=-1)
        if pending.shape[-1] < window:  # silence after the end
            pending = np.pad(pending, ((0, 0), (0, window - pending.shape[-1])))
        out = step(pending[:, :window])
        done += out.shape[-1]
        pending = pending[:, stride:]
        yield out


class _Resampler:
    """A streaming soxr resampler of ``(channels, frames)`` blocks, or the identity at equal rates."""

    def __init__(self, rate_in: int, rate_out: int, channels: int):
        self.stream = None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, channels,
                                                                           dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool) -> np.ndarray:
        if self.stream is None:
            return block
        return np.ascontiguousarray(self.stream.resample_chunk(np.ascontiguousarray(block.T), last=last).T)


class WaveUNetMixer:
    """A stereo mix from the trained Mix-Wave-U-Net (see the module docstring).

    Args:
        weights: A checkpoint written by `mixdown.models.save_model` for the
            ``waveunet`` model; default: the shipped one.
        chunk_frames: Output samples per network window at the model's rate.

    Raises:
        MixdownError: If the weights are missing, unreadable or of another model.
    """

    name = "waveunet"
    capabilities = Capabilities(gives_params=False)

    def __init__(self, weights: str | os.PathLike | None = None, chunk_frames: int = CHUNK_FRAMES):
        from mixdown.models import load_model_as

        loaded = load_model_as("waveunet", weights if weights is not None else require("waveunet.pt"))
        if chunk_frames < 1:
            raise MixdownError(f"chunk_frames must be positive, got {chunk_frames}")
        self.model: WaveUNet = loaded.model
        self.chunk_frames = chunk_frames

    def slot_blocks(self, multitrack: Multitrack) -> Iterator[np.ndarray]:
        """The stems summed into the model's slots, block by block at the model's rate.

        Yields:
            float32 ``(config.input_channels, frames)`` blocks.
        """
        config = self.model.config
        table = slot_table(config.slots).numpy()
        routing = np.zeros((len(config.slots), multitrack.num_tracks), dtype=np.float32)
        for track, instrument in enumerate(multitrack.instruments):
            routing[table[INSTRUMENT_CLASSES.index(instrument)], track] = 1.0
        resampler = _Resampler(multitrack.sample_rate, config.sample_rate, config.input_channels)
        read = 0
        for block in multitrack.iter_chunks(READ_FRAMES):
            read += block.shape[-1]
            slots = np.einsum("st,tcn->scn", routing, block).reshape(config.input_channels, -1)
            yield resampler(slots, last=read >= multitrack.num_frames)

    def run(self, multitrack: Multitrack, target: np.ndarray | None = None, reference: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> MethodOutput:
        return MethodOutput(mix=self.mix(multitrack, progress))

    def mix(self, multitrack: Multitrack, progress: ProgressCallback | None = None) -> np.ndarray:
        """Mix ``multitrack``; the input is not modified.

        Returns:
            float32 ``(2, multitrack.num_frames)`` at the multitrack's rate.
        """
        config = self.model.config
        rate = multitrack.sample_rate
        total = resampled_length(multitrack.num_frames, rate, config.sample_rate)
        back = _Resampler(config.sample_rate, rate, 2)
        out = np.zeros((2, multitrack.num_frames), dtype=np.float32)
        written = done = 0
        for block in run_network(self.model, self.slot_blocks(multitrack), total, self.chunk_frames):
            done += block.shape[-1]
            block = back(block, last=done >= total)[:, :multitrack.num_frames - written]
            out[:, written:written + block.shape[-1]] = block
            written += block.shape[-1]
            if progress is not None:
                progress(done, total)
        with torch.no_grad():
            mixed = master(torch.from_numpy(out)[None], rate, config.target_lufs, config.ceiling_dbtp)
        return mixed[0].numpy()
