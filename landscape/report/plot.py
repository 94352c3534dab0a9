"""Figures from a result object, in a notebook: the same figures ``landscape run`` writes, without the disk.

    res = ls.explore(problem, flow, key=key, n=64)
    ls.plot.spectra(res)      # Hessian spectra of the end points and their density
    ls.plot.curves(res)       # loss and gradient-norm curves, coloured by the class of the end point

Each function takes a :class:`landscape.analysis.explore.Exploration` (or anything with ``table()`` and
``arrays()``) and returns a matplotlib Figure.
"""

from __future__ import annotations

from .figures import curves_figure, spectra_figure

__all__ = ["spectra", "curves"]


def spectra(result, *, title: str = ""):
    """Hessian eigenvalues of every end point (sorted by loss, coloured by kind) and their histogram.

    Args:
        result: an ``Exploration`` from :func:`landscape.explore`.
        title: figure title prefix.
    Returns:
        ``matplotlib.figure.Figure``.
    """
    return spectra_figure(result.table(), result.arrays(), title)


def curves(result, *, title: str = ""):
    """Loss and gradient norm along every trajectory against time (log-log), coloured by end-point kind.

    Args:
        result: an ``Exploration`` from :func:`landscape.explore`.
        title: figure title prefix.
    Returns:
        ``matplotlib.figure.Figure``.
    """
    return curves_figure(result.table(), result.arrays(), title)
