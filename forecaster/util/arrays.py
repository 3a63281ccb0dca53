"""Small numpy helpers the stages share."""

from __future__ import annotations

import numpy as np

__all__ = ["true_runs"]


def true_runs(mask) -> list[tuple[int, int]]:
    """(first, last) positions of each run of True in ``mask``, in order."""
    edges = np.diff(np.concatenate(([0], np.asarray(mask, dtype=bool).astype(np.int8), [0])))
    return [(int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1)]
