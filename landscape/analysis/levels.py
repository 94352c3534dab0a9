"""Distinct loss levels: sorted losses merged into groups when consecutive values are within a tolerance.

Two values L < L' belong to one level when L' - L <= abs_tol + rel_tol * |L'| (consecutive in sorted order), the
rule every summary and report uses (one merge for the whole package).

Example:
    >>> from landscape.analysis.levels import merge_levels
    >>> [len(g) for g in merge_levels([0.0, 1e-16, 0.5, 0.5 + 1e-12, 0.7])]
    [2, 2, 1]
"""

from __future__ import annotations

import numpy as np

__all__ = ["merge_levels", "LEVEL_REL_TOL", "LEVEL_ABS_TOL"]

LEVEL_REL_TOL = 1e-8
LEVEL_ABS_TOL = 1e-14


def merge_levels(losses, *, rel_tol: float = LEVEL_REL_TOL, abs_tol: float = LEVEL_ABS_TOL) -> list[np.ndarray]:
    """Groups of indices into ``losses`` (finite entries only), one per level, levels in increasing loss.

    Args:
        losses: (n,) loss values; NaN and inf are ignored.
        rel_tol, abs_tol: merge tolerance abs_tol + rel_tol * |L| between consecutive sorted values.

    Returns:
        list of integer index arrays, each sorted by loss.

    Example:
        >>> from landscape.analysis.levels import merge_levels
        >>> [g.tolist() for g in merge_levels([0.5, float("nan"), 0.0, 0.5 + 1e-12, 1e-16])]
        [[2, 4], [0, 3]]
    """
    losses = np.asarray(losses, float)
    idx = np.flatnonzero(np.isfinite(losses))
    idx = idx[np.argsort(losses[idx], kind="stable")]
    groups: list[list[int]] = []
    last = None
    for i in idx:
        x = losses[i]
        if last is None or x - last > abs_tol + rel_tol * abs(x):
            groups.append([])
        groups[-1].append(int(i))
        last = x
    return [np.asarray(g, int) for g in groups]
