"""heapdiff._runs.run_positions against a plain loop over the runs."""

from __future__ import annotations

import random

import numpy as np
import pytest

from heapdiff._runs import run_positions


@pytest.mark.parametrize("seed", range(20))
def test_the_positions_of_every_run_in_order(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(0, 30)
    starts = [rng.randrange(0, 1000) for _ in range(n)]
    lengths = [rng.choice([0, 0, 1, 2, 5]) for _ in range(n)]
    got = run_positions(np.asarray(starts, np.int64), np.asarray(lengths, np.int64))
    assert got.dtype == np.int64
    assert got.tolist() == [s + k for s, length in zip(starts, lengths, strict=True) for k in range(length)]
