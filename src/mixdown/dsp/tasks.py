"""Run a compiled kernel's independent tasks on several threads that wait without spinning.

The render's kernels (`mixdown.dsp.iir`, `mixdown.dsp.compressor`, `mixdown.dsp.true_peak`)
are serial numba functions over a range of tasks, compiled with ``nogil``; `run_tasks`
splits the range across ``numba.get_num_threads()`` Python threads. Numba's own parallel
loops (``prange``) wait at their end in a spinning barrier: on a machine busier than its
cores, a spinning thread takes the time slice its partner needs. Measured on 2 shared
cores at a load average of 7 (numba 0.68, OpenMP layer; 8 stereo stems x 180 s), the
render took 3.4x as long on two threads as on one with ``prange``, 1.9x with these
threads, which sleep on a lock while they wait; on an idle machine both split the work
alike.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _workers(count: int) -> ThreadPoolExecutor:
    """A pool of at least ``count`` threads, made once and replaced by a larger one when asked for more."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < count:
            _pool, _pool_size = ThreadPoolExecutor(max_workers=count, thread_name_prefix="mixdown-dsp"), count
        return _pool


def _forget_pool() -> None:
    """In a forked child: the parent's threads are not there, so start afresh."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def run_tasks(kernel: Callable[..., None], tasks: int, *args) -> None:
    """``kernel(first, stop, *args)`` over tasks ``0 .. tasks``, split into contiguous ranges.

    Args:
        kernel: a ``nogil`` compiled function doing tasks ``first`` to ``stop - 1``; tasks
            must not write to the same memory.
        tasks: how many tasks.
        *args: passed on.

    One range per thread (``numba.get_num_threads()``, at most ``tasks``); the calling
    thread runs the first, the pool the others.
    """
    threads = max(1, min(numba.get_num_threads(), tasks))
    bounds = [tasks * i // threads for i in range(threads + 1)]
    futures = [] if threads == 1 else [_workers(threads - 1).submit(kernel, bounds[i], bounds[i + 1], *args)
                                       for i in range(1, threads)]
    kernel(bounds[0], bounds[1], *args)
    for future in futures:
        future.result()
