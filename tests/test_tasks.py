"""`mixdown.dsp.tasks.run_tasks`: every task once, split across threads that wait without spinning."""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest

from mixdown.dsp.tasks import run_tasks


def _record(first: int, stop: int, done: np.ndarray, threads: list[str]) -> None:
    done[first:stop] += 1
    threads.append(threading.current_thread().name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("tasks", [0, 1, 2, 7])
def test_every_task_runs_once(tasks, threads):
    done, names = np.zeros(tasks, dtype=np.int64), []
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        run_tasks(_record, tasks, done, names)
    finally:
        numba.set_num_threads(before)
    assert (done == 1).all()
    ranges = max(1, min(threads, tasks))
    assert len(names) == ranges
    assert sum(name == threading.current_thread().name for name in names) == 1  # the caller runs one range


def test_a_failing_task_raises_in_the_caller():
    def fail(first: int, stop: int) -> None:
        if first > 0:
            raise RuntimeError("task failed")

    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="task failed"):
            run_tasks(fail, 4)
    finally:
        numba.set_num_threads(before)
