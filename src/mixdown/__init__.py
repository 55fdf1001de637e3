"""mixdown: automatic multitrack mixing with editable console settings."""

import os

if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    # The console's DSP kernels run on mixdown's own worker threads (`mixdown.dsp.tasks`)
    # between torch operations. After each parallel torch operation, libgomp (torch's OpenMP)
    # keeps its threads spinning for 300,000 iterations by default, holding the cores those
    # workers need: on 2 cores the 8-stem x 180-s render took 0.99 s with that default and
    # 0.84 s with 10,000 (`benchmarks/render_speed.py`); training steps moved by under 7 %
    # either way (`benchmarks/train_speed.py`). libgomp reads it once, when torch loads, so
    # it is set here, before any torch import; a process that loaded torch first keeps its own.
    os.environ["GOMP_SPINCOUNT"] = "10000"

__version__ = "0.1.0"
